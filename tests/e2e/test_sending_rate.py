"""The sending rate on the local stack, whose SES endpoint enforces a rate and a 24-hour quota as SES does
(POSTLINE_LOCAL_SES_RATE, POSTLINE_LOCAL_SES_QUOTA): priority, throttling by another sender, the quota running out
stream by stream, and a warm-up cap holding mail to the next day (on the stack's clock, ``postline local clock``)."""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import pytest

from postline.contract import message_id_for
from tests.e2e.conftest import ROOT, started_stack, wait_until


def example(name: str) -> dict:
    return json.loads((ROOT / "templates" / name / "example.json").read_text())


def enqueue(stack, stream: str, template: str, count: int, run: str) -> list[str]:
    """``count`` messages of ``template`` on the stream's inbound queue; returns their ids."""
    ids = [f"{run}-{template}-{i}" for i in range(count)]
    sqs, queue = stack.client("sqs"), stack.queue_url(f"postline-{stream}")
    for start in range(0, count, 10):
        sqs.send_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(n), "MessageBody": json.dumps({"id": i, "template": template, "to": f"{i}@example.org",
                                                      "data": example(template)})}
            for n, i in enumerate(ids[start:start + 10])])
    return ids


def log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def accepted(stack) -> list[dict]:
    """The sends SES accepted, in order, each with postline's message id."""
    return [{"at": e["timestamp"], "id": e["tags"].get("postline_message_id")} for e in log(stack.send_log)]


@pytest.fixture(scope="module")
def ten_a_second(tmp_path_factory):
    with started_stack(tmp_path_factory.mktemp("rate"), POSTLINE_LOCAL_SES_RATE="10") as stack:
        yield stack


def message_id(stack, given_id: str) -> str:
    return stack.cli_json("status", given_id)["message_id"]


# An email held back before SES: rendered, or (marketing, whose record the send stage's claim writes) no record yet,
# which `postline status` reports as unknown with exit 3.
WAITING = {"unknown", "rendered"}


def status_of(stack, message: str) -> str:
    return json.loads(stack.cli("status", message, "--json", check=False).stdout)["status"]


def test_a_password_reset_overtakes_a_newsletter_backlog(ten_a_second):
    run = uuid.uuid4().hex[:6]
    newsletter = enqueue(ten_a_second, "marketing", "newsletter", 60, run)  # six seconds at 10 a second
    wait_until(lambda: len(accepted(ten_a_second)) >= 10, 60, "the newsletter starts")
    reset = ten_a_second.cli_json("send", "--template", "password-reset", "--to", f"reset-{run}@example.org",
                                  "--data", json.dumps(example("password-reset")))
    wait_until(lambda: len(accepted(ten_a_second)) >= 61, 90, "everything sent")
    order = [send["id"] for send in accepted(ten_a_second)]
    newsletter_ids = {message_id(ten_a_second, i) for i in newsletter[-1:]}
    # The reset went out while the newsletter was still going: newsletter emails were sent after it.
    assert order.index(reset["message_id"]) < max(order.index(i) for i in newsletter_ids)
    assert sum(1 for i in order[order.index(reset["message_id"]) + 1:] if i != reset["message_id"]) >= 10
    # Each email once, whatever SES refused on the way (a send reaching SES late can still be throttled on a busy
    # machine: issue 21's note; the rate bench counts those refusals).
    assert sorted(Counter(order).values()) == [1] * len(order)


