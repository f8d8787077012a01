"""What SES would publish after a send, produced locally.

The local endpoint logs every accepted send (with the tags, configuration set and headers moto ignores); this
thread turns each into what SES publishes, by the route the deployment chose (``resources.SES_EVENT_ROUTES``):

- ``sns`` (the default): the configuration set's event records but Send (the SNS destination's event types,
  ``infra/stacks/constants.py``) to the topic ``postline-ses-events``, and for a bounce or complaint also the
  identity's feedback notification (no tags, the original headers), as SES does; the topic delivers both to the
  events queue.
- ``eventbridge``: every event record on the default bus, from where the same rules as in AWS send them to the
  events queues (Send events to the one that holds them back).

The SES mailbox simulator addresses behave as documented: bounce@ hard-bounces, complaint@ complains,
suppressionlist@ bounces as on the account suppression list, ooto@ and everything else is delivered. As in SES, a
``+label`` is ignored (``bounce+1@simulator.amazonses.com`` bounces), so a test can bounce many emails, each to
its own address: postline suppresses an address that bounced, and so sends nothing more to it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

from .faults import FaultInjector
from .resources import ACCOUNT, REGION, SES_EVENTS_TOPIC, topic_arn

SIMULATOR_DOMAIN = "simulator.amazonses.com"
SIMULATED_OUTCOMES = frozenset({"bounce", "complaint", "suppressionlist"})  # the rest (success, ooto) deliver


def simulated_outcome(recipient: str) -> str:
    """What SES's mailbox simulator does with ``recipient``: ``bounce``, ``complaint``, ``suppressionlist``, or
    ``success`` (any other address, the simulator's success@ and ooto@ included). The simulator's addresses may
    carry a label, ``bounce+anything@``; their case does not matter."""
    local, _, domain = recipient.rpartition("@")
    if domain.lower() != SIMULATOR_DOMAIN:
        return "success"
    kind = local.split("+", 1)[0].lower()
    return kind if kind in SIMULATED_OUTCOMES else "success"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def events_for(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The SES event records (event publishing format) for one accepted send."""
    sent_at = entry["timestamp"]
    tags = {name: [value] for name, value in entry.get("tags", {}).items()}
    if entry.get("configuration_set"):
        tags["ses:configuration-set"] = [entry["configuration_set"]]
    source = entry.get("source") or ""
    mail = {
        "timestamp": _iso(sent_at),
        "source": source,
        "sourceArn": f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{source.rpartition('@')[2].rstrip('>')}",
        "sendingAccountId": ACCOUNT,
        "messageId": entry["ses_message_id"],
        "destination": entry["destination"],
        "headersTruncated": False,
        "tags": tags,
    }
    events = [{"eventType": "Send", "mail": mail, "send": {}}]
    later = _iso(sent_at + 0.5)

    def delivery(recipient: str) -> dict:
        return {
            "eventType": "Delivery",
            "mail": mail,
            "delivery": {
                "timestamp": later,
                "recipients": [recipient],
                "processingTimeMillis": 500,
                "smtpResponse": "250 2.6.0 Message received",
                "reportingMTA": "local",
            },
        }

    for recipient in entry["destination"]:
        kind = simulated_outcome(recipient)
        if kind in ("bounce", "suppressionlist"):
            events.append(
                {
                    "eventType": "Bounce",
                    "mail": mail,
                    "bounce": {
                        "bounceType": "Permanent",
                        "bounceSubType": "OnAccountSuppressionList" if kind == "suppressionlist" else "General",
                        "bouncedRecipients": [
                            {
                                "emailAddress": recipient,
                                "action": "failed",
                                "status": "5.1.1",
                                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                            }
                        ],
                        "timestamp": later,
                        "feedbackId": f"local-{entry['ses_message_id']}",
                        "reportingMTA": "dns; local",
                    },
                }
            )
        elif kind == "complaint":
            events.append(delivery(recipient))
            events.append(
                {
                    "eventType": "Complaint",
                    "mail": mail,
                    "complaint": {
                        "complainedRecipients": [{"emailAddress": recipient}],
                        "timestamp": _iso(sent_at + 1),
                        "feedbackId": f"local-{entry['ses_message_id']}",
                        "complaintFeedbackType": "abuse",
                        "userAgent": "local simulator",
                    },
                }
            )
        else:
            events.append(delivery(recipient))
    return events


# What the SNS route carries (infra/stacks/constants.py: SNS_EVENT_TYPES, IDENTITY_NOTIFICATION_TYPES).
SNS_SKIPS = frozenset({"Send"})
IDENTITY_NOTIFICATIONS = frozenset({"Bounce", "Complaint"})


def identity_notification(event: dict[str, Any], headers: list[dict[str, str]]) -> dict[str, Any]:
    """The identity's feedback notification for a Bounce or Complaint event record: ``notificationType``, the
    same details, and a ``mail`` without tags but with the original headers (the identity's headers option)."""
    mail = {key: value for key, value in event["mail"].items() if key != "tags"}
    mail.update(headers=headers, headersTruncated=False)
    detail = event["eventType"].lower()
    return {"notificationType": event["eventType"], detail: event[detail], "mail": mail}


def publish_to_topic(sns_client, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Publish SES records to the topic, ten to a request (PublishBatch's limit); the entries it refused."""
    refused = []
    for start in range(0, len(events), 10):
        answer = sns_client.publish_batch(
            TopicArn=topic_arn(SES_EVENTS_TOPIC),
            PublishBatchRequestEntries=[
                {"Id": str(n), "Message": json.dumps(event)} for n, event in enumerate(events[start : start + 10])
            ],
        )
        refused += answer.get("Failed", [])
    return refused


def by_sns(entry: dict[str, Any], destination_enabled: bool = True) -> list[dict[str, Any]]:
    """What SES publishes to the topic for one accepted send: its configuration set's event records (none while the
    set's destination is disabled) and the identity's notifications."""
    records = [event for event in events_for(entry) if event["eventType"] not in SNS_SKIPS]
    return (records if destination_enabled else []) + [
        identity_notification(event, entry.get("headers", []))
        for event in records
        if event["eventType"] in IDENTITY_NOTIFICATIONS
    ]


# SES's detail-type on EventBridge for each event type.
DETAIL_TYPES = {
    "Send": "Email Sent",
    "Delivery": "Email Delivered",
    "Bounce": "Email Bounced",
    "Complaint": "Email Complaint Received",
    "Reject": "Email Rejected",
    "DeliveryDelay": "Email Delivery Delayed",
    "Rendering Failure": "Email Rendering Failed",
    "Subscription": "Email Subscribed",
    "Open": "Email Opened",
    "Click": "Email Clicked",
}


def bus_entry(event: dict[str, Any]) -> dict[str, Any]:
    """A PutEvents entry as SES publishes the event to the default bus."""
    configuration_set = (event["mail"]["tags"].get("ses:configuration-set") or [""])[0]
    return {
        "EventBusName": "default",
        "Source": "aws.ses",
        "DetailType": DETAIL_TYPES[event["eventType"]],
        "Resources": [f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/{configuration_set}"],
        "Detail": json.dumps(event),
    }


def put_on_bus(events_client, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put SES events on the default bus, ten to a request (PutEvents' limit); the entries it refused."""
    refused = []
    for start in range(0, len(events), 10):
        answer = events_client.put_events(Entries=[bus_entry(event) for event in events[start : start + 10]])
        refused += [entry for entry in answer["Entries"] if "ErrorCode" in entry]
    return refused


class SesEventPublisher(threading.Thread):
    """Follows the endpoint's send log and publishes the SES events for each new send, by ``route``."""

    def __init__(self, route: str, sns, events, send_log: str, stop: threading.Event, sesv2=None):
        super().__init__(name="ses-events", daemon=True)
        self.route, self.sns, self.events, self.send_log, self.stop = route, sns, events, send_log, stop
        self.sesv2 = sesv2  # where the configuration sets' event destinations are read (None: always publish)
        self._enabled: dict[str, tuple[bool, float]] = {}
        # Duplicate and out-of-order events, when POSTLINE_LOCAL_ENDPOINT_FAULTS asks for them (bench/soak.py).
        self.faults = FaultInjector.from_environment(os.path.dirname(os.path.abspath(send_log)))

    def destination_enabled(self, configuration_set: str | None) -> bool:
        """Whether the configuration set has an enabled destination for the route (read at most once a second), as
        SES publishes nothing for a disabled one (postline doctor shows it)."""
        if self.sesv2 is None or not configuration_set:
            return True
        known = self._enabled.get(configuration_set)
        if known is None or time.monotonic() - known[1] > 1.0:
            kind = "SnsDestination" if self.route == "sns" else "EventBridgeDestination"
            try:
                found = self.sesv2.get_configuration_set_event_destinations(ConfigurationSetName=configuration_set)[
                    "EventDestinations"
                ]
                enabled = any(d.get("Enabled") and kind in d for d in found)
            except Exception:  # noqa: BLE001 - a set SES does not hold refused the send already: publish as before
                enabled = True
            known = self._enabled[configuration_set] = (enabled, time.monotonic())
        return known[0]

    def run(self) -> None:
        offset = 0
        while not self.stop.wait(0.1):
            if not os.path.exists(self.send_log):
                continue
            with open(self.send_log, "rb") as log:
                log.seek(offset)
                chunk = log.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset += len(complete)
            entries = [json.loads(line) for line in filter(None, complete.decode("utf-8").split("\n"))]
            if self.route == "sns":
                events = [
                    event
                    for entry in entries
                    for event in by_sns(entry, self.destination_enabled(entry.get("configuration_set")))
                ]
            else:
                events = [
                    event
                    for entry in entries
                    if self.destination_enabled(entry.get("configuration_set"))
                    for event in events_for(entry)
                ]
            if self.faults:
                events = self.faults.disturb(events)
            refused = publish_to_topic(self.sns, events) if self.route == "sns" else put_on_bus(self.events, events)
            for entry in refused:
                print(f"[ses-simulator] the {self.route} route refused an event: {entry}", file=sys.stderr, flush=True)
