"""What the read commands show, as plain data (printed as tables, or as JSON with ``--json``)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Any

from postline.contract import message_id_for
from postline.models import (
    BOUNCED,
    CANCELLED,
    COMPLAINED,
    DELIVERED,
    FAILED,
    REJECTED,
    SUPPRESSED,
    UNKNOWN,
    EmailEvent,
    Message,
    Suppression,
)
from postline.retries import REQUEST

_MESSAGE_ID = re.compile(r"^m[a-z2-7]{24}$")

# Record timestamp -> the event it marks, in pipeline order.
_TIMELINE = (
    ("queued_at", "queued"),
    ("rendered_at", "rendered"),
    ("claimed_at", "send_attempt"),
    ("sent_at", "sent"),
    ("last_duplicate_at", "duplicate_ignored"),
)
_FINISHED = {"suppressed": "suppressed", "rejected": "rejected", "failed": "failed"}
NO_RECORD = "no record for this id (not received yet, never sent, or older than the history kept)"
# Where `postline status --wait` stops waiting: nothing more happens to the message unless someone acts.
SETTLED = frozenset({DELIVERED, BOUNCED, COMPLAINED, SUPPRESSED, REJECTED, FAILED, CANCELLED})


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(float(epoch), timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resolve_message_id(reference: str) -> str:
    """A postline message id as given, or the message id of a caller's idempotency key."""
    return reference if _MESSAGE_ID.match(reference) else message_id_for(reference)


def message_view(reference: str) -> dict[str, Any]:
    message_id = resolve_message_id(reference)
    try:
        record = Message.get(message_id, consistent_read=True)
    except Message.DoesNotExist:
        # render writes the first record (for marketing mail, the send stage's claim does); until then the
        # message is waiting on a queue. It may also never have been sent, or its record may have expired:
        # postline cannot tell those apart, and says so.
        return {
            "message_id": message_id,
            "status": UNKNOWN,
            "found": False,
            "reason": NO_RECORD,
            "ses_message_id": None,
            "events": [],
        }
    events: list[dict[str, Any]] = []
    for attribute, name in _TIMELINE:
        value = getattr(record, attribute)
        if value is not None:
            events.append({"type": name, "time": iso(value), "at": float(value)})
    if record.delivered_at is not None:  # a delivery is kept on the record (an event row only if it came late)
        events.append(
            {"type": "delivered", "time": iso(record.delivered_at), "at": float(record.delivered_at)}
            | ({"detail": record.delivery.as_dict()} if record.delivery else {})
        )
    if record.status in _FINISHED and record.finished_at is not None:
        events.append(
            {
                "type": _FINISHED[record.status],
                "time": iso(record.finished_at),
                "at": float(record.finished_at),
                "reason": record.reason,
            }
        )
    for event in EmailEvent.query(message_id):
        if event.type == REQUEST:  # the send message kept for soft-bounce retries, not something that happened
            continue
        entry = {"type": event.type, "time": iso(event.at), "at": float(event.at)}
        if event.detail:
            entry["detail"] = event.detail
        events.append(entry)
    events.sort(key=lambda e: e["at"])
    return {
        "message_id": message_id,
        "status": record.status,
        "found": True,
        "reason": record.reason,
        "recipient": record.recipient,
        "template": record.template,
        "template_version": int(record.template_version) if record.template_version is not None else None,
        "stream": record.stream,
        "campaign": record.campaign,
        "tags": record.tags.as_dict() if record.tags else {},
        "ses_message_id": record.ses_message_id,
        # which way it went: SES's API, or an SMTP relay (docs/smtp.md), whose queue id is then ses_message_id
        "transport": record.transport or ("ses_api" if record.ses_message_id else None),
        "attempts": int(record.attempts or 0),
        "duplicates_ignored": record.repeats_ignored,
        "events": events,
    }


def settled_message_view(
    reference: str, wait_seconds: float, clock=time.monotonic, sleep=time.sleep, poll_seconds: float = 0.5
) -> dict[str, Any]:
    """``message_view`` once the message has settled (``SETTLED``), or as it is after ``wait_seconds``."""
    deadline = clock() + wait_seconds
    while True:
        view = message_view(reference)
        left = deadline - clock()
        if view["status"] in SETTLED or left <= 0:
            return view
        sleep(min(poll_seconds, left))


def suppression_view(item: Suppression) -> dict[str, Any]:
    return {
        "email": item.email,
        "scope": item.scope,
        "reason": item.reason,
        "suppressed_at": iso(item.suppressed_at),
        "source": item.source,
        "detail": item.detail,
    }
