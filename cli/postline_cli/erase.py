"""Erasure (GDPR article 17): forget an address while keeping it suppressed.

Removes every message record sent to the address (in any letter case), with its events (including the send
message kept for retries), any rendered body parked in S3 and any soft-bounce retry still scheduled, then
replaces each of the address's suppressions with one keyed by ``suppression.erased_address`` (an HMAC of the
address), so sends to it are still blocked while the address itself is gone. Its suppression history and
soft-bounce history are removed too.

Erasure also leaves a mark under the erased name (reason ``erased``, scope ``all``) that stops every message
queued before it: jobs waiting on the queues carry the address, and must not send it nor recreate a record
holding it. A message the application queues after the erasure is sent as usual (the mark does not stop it).
Events already delivered to the application's event bus are outside postline's reach.

Finding the messages is a scan of the messages table: erasure is rare, and an index on recipients would cost
a write on every send.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from postline.models import SUPPRESSION_SCOPE_ALL, EmailEvent, Message, Suppression
from postline.queues import mime_prefix
from postline.suppression import ERASED, erased_address, suppression_key

from .suppressions import SCOPES


@dataclass
class Erased:
    messages: int = 0
    events: int = 0
    bodies: int = 0
    retries: int = 0  # soft-bounce retries that were scheduled and are not any more
    kept_suppressed: list[str] = field(default_factory=list)  # scopes still blocked through the keyed hash


def erase(
    address: str,
    erasure_key: bytes,
    s3=None,
    bucket: str | None = None,
    scheduler=None,
    schedule_group: str | None = None,
    clock=time.time,
) -> Erased:
    report = Erased()
    key = suppression_key(address)
    for message in Message.scan():
        if not message.recipient or suppression_key(message.recipient) != key:
            continue
        events = list(EmailEvent.query(message.message_id))
        with EmailEvent.batch_write() as batch:
            for event in events:
                batch.delete(event)
        report.events += len(events)
        if s3 is not None and bucket:
            report.bodies += _delete_bodies(s3, bucket, message.message_id)
        if scheduler is not None and schedule_group:
            report.retries += _delete_retries(scheduler, schedule_group, message.message_id)
        message.delete()
        report.messages += 1
    items = [item for name in dict.fromkeys([key, address]) for item in Suppression.query(name)]
    hashed = erased_address(key, erasure_key)
    in_force = {item.scope: item for item in items if item.scope in SCOPES}
    for scope, item in in_force.items():
        Suppression(hashed, scope, reason=item.reason, suppressed_at=item.suppressed_at, source="erasure").save()
        report.kept_suppressed.append(scope)
    if SUPPRESSION_SCOPE_ALL not in in_force:  # an "all" suppression already stops everything queued before
        Suppression(
            hashed,
            SUPPRESSION_SCOPE_ALL,
            reason=ERASED,
            suppressed_at=clock(),
            source="erasure",
            detail="stops the messages queued before the erasure",
        ).save()
    with Suppression.batch_write() as batch:
        for item in items:
            batch.delete(item)
    return report


def _delete_bodies(s3, bucket: str, message_id: str) -> int:
    """The message's rendered bodies in the claim-check bucket (and where they were kept before)."""
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=mime_prefix(message_id))
        for o in page.get("Contents", [])
    ]
    for key in keys + [f"mime/{message_id}.eml"]:
        s3.delete_object(Bucket=bucket, Key=key)
    return len(keys) + 1


def _delete_retries(scheduler, group: str, message_id: str) -> int:
    """The message's soft-bounce retries still scheduled (``retries.schedule_retry`` names them)."""
    names = [
        s["Name"]
        for page in scheduler.get_paginator("list_schedules").paginate(
            GroupName=group, NamePrefix=f"postline-retry-{message_id}-"
        )
        for s in page.get("Schedules", [])
    ]
    for name in names:
        try:
            scheduler.delete_schedule(GroupName=group, Name=name)
        except scheduler.exceptions.ResourceNotFoundException:
            pass  # it fired meanwhile: its retry finds no record, and is dropped
    return len(names)
