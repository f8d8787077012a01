"""Erasure (GDPR article 17): forget an address while keeping it suppressed.

Removes every message record sent to the address, with its events (including the send message kept for
retries) and any rendered body parked in S3, then replaces each of the address's suppressions with one keyed by
``suppression.erased_address`` (an HMAC of the address), so sends to it are still blocked while the address
itself is gone. Its suppression history and soft-bounce history are removed too. Events already delivered to
the application's event bus are outside postline's reach.

Finding the messages is a scan of the messages table: erasure is rare, and an index on recipients would cost
a write on every send.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from postline.models import EmailEvent, Message, Suppression
from postline.suppression import erased_address

from .suppressions import SCOPES


@dataclass
class Erased:
    messages: int = 0
    events: int = 0
    bodies: int = 0
    kept_suppressed: list[str] = field(default_factory=list)  # scopes still blocked through the keyed hash


def erase(address: str, erasure_key: bytes, s3=None, bucket: str | None = None) -> Erased:
    report = Erased()
    for message in Message.scan(Message.recipient == address):
        events = list(EmailEvent.query(message.message_id))
        with EmailEvent.batch_write() as batch:
            for event in events:
                batch.delete(event)
        report.events += len(events)
        if s3 is not None and bucket:
            s3.delete_object(Bucket=bucket, Key=f"mime/{message.message_id}.eml")
            report.bodies += 1
        message.delete()
        report.messages += 1
    items = list(Suppression.query(address))
    hashed = erased_address(address, erasure_key)
    for item in items:
        if item.scope in SCOPES:
            Suppression(hashed, item.scope, reason=item.reason, suppressed_at=item.suppressed_at,
                        source="erasure").save()
            report.kept_suppressed.append(item.scope)
    with Suppression.batch_write() as batch:
        for item in items:
            batch.delete(item)
    return report
