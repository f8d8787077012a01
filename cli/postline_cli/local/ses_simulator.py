"""What SES would publish after a send, produced locally.

The local endpoint logs every accepted send (with the tags and configuration set moto ignores); this thread
turns each into the event records SES publishes through a configuration set's event destination, and puts
them on the local default EventBridge bus as SES does (ten to a request), from where the same rule as in AWS
sends them to the events queue and the ses_events function.
The SES mailbox simulator addresses behave as documented: bounce@ hard-bounces, complaint@ complains,
suppressionlist@ bounces as on the account suppression list, ooto@ and everything else is delivered.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from datetime import datetime, timezone
from typing import Any

from .resources import ACCOUNT, REGION

SIMULATOR_DOMAIN = "simulator.amazonses.com"


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
    for recipient in entry["destination"]:
        local, _, domain = recipient.partition("@")
        kind = local.split("+", 1)[0].lower() if domain.lower() == SIMULATOR_DOMAIN else "success"
        if kind in ("bounce", "suppressionlist"):
            events.append({"eventType": "Bounce", "mail": mail, "bounce": {
                "bounceType": "Permanent",
                "bounceSubType": "OnAccountSuppressionList" if kind == "suppressionlist" else "General",
                "bouncedRecipients": [{"emailAddress": recipient, "action": "failed", "status": "5.1.1",
                                       "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                "timestamp": later, "feedbackId": f"local-{entry['ses_message_id']}", "reportingMTA": "dns; local",
            }})
        elif kind == "complaint":
            events.append({"eventType": "Delivery", "mail": mail, "delivery": {
                "timestamp": later, "recipients": [recipient], "processingTimeMillis": 500,
                "smtpResponse": "250 2.6.0 Message received", "reportingMTA": "local"}})
            events.append({"eventType": "Complaint", "mail": mail, "complaint": {
                "complainedRecipients": [{"emailAddress": recipient}], "timestamp": _iso(sent_at + 1),
                "feedbackId": f"local-{entry['ses_message_id']}", "complaintFeedbackType": "abuse",
                "userAgent": "local simulator"}})
        else:
            events.append({"eventType": "Delivery", "mail": mail, "delivery": {
                "timestamp": later, "recipients": [recipient], "processingTimeMillis": 500,
                "smtpResponse": "250 2.6.0 Message received", "reportingMTA": "local"}})
    return events


# SES's detail-type on EventBridge for each event type.
DETAIL_TYPES = {"Send": "Email Sent", "Delivery": "Email Delivered", "Bounce": "Email Bounced",
                "Complaint": "Email Complaint Received", "Reject": "Email Rejected",
                "DeliveryDelay": "Email Delivery Delayed", "Rendering Failure": "Email Rendering Failed",
                "Subscription": "Email Subscribed", "Open": "Email Opened", "Click": "Email Clicked"}


def bus_entry(event: dict[str, Any]) -> dict[str, Any]:
    """A PutEvents entry as SES publishes the event to the default bus."""
    configuration_set = (event["mail"]["tags"].get("ses:configuration-set") or [""])[0]
    return {"EventBusName": "default", "Source": "aws.ses", "DetailType": DETAIL_TYPES[event["eventType"]],
            "Resources": [f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/{configuration_set}"],
            "Detail": json.dumps(event)}


def put_on_bus(events_client, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put SES events on the default bus, ten to a request (PutEvents' limit); the entries it refused."""
    refused = []
    for start in range(0, len(events), 10):
        answer = events_client.put_events(Entries=[bus_entry(event) for event in events[start:start + 10]])
        refused += [entry for entry in answer["Entries"] if "ErrorCode" in entry]
    return refused


class SesEventPublisher(threading.Thread):
    """Follows the endpoint's send log and publishes the SES events for each new send."""

    def __init__(self, events, send_log: str, stop: threading.Event):
        super().__init__(name="ses-events", daemon=True)
        self.events, self.send_log, self.stop = events, send_log, stop

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
            events = [event for line in filter(None, complete.decode("utf-8").split("\n"))
                      for event in events_for(json.loads(line))]
            for refused in put_on_bus(self.events, events):
                print(f"[ses-simulator] EventBridge refused an event: {refused}", file=sys.stderr, flush=True)
