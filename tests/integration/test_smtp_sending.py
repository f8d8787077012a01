"""The send stage with the critical stream on an SMTP relay (a real one on loopback) and the others on SES's API
(moto): the claim, the suppression re-check and the limiter hold as on the API path, and the relay's replies
decide each email's fate (issue 26)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from postline.batch import QueueRecord
from postline.contract import message_id_for
from postline.limiter import RATE, Grant
from postline.models import Message, Suppression
from postline.send import send_batch
from postline.smtp import SmtpRelay, SmtpTransport
from postline_cli.views import message_view

from .smtp_relay import DROP, start_relay
from .test_pipeline import RequeueSpy

ROOT = Path(__file__).resolve().parents[2]
SEND_CRITICAL = "postline-send-critical"


def message(to: str, key: str) -> dict:
    data = json.loads((ROOT / "templates" / "password-reset" / "example.json").read_text())
    return {"template": "password-reset", "to": to, "data": data, "id": key}


def record(key: str) -> Message:
    return Message.get(message_id_for(key), consistent_read=True)


@pytest.fixture
def relay():
    relay, controller = start_relay("none")
    yield relay
    controller.stop()


@pytest.fixture
def smtp(pipeline, relay):
    """The critical stream on the relay; the send context's other streams stay on SES's API."""
    transport = SmtpTransport(SmtpRelay(relay.host, relay.port, "none"), timeout=5)
    yield lambda **overrides: pipeline.send_context(relays={"critical": transport}, **overrides)
    transport.close()


def rendered(pipeline, *messages: dict) -> list[QueueRecord]:
    for body in messages:
        pipeline.enqueue("critical", body)
    pipeline.run_render()
    return pipeline.receive(SEND_CRITICAL, visibility=0)


def test_critical_mail_goes_through_the_relay_and_the_others_through_ses(pipeline, relay, smtp):
    pipeline.enqueue("transactional", {"template": "welcome", "to": "ann@example.com", "id": "welcome-1",
                                       "data": json.loads((ROOT / "templates/welcome/example.json").read_text())})
    pipeline.enqueue("critical", message("bob@example.com", "reset-1"))
    pipeline.run_render()
    pipeline.run_send(smtp())
    assert relay.count("bob@example.com") == 1 and [r.recipients for r in relay.received] == [["bob@example.com"]]
    assert [s["Destination"]["ToAddresses"] for s in pipeline.ses.sends] == [["ann@example.com"]]
    stored = record("reset-1")
    assert (stored.status, stored.ses_message_id) == ("sent", "Q00001")
    raw = pipeline.session.client("dynamodb").get_item(TableName=pipeline.settings.messages_table,
                                                       Key={"message_id": {"S": message_id_for("reset-1")}})["Item"]
    assert raw["transport"] == {"S": "smtp"} and "claim" not in raw
    assert "transport" not in pipeline.session.client("dynamodb").get_item(
        TableName=pipeline.settings.messages_table, Key={"message_id": {"S": message_id_for("welcome-1")}})["Item"]
    # `postline status` says which way each went
    assert [(view["transport"], view["ses_message_id"]) for view in map(message_view, ("reset-1", "welcome-1"))] == [
        ("smtp", "Q00001"), ("ses_api", record("welcome-1").ses_message_id)]


def test_a_repeated_job_is_not_sent_twice(pipeline, relay, smtp):
    records = rendered(pipeline, message("bob@example.com", "twice"))
    send_batch(records, smtp())
    again = send_batch(records, smtp())  # SQS delivered the same job again
    assert [o.result for o in again.outcomes.values()] == ["duplicate"] and relay.count("bob@example.com") == 1


@pytest.mark.parametrize("answer", ["450 4.2.1 Mailbox busy", "421 4.7.0 Try again later"])
def test_a_4xx_reply_releases_the_claim_the_email_waits_then_goes_once(pipeline, relay, smtp, answer):
    relay.data_answers["bob@example.com"] = [answer]
    records = rendered(pipeline, message("bob@example.com", "busy"))
    spy = RequeueSpy(pipeline)
    first = send_batch(records, smtp(sqs=spy))
    assert [o.result for o in first.outcomes.values()] == ["waiting"] and not first.failed
    stored = record("busy")
    assert stored.status == "rendered" and stored.reason == f"the SMTP relay answered {answer} (to DATA)"
    (requeued,) = spy.sent
    assert requeued["DelaySeconds"] == 30 and relay.received == []
    pipeline.now[0] += 30
    send_batch([spy.deliver(SEND_CRITICAL)], smtp(sqs=spy))
    assert relay.count("bob@example.com") == 1 and record("busy").status == "sent"


def test_a_5xx_reply_fails_the_email_with_the_reply_as_its_reason(pipeline, relay, smtp):
    relay.data_answers["bob@example.com"] = ["554 5.7.1 Message rejected as spam"]
    send_batch(rendered(pipeline, message("bob@example.com", "spam")), smtp())
    stored = record("spam")
    assert (stored.status, stored.reason) == ("failed", "the SMTP relay answered 554 5.7.1 Message rejected as spam "
                                                        "(to DATA)")
    assert [e["detail-type"] for e in pipeline.app_events()] == ["email.failed"]
    assert list(Suppression.query("bob@example.com")) == []


def test_a_user_unknown_reply_fails_the_email_and_suppresses_the_address(pipeline, relay, smtp):
    relay.rcpt_answers["Gone@example.com"] = ["550 5.1.1 <Gone@example.com>: Recipient address rejected: "
                                              "User unknown"]
    send_batch(rendered(pipeline, message("Gone@example.com", "gone-1")), smtp())
    assert record("gone-1").status == "failed"
    (suppression,) = Suppression.query("gone@example.com")
    assert (suppression.scope, suppression.reason, suppression.source) == ("all", "hard_bounce", "smtp")
    assert "gone@example.com" not in suppression.detail.lower()
    # The next email to the address is suppressed before it is claimed: the relay never hears of it.
    send_batch(rendered(pipeline, message("gone@example.com", "gone-2")), smtp())
    assert record("gone-2").status == "suppressed" and relay.received == []


def test_a_connection_lost_after_the_content_keeps_the_claim_and_is_never_resent(pipeline, relay, smtp):
    relay.data_answers["bob@example.com"] = [DROP]
    records = rendered(pipeline, message("bob@example.com", "lost"))
    first = send_batch(records, smtp())
    assert first.failed and record("lost").status == "sending"  # the claim stays: the relay may have it
    assert relay.count("bob@example.com") == 1
    again = send_batch(records, smtp())  # the retry finds its own claim open: it waits, then parks
    assert again.failed and relay.count("bob@example.com") == 1
    pipeline.now[0] += pipeline.settings.stale_claim_seconds
    parked = send_batch(records, smtp())
    assert [o.result for o in parked.outcomes.values()] == ["unknown"] and record("lost").status == "unknown"
    assert "left no answer from the SMTP relay; the relay may or may not have sent it" in record("lost").reason
    assert relay.count("bob@example.com") == 1


def test_the_suppression_check_before_the_claim_still_guards_the_relay(pipeline, relay, smtp):
    records = rendered(pipeline, message("carol@example.com", "complained"))
    Suppression("carol@example.com", "all", reason="complaint", suppressed_at=pipeline.clock(),
                source="test").save()  # after rendering, before sending
    send_batch(records, smtp())
    assert record("complained").status == "suppressed" and relay.received == []


def test_the_limiters_slots_still_pace_the_relay(pipeline, relay, smtp):
    class TwoSlots:
        """The shared limiter grants two of the batch's three emails; the third waits on its queue."""

        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def acquire(self, stream, count, **kw):
            return Grant(slots=[pipeline.clock()] * min(count, 2), waiting_for=RATE, retry_after=1)

    records = rendered(pipeline, *(message(f"user{n}@example.com", f"paced-{n}") for n in range(3)))
    spy = RequeueSpy(pipeline)
    ctx = smtp(sqs=spy)
    ctx.limiter = TwoSlots(ctx.limiter)
    result = send_batch(records, ctx)
    assert sorted(o.result for o in result.outcomes.values()) == ["sent", "sent", "waiting"]
    assert len(relay.received) == 2 and len(spy.sent) == 1


def test_a_batch_shares_one_connection(pipeline, relay, smtp):
    ctx = smtp()
    for batch in range(3):  # three invocations of a warm container
        records = rendered(pipeline, *(message(f"u{batch}-{n}@example.com", f"b{batch}-{n}") for n in range(10)))
        pipeline.settle(SEND_CRITICAL, records, send_batch(records, ctx))
    assert len(relay.received) == 30 and relay.connections <= ctx.settings.send_concurrency
    assert ctx.relays["critical"].connections_opened == relay.connections
