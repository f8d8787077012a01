"""The SMTP transport end to end: a local stack started with ``POSTLINE_LOCAL_SMTP_STREAMS=critical`` sends the
critical stream through its local relay (aiosmtpd, AUTH with a secret in the local Secrets Manager) and the others
through SES's API; the relay's faults, chosen by the recipient's address, show what each reply does."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.conftest import ROOT, started_stack, wait_until


@pytest.fixture(scope="module")
def relay_stack(tmp_path_factory):
    with started_stack(tmp_path_factory.mktemp("postline-smtp"), POSTLINE_LOCAL_SMTP_STREAMS="critical") as stack:
        yield stack


def send(stack, template: str, to: str) -> str:
    data = (ROOT / "templates" / template / "example.json").read_text()
    return stack.cli_json("send", "--template", template, "--to", to, "--data", data)["message_id"]


def status(stack, message_id: str) -> dict:
    return json.loads(stack.cli("status", message_id, "--json", check=False).stdout)


def address(kind: str) -> str:
    """A recipient of its own, with the relay's fault for ``kind`` (smtp_relay.relay_fault), if any."""
    label = uuid.uuid4().hex[:8]
    return f"{kind}+{label}@example.com" if kind.startswith("smtp-") else f"{kind}-{label}@example.com"


def test_the_critical_stream_goes_through_the_relay_and_the_others_through_ses(relay_stack):
    reset_to, welcome_to = address("reset"), address("welcome")
    reset, welcome = send(relay_stack, "password-reset", reset_to), send(relay_stack, "welcome", welcome_to)

    relayed = relay_stack.wait_for(reset, statuses={"sent", "delivered", "failed"})
    assert (relayed["status"], relayed["transport"]) == ("sent", "smtp")
    assert relayed["ses_message_id"]  # the relay's queue id
    [mail] = relay_stack.outbox_for(reset_to)
    assert mail["X-Postline-Message-Id"] == reset and mail["Subject"]
    assert relay_stack.ses_sends_for(reset) == 0  # not through SES: no SES events, it stays "sent"

    through_ses = relay_stack.wait_for(welcome, statuses={"delivered", "failed"})
    assert (through_ses["status"], through_ses["transport"]) == ("delivered", "ses_api")
    assert relay_stack.ses_sends_for(welcome) == 1 and len(relay_stack.outbox_for(welcome_to)) == 1
    assert status(relay_stack, reset)["status"] == "sent"


def test_a_user_unknown_reply_fails_the_email_and_suppresses_the_address(relay_stack):
    to = address("smtp-550-5.1.1")
    message_id = send(relay_stack, "password-reset", to)

    view = relay_stack.wait_for(message_id)
    assert view["status"] == "failed"
    assert view["reason"] == "the SMTP relay answered 550 5.1.1 User unknown (to RCPT TO)"
    suppressions = relay_stack.cli_json("suppressions", "show", to)["suppressions"]
    assert [(s["scope"], s["reason"], s["source"]) for s in suppressions] == [("all", "hard_bounce", "smtp")]
    assert relay_stack.outbox_for(to) == []


def test_a_4xx_reply_waits_and_the_email_is_sent_once_later(relay_stack):
    to = address("smtp-450")
    message_id = send(relay_stack, "password-reset", to)

    wait_until(lambda: "450 4.2.0" in (status(relay_stack, message_id)["reason"] or ""), 30, "the relay's 450")
    assert status(relay_stack, message_id)["status"] not in {"sent", "failed"}
    relay_stack.cli("local", "clock", "--advance", "31s")  # past its 30 s on the queue
    assert relay_stack.wait_for(message_id)["status"] == "sent"
    assert len(relay_stack.outbox_for(to)) == 1


def test_a_connection_lost_after_the_content_is_never_sent_again(relay_stack):
    to = address("smtp-drop")
    message_id = send(relay_stack, "password-reset", to)

    wait_until(lambda: relay_stack.outbox_for(to), 30, "the relay taking the email")  # then it hangs up
    assert status(relay_stack, message_id)["status"] == "sending"  # the claim stays: nobody knows it was sent
    relay_stack.cli("local", "clock", "--advance", "16m")  # past the stale claim's 15 min: parked, not resent
    parked = relay_stack.wait_for(message_id, statuses={"unknown", "sent", "failed"})
    assert parked["status"] == "unknown" and f"postline resolve {message_id} --sent" in parked["reason"]
    assert "left no answer from the SMTP relay; the relay may or may not have sent it" in parked["reason"]
    assert len(relay_stack.outbox_for(to)) == 1
