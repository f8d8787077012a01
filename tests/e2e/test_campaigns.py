"""End-to-end: campaigns run by an operator with ``postline campaigns`` on the local stack, as on AWS: the start
schedule fires, each reader gets one email with their own data, a pause holds what is queued until the resume,
and a window that closes mid-campaign holds the rest until the next one opens (the stack's clock moved with
``postline local clock``). The local SES takes 6 emails a second (4.2 for marketing), so a campaign of 60 lasts
long enough to be paused mid-way. The send stage reads a campaign's state at most every 30 s of the stack's
clock; the tests move that clock on rather than wait."""
from __future__ import annotations

import email.policy
import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.parser import BytesHeaderParser

import pytest

from tests.e2e.conftest import ROOT, started_stack, wait_until

ALERT_MIN_SAMPLE = 20  # emails a campaign must have sent before its rates are looked at (100 by default)
SHARED = {key: value for key, value in json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
          .items() if key != "name"}  # every reader's `name` comes from the audience file


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with started_stack(tmp_path_factory.mktemp("campaigns"), POSTLINE_LOCAL_SES_RATE="6",
                       POSTLINE_ALERT_MIN_SAMPLE=str(ALERT_MIN_SAMPLE)) as running:
        yield running


def audience(tmp_path, name: str, readers: int) -> tuple[dict[str, str], str]:
    people = {f"{name}-{n}@example.org": f"Reader{n}" for n in range(readers)}
    path = tmp_path / f"{name}.csv"
    path.write_text("email,name\n" + "".join(f"{address},{first}\n" for address, first in people.items())
                    + f"{name}-0@EXAMPLE.org,Again\nnot-an-address,Nobody\n")  # a duplicate and a bad row
    return people, str(path)


def delivered(stack, people: dict[str, str]) -> int:
    """Emails in the outbox to these people (one pass over the outbox: it holds every earlier test's too)."""
    headers = BytesHeaderParser(policy=email.policy.default)
    return sum(1 for path in stack.outbox.glob("*.eml")
               if headers.parsebytes(path.read_bytes())["To"].addresses[0].addr_spec in people)


def each_once_with_their_name(stack, people: dict[str, str]) -> None:
    for address, first in people.items():
        (sent,) = stack.outbox_for(address)
        assert f"Hi {first}" in sent.get_body(("html", "plain")).get_content()


def create(stack, name: str, path: str, *extra: str) -> dict:
    return stack.cli_json("campaigns", "create", name, "--template", "newsletter", "--audience", path,
                          "--data", json.dumps(SHARED), *extra)


def resume(stack, name: str) -> None:
    """Resume, then move the stack's clock past the send stage's 30 s view of the campaign and the minute a held
    email waits on its queue (gate.HOLD_SECONDS), rather than wait for them: what is left is sending."""
    stack.cli("campaigns", "resume", name)
    stack.cli("local", "clock", "--advance", "61s")


def test_a_campaign_starts_at_its_time_and_each_reader_gets_one_email_with_their_data(stack, tmp_path):
    people, path = audience(tmp_path, "spring", 3)
    start = (datetime.now(timezone.utc) + timedelta(seconds=6)).isoformat(timespec="seconds")
    created = create(stack, "spring", path, "--at", start)
    assert created["audience"]["valid"] == 3 and created["audience"]["duplicates"] == 1
    assert created["audience"]["invalid"] == 1
    assert stack.cli_json("campaigns", "show", "spring")["state"] == "scheduled"

    wait_until(lambda: delivered(stack, people) == 3, 90, "every reader's email")
    each_once_with_their_name(stack, people)
    wait_until(lambda: stack.cli_json("campaigns", "show", "spring")["state"] == "done", 30, "the campaign is done")
    shown = stack.cli_json("campaigns", "show", "spring")
    assert shown["counts"]["queued"] == 3 and shown["counts"]["duplicate"] == 1
    assert [entry["state"] for entry in shown["history"]][:2] == ["scheduled", "running"]


