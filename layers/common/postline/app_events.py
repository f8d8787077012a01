"""Events for the user's application: status changes as normalised postline events on an EventBridge bus.

Which events are published is the ``app_events`` setting (``POSTLINE_APP_EVENTS``); by default the ones an
application must act on (bounced, complained, unsubscribed, failed), as sent, delivered, opened and clicked come
with nearly every email and each published event is billed.

Source ``postline``, detail-type the event name (``email.sent``, ``email.delivered``, ``email.bounced``,
``email.complained``, ``email.opened``, ``email.clicked``, ``email.unsubscribed``, ``email.failed``), detail:

    {"message_id": "m...", "event": "email.bounced", "time": "2026-11-27T23:39:51.501Z", "to": "ada@example.com",
     "template": "welcome", "campaign": null, "tags": {"plan": "pro"}, "detail": {...event specific...}}

Publishing is best effort after postline's own records are written: a failure is logged, never retried into
a second status change. Schema: docs/events.md.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools import Logger

from .batch import describe_for_log

logger = Logger(child=True)

SOURCE = "postline"
_PUT_EVENTS_LIMIT = 10


@dataclass(frozen=True)
class AppEvent:
    name: str
    message_id: str
    at: float
    to: str | None = None
    template: str | None = None
    campaign: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)

    def entry(self, bus: str) -> dict[str, Any]:
        time = datetime.fromtimestamp(self.at, timezone.utc)
        body = {
            "message_id": self.message_id,
            "event": self.name,
            "time": time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "to": self.to,
            "template": self.template,
            "campaign": self.campaign,
            "tags": self.tags,
            "detail": self.detail,
        }
        return {
            "Source": SOURCE,
            "DetailType": self.name,
            "Detail": json.dumps(body),
            "EventBusName": bus,
            "Time": time,
            "Resources": [],
        }


@dataclass(frozen=True)
class AccountEvent:
    """An event about the deployment rather than one email (``sending.quota_low``): the same envelope, with no
    message fields."""

    name: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)

    def entry(self, bus: str) -> dict[str, Any]:
        time = datetime.fromtimestamp(self.at, timezone.utc)
        body = {
            "event": self.name,
            "time": time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "detail": self.detail,
        }
        return {
            "Source": SOURCE,
            "DetailType": self.name,
            "Detail": json.dumps(body),
            "EventBusName": bus,
            "Time": time,
            "Resources": [],
        }


def publish(events_client, bus: str, events: Sequence[AppEvent | AccountEvent], enabled: Collection[str]) -> int:
    """PutEvents in batches of 10 for the ``enabled`` event names (the others are dropped); returns how many
    entries failed (logged, not raised)."""
    events = [event for event in events if event.name in enabled]
    failed = 0
    for start in range(0, len(events), _PUT_EVENTS_LIMIT):
        chunk = events[start : start + _PUT_EVENTS_LIMIT]
        try:
            response = events_client.put_events(Entries=[e.entry(bus) for e in chunk])
            failed += response.get("FailedEntryCount", 0)
        except Exception as error:  # noqa: BLE001 - the user's feed must never undo or repeat postline's work
            failed += len(chunk)
            logger.warning("could not publish application events", extra={"error": describe_for_log(error)})
    if failed:
        logger.warning("application events not published", extra={"failed": failed})
    return failed


# A campaign's state -> the event announcing it ("running" is "campaign.resumed" when it ran before).
CAMPAIGN_EVENTS = {
    "scheduled": "campaign.scheduled",
    "running": "campaign.started",
    "waiting": "campaign.waiting",
    "paused": "campaign.paused",
    "done": "campaign.done",
    "cancelled": "campaign.cancelled",
}


def campaign_event(
    campaign_id: str, state: str, counts: dict[str, int], at: float, *, resumed: bool = False
) -> AccountEvent:
    """``campaign.<state>`` for a campaign that just moved to ``state`` (``resumed``: running again after it ran
    before), with its counts. Published whatever ``app_events`` says, as ``sending.quota_low`` is."""
    name = "campaign.resumed" if state == "running" and resumed else CAMPAIGN_EVENTS[state]
    return AccountEvent(name, at, {"campaign": campaign_id, "state": state, "counts": dict(counts)})
