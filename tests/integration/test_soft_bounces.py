"""Soft bounces: retried with backoff through durable schedules, then a suppression once the window is over;
a delivery resets the address's history. Time is the pipeline's controllable clock, not real hours."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from postline.batch import QueueRecord
from postline.contract import message_id_for
from postline.events import apply_events
from postline.models import EmailEvent, Message, Suppression
from postline_cli.local import resources
from postline_cli.local.scheduler import run_due_schedules

ROOT = Path(__file__).resolve().parents[2]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ses_event(pipeline, message_id: str, kind: str, address: str) -> QueueRecord:
    send = [s for s in pipeline.ses.sends if s["tags"]["postline_message_id"] == message_id][-1]
    mail = {"messageId": send["MessageId"], "timestamp": iso(pipeline.clock()), "destination": [address],
            "tags": {"postline_message_id": [message_id]}}
    body = {"eventType": kind, "mail": mail}
    if kind == "Bounce":
        body["bounce"] = {"bounceType": "Transient", "bounceSubType": "MailboxFull", "timestamp": iso(pipeline.clock()),
                          "bouncedRecipients": [{"emailAddress": address, "status": "4.2.2"}]}
    else:
        body["delivery"] = {"timestamp": iso(pipeline.clock()), "recipients": [address]}
    return QueueRecord(f"{kind}-{pipeline.clock()}", json.dumps(body), resources.EVENTS_QUEUE, pipeline.clock(), 1)


def soft_bounce(pipeline, message_id: str, address: str):
    return apply_events([ses_event(pipeline, message_id, "Bounce", address)], pipeline.events_context())


def fire_due(pipeline) -> int:
    return run_due_schedules(pipeline.session.client("scheduler"), pipeline.sqs, resources.SCHEDULE_GROUP,
                             pipeline.clock())


def test_a_soft_bounced_email_is_retried_with_backoff_then_the_address_is_suppressed(pipeline):
    pipeline.settings = pipeline.settings.model_copy(update={
        "soft_bounce_first_retry_seconds": 1000, "soft_bounce_window_seconds": 20_000})
    data = json.loads((ROOT / "templates" / "password-reset" / "example.json").read_text())
    address, message_id = "full@example.com", message_id_for("soft-1")
    pipeline.enqueue("critical", {"template": "password-reset", "to": address, "data": data, "id": "soft-1"})
    pipeline.drain()
    first_at = pipeline.clock()

    for attempt, delay in ((1, 1000), (2, 4000)):
        soft_bounce(pipeline, message_id, address)
        assert Message.get(message_id).status == "sent"  # a soft bounce is not an outcome
        pipeline.now[0] += delay - 1
        assert fire_due(pipeline) == 0  # not yet
        pipeline.drain()
        assert pipeline.ses.count(message_id) == attempt
        pipeline.now[0] += 1
        assert fire_due(pipeline) == 1
        pipeline.drain()
        assert pipeline.ses.count(message_id) == attempt + 1  # the same message, sent again
        assert Message.get(message_id).retry == attempt

    soft_bounce(pipeline, message_id, address)  # the next retry would fall after the window: give up
    suppression = Suppression.get(address, "all")
    assert suppression.reason == "soft_bounce_exhausted"
    types = [e.type for e in EmailEvent.query(message_id)]
    assert types.count("soft_bounced") == 3 and types.count("retry_scheduled") == 2
    assert "soft_bounce_exhausted" in types
    assert pipeline.clock() - first_at == 5000

    pipeline.enqueue("critical", {"template": "password-reset", "to": address, "data": data, "id": "soft-2"})
    pipeline.drain()
    assert Message.get(message_id_for("soft-2")).status == "suppressed"


def test_a_duplicate_soft_bounce_schedules_one_retry(pipeline):
    pipeline.settings = pipeline.settings.model_copy(update={"soft_bounce_first_retry_seconds": 1000})
    data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
    pipeline.enqueue("transactional", {"template": "welcome", "to": "dup@example.com", "data": data, "id": "dup"})
    pipeline.drain()
    message_id = message_id_for("dup")
    record = ses_event(pipeline, message_id, "Bounce", "dup@example.com")
    apply_events([record], pipeline.events_context())
    apply_events([record], pipeline.events_context())
    pipeline.now[0] += 1000
    assert fire_due(pipeline) == 1
    pipeline.drain()
    assert pipeline.ses.count(message_id) == 2


def test_a_delivery_resets_the_soft_bounce_history(pipeline):
    pipeline.settings = pipeline.settings.model_copy(update={"soft_bounce_window_seconds": 10_000})
    data = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
    address = "flaky@example.com"
    for key in ("n1", "n2", "n3"):
        pipeline.enqueue("marketing", {"template": "newsletter", "to": address, "data": data, "id": key})
    pipeline.drain()
    soft_bounce(pipeline, message_id_for("n1"), address)  # marketing: counted, not retried
    assert pipeline.session.client("scheduler").list_schedules(GroupName=resources.SCHEDULE_GROUP)["Schedules"] == []
    pipeline.now[0] += 5000
    apply_events([ses_event(pipeline, message_id_for("n2"), "Delivery", address)], pipeline.events_context())
    pipeline.now[0] += 6000  # the first soft bounce is now older than the window ...
    soft_bounce(pipeline, message_id_for("n3"), address)
    # ... but the delivery in between started a new run: no suppression.
    assert [s.scope for s in Suppression.query(address)] == ["soft_bounces"]
    pipeline.now[0] += 10_001
    soft_bounce(pipeline, message_id_for("n3"), address)
    assert Suppression.get(address, "all").reason == "soft_bounce_exhausted"