def test_a_pause_holds_the_queued_emails_until_the_resume(stack, tmp_path):
    people, path = audience(tmp_path, "summer", 60)
    create(stack, "summer", path)
    wait_until(lambda: delivered(stack, people) >= 3, 60, "the campaign's first emails")
    stack.cli("campaigns", "pause", "summer")
    stack.cli("local", "clock", "--advance", "31s")  # past the send stage's 30 s view of the campaign

    time.sleep(12)  # the emails the send stage had already given a slot go; then nothing
    held_at = delivered(stack, people)
    time.sleep(10)
    assert delivered(stack, people) == held_at < len(people)  # nothing more while paused
    assert stack.cli_json("campaigns", "show", "summer")["state"] == "paused"

    resume(stack, "summer")
    wait_until(lambda: delivered(stack, people) == len(people), 120, "the rest after the resume")
    each_once_with_their_name(stack, people)


def test_a_window_that_closes_mid_campaign_holds_the_rest_until_the_next_one(stack, tmp_path):
    day = datetime.now(timezone.utc).date() + timedelta(days=2)
    stack.cli("local", "clock", "--set", f"{day.isoformat()}T05:59:00+00:00")
    people, path = audience(tmp_path, "autumn", 60)
    create(stack, "autumn", path, "--window", "02:00-06:00", "--timezone", "UTC")
    wait_until(lambda: delivered(stack, people) >= 3, 60, "the campaign's first emails")

    stack.cli("local", "clock", "--set", f"{day.isoformat()}T06:01:00+00:00")  # the window has closed
    time.sleep(12)  # emails already given a slot before the close go, then nothing
    held_at = delivered(stack, people)
    time.sleep(10)
    assert delivered(stack, people) == held_at < len(people)

    stack.cli("local", "clock", "--set", f"{(day + timedelta(days=1)).isoformat()}T02:00:30+00:00")
    wait_until(lambda: delivered(stack, people) == len(people), 120, "the rest in the next window")
    each_once_with_their_name(stack, people)


def test_a_campaign_whose_bounce_rate_passes_5_percent_pauses_itself_and_resumes_without_duplicates(stack, tmp_path):
    """Every fifth of the first 40 readers is a simulator address that hard-bounces (each its own, with a label, as
    a suppressed address would get nothing): past the minimum sample (20 emails sent, set for this stack) the bounce
    rate (20 %) passes 5 % and the campaign pauses itself; the resume sends the rest, each reader's email once."""
    people = {(f"bounce+{n}@simulator.amazonses.com" if n < 40 and n % 5 == 0 else f"fall-{n}@example.org"):
              f"Reader{n}" for n in range(150)}
    path = tmp_path / "fall.csv"
    path.write_text("email,name\n" + "".join(f"{address},{first}\n" for address, first in people.items()))
    create(stack, "fall", str(path))
    wait_until(lambda: stack.cli_json("campaigns", "show", "fall")["state"] == "paused", 150,
               "the campaign pausing itself")
    stack.cli("local", "clock", "--advance", "31s")  # past the send stage's 30 s view of the campaign
    time.sleep(12)  # the emails the send stage had already given a slot go; then nothing
    held_at = delivered(stack, people)
    time.sleep(10)
    assert ALERT_MIN_SAMPLE <= delivered(stack, people) == held_at < len(people)
    alert = [entry for entry in stack.cli_json("campaigns", "show", "fall")["history"] if entry["state"] == "paused"]
    assert len(alert) == 1
    figures = stack.cli_json("stats", "--campaign", "fall")  # what the alert saw: past the sample, 5 % bounced
    assert figures["totals"]["sent"] >= ALERT_MIN_SAMPLE and figures["rates"]["bounce"] >= 0.05

    resume(stack, "fall")
    wait_until(lambda: delivered(stack, people) == len(people), 150, "the rest after the resume")
    headers = BytesHeaderParser(policy=email.policy.default)
    emails_to = Counter(headers.parsebytes(path.read_bytes())["To"].addresses[0].addr_spec
                        for path in stack.outbox.glob("*.eml"))
    assert {address: emails_to[address] for address in people} == dict.fromkeys(people, 1)
    assert stack.cli_json("campaigns", "show", "fall")["state"] in ("running", "done")