def test_emails_throttled_by_another_sender_are_retried_and_sent_once(ten_a_second):
    """Another sender on the account takes most of the rate for a few seconds: SES throttles postline too, and
    every email still goes out exactly once."""
    ses = ten_a_second.client("sesv2")
    stop = threading.Event()

    def outside_sender() -> None:
        while not stop.is_set():
            try:
                ses.send_email(FromEmailAddress="other-app@mail.example.com",
                               Destination={"ToAddresses": ["someone@example.org"]},
                               Content={"Simple": {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hi"}}}})
            except ses.exceptions.ClientError:
                time.sleep(0.01)

    before = len(log(ten_a_second.send_log.parent / "ses-refusals.jsonl"))
    thread = threading.Thread(target=outside_sender)
    thread.start()
    try:
        ids = enqueue(ten_a_second, "transactional", "welcome", 20, uuid.uuid4().hex[:6])
        time.sleep(4)
    finally:
        stop.set()
        thread.join()
    for given in ids:
        view = ten_a_second.wait_for(given, statuses={"delivered"}, seconds=120)
        assert view["status"] == "delivered", view
        assert ten_a_second.ses_sends_for(view["message_id"]) == 1
    refusals = log(ten_a_second.send_log.parent / "ses-refusals.jsonl")[before:]
    assert any("postline_message_id" in r["tags"] for r in refusals), "SES never throttled postline"
    assert all(r["message"] == "Maximum sending rate exceeded." for r in refusals)


# -- the 24-hour quota ---------------------------------------------------------------------------------------------
QUOTA = 40  # marketing stops at 36 emails (90 %), transactional at 38 (97 %), critical at 40


def another_application_sends(stack, count: int) -> None:
    """``count`` emails through the same SES account by something else than postline: SES counts them too."""
    ses, sent = stack.client("sesv2"), 0
    while sent < count:
        try:
            ses.send_email(FromEmailAddress="other-app@mail.example.com",
                           Destination={"ToAddresses": ["someone@example.org"]},
                           Content={"Simple": {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hi"}}}})
            sent += 1
        except ses.exceptions.ClientError:  # over the rate: again in a moment
            time.sleep(0.05)


def send_one(stack, template: str, run: str, n: int) -> str:
    """One email, sent as an application sends one; its message id."""
    return stack.cli_json("send", "--template", template, "--to", f"{run}-{template}-{n}@example.org",
                          "--data", json.dumps(example(template)))["message_id"]


def sent_one(stack, template: str, run: str, n: int) -> str:
    message = send_one(stack, template, run, n)
    assert stack.wait_for(message, statuses={"sent", "delivered"}, seconds=30)["status"] in {"sent", "delivered"}
    return message


def waiting_on_queue(stack, stream: str) -> int:
    """Jobs put back on the stream's send queue to wait (delayed: neither lost nor failed)."""
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_url(f"postline-send-{stream}"), AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"])


def quota_low_events(stack, seen: list[dict]) -> list[dict]:
    """The ``sending.quota_low`` events the application has received (read off its local queue), added to
    ``seen``."""
    sqs, queue = stack.client("sqs"), stack.queue_url("postline-app-events")
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            event = json.loads(message["Body"])
            if event["detail-type"] == "sending.quota_low":
                seen.append(event["detail"]["detail"])
        sqs.delete_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])
    return seen


def stream_of(send: dict) -> str | None:
    return (send.get("configuration_set") or "").removeprefix("postline-") or None


def test_as_the_quota_runs_out_marketing_stops_first_then_transactional_and_critical_last(tmp_path):
    """Another application on the account has used 34 of a 40-email day: postline's marketing may send 2 more,
    transactional mail 2 after that, critical mail the last 2; each stream's next email waits on its queue."""
    with started_stack(tmp_path, POSTLINE_LOCAL_SES_QUOTA=str(QUOTA), POSTLINE_LOCAL_SES_RATE="50") as stack:
        run = uuid.uuid4().hex[:6]
        another_application_sends(stack, 34)
        held = {}
        for stream, template in (("marketing", "newsletter"), ("transactional", "welcome"),
                                 ("critical", "password-reset")):
            sent_one(stack, template, run, 0)
            sent_one(stack, template, run, 1)
            held[stream] = send_one(stack, template, run, 2)
            # Waits on its queue, not sent. (SQS may deliver a message twice, and render then queues the job twice:
            # so one waiting email can be more than one delayed job; the sends below are counted exactly.)
            wait_until(lambda waits=stream, email=held[stream]: waiting_on_queue(stack, waits) >= 1
                       and status_of(stack, email) in WAITING,
                       30, f"{stream}'s third email waits")

        sends = log(stack.send_log)
        assert len(sends) == QUOTA
        assert Counter(map(stream_of, sends)) == {None: 34, "marketing": 2, "transactional": 2, "critical": 2}
        refused = [r for r in log(stack.send_log.parent / "ses-refusals.jsonl") if "postline_message_id" in r["tags"]]
        assert refused == []  # postline held its mail back: SES never had to refuse it
        for stream, message in held.items():
            assert status_of(stack, message) in WAITING, stream
        events: list[dict] = []
        wait_until(lambda: any(e["level"] == 3 for e in quota_low_events(stack, events)), 20, "all mail stopped")
        levels = [e["level"] for e in events]  # each level once, rising, from marketing's stop to all mail's
        assert levels[0] == 1 and levels[-1] == 3 and levels == sorted(set(levels)), levels
        assert all(e["stopped_streams"] == ["marketing", "transactional", "critical"][:e["level"]] for e in events)
        assert stack.cli_json("rate", "status")["quota"]["stopped"] == ["marketing", "transactional", "critical"]


# -- dedicated IP warm-up, on the local stack's clock --------------------------------------------------------------
WARMUP_PLAN = {"start": "2030-01-01", "pools": {"marketing-ips": ["marketing"]}, "curve": [[1, 5], [2, 50]]}


def test_a_warm_up_cap_holds_marketing_to_the_next_day(tmp_path):
    with started_stack(tmp_path, POSTLINE_WARMUP_PLAN=json.dumps(WARMUP_PLAN)) as stack:
        stack.cli("local", "clock", "--set", "2030-01-01T12:00:00Z")  # the warm-up's first day, at noon
        ids = {message_id_for(key) for key in enqueue(stack, "marketing", "newsletter", 12, uuid.uuid4().hex[:6])}
        wait_until(lambda: waiting_on_queue(stack, "marketing") == 7, 60, "seven emails wait for tomorrow")
        first_day = {send["id"] for send in accepted(stack)}
        assert len(first_day) == 5
        assert {status_of(stack, i) for i in ids - first_day} <= WAITING
        [pool] = stack.cli_json("warmup", "status")["pools"]
        assert (pool["day"], pool["cap"], pool["used"], pool["stopped"]) == (1, 5, 5, ["marketing"])

        stack.cli("local", "clock", "--advance", "1d")
        wait_until(lambda: len(accepted(stack)) >= 12, 30, "the rest sent on the next day")
        sent = Counter(send["id"] for send in accepted(stack))
        assert set(sent) == ids and set(sent.values()) == {1}
        [pool] = stack.cli_json("warmup", "status")["pools"]
        assert (pool["day"], pool["cap"], pool["used"], pool["stopped"]) == (2, 50, 7, [])
