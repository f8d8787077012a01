"""Parked messages: an operator's decision on an email whose outcome nobody knows (status ``unknown``).

The send stage parks a message when an attempt claimed it and nothing recorded what SES did: the attempt died
or lost SES's answer, and no SES event settled it. Sending it again could send it twice, so a person decides,
from what SES knows (its sending logs or metrics, the recipient): ``sent`` ends it as sent; ``not sent`` puts its
send job, parked in the send DLQ, back on the send queue, and the record back to ``rendered`` so the job may
claim it again. A later SES event about the email settles it too (``postline.events``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action

from postline.batch import MESSAGE_ID_ATTRIBUTE, REASON_ATTRIBUTE
from postline.models import RENDERED, SENT, UNKNOWN, Message

_SEARCH_BATCHES = 100  # a send DLQ holds a few parked jobs, not thousands: look through at most 1,000
_LOOK_SECONDS = 30  # how long the jobs looked at stay invisible to others


class NotParked(RuntimeError):
    """The message cannot be resolved: not parked, or its job is not where it waits."""


@dataclass(frozen=True)
class ParkedJob:
    body: str
    attributes: dict[str, dict[str, str]]
    receipt_handle: str


def resolve_parked(
    message_id: str, sent: bool, sqs, send_queue_url: str, send_dlq_url: str, note: str, clock=time.time
) -> str:
    """Settle parked ``message_id`` as sent, or send it again; returns its status now."""
    try:
        message = Message.get(message_id, consistent_read=True)
    except Message.DoesNotExist:
        raise NotParked(f"{message_id} has no record") from None
    if message.status != UNKNOWN:
        raise NotParked(f"{message_id} is {message.status}, not parked (unknown): there is nothing to resolve")
    job = find_parked_job(sqs, send_dlq_url, message_id)
    if not sent and job is None:
        raise NotParked(
            f"the send job of {message_id} is not in the send DLQ ({send_dlq_url}): it cannot be "
            "sent again from here (SQS keeps a DLQ's messages 14 days)"
        )
    now = clock()
    actions: list[Action] = [Message.updated_at.set(now)]
    if sent:
        actions += [
            Message.status.set(SENT),
            Message.reason.set(f"resolved as sent by an operator: {note}"),
            Message.claim.remove(),
        ]
    else:
        actions += [
            Message.status.set(RENDERED),
            Message.claimed_at.remove(),
            Message.claim.remove(),
            Message.reason.set(f"resolved as not sent by an operator, sent again: {note}"),
        ]
    try:
        message.update(actions=actions, condition=Message.status == UNKNOWN)
    except UpdateError:
        raise NotParked(f"{message_id} changed while it was being resolved: look at it again") from None
    if job is not None:
        if not sent:
            kept = {
                name: value
                for name, value in job.attributes.items()
                if name not in (REASON_ATTRIBUTE, MESSAGE_ID_ATTRIBUTE)
            }
            sqs.send_message(QueueUrl=send_queue_url, MessageBody=job.body, MessageAttributes=kept)
        sqs.delete_message(QueueUrl=send_dlq_url, ReceiptHandle=job.receipt_handle)
    return SENT if sent else RENDERED


def find_parked_job(sqs, dlq_url: str, message_id: str) -> ParkedJob | None:
    """The DLQ message holding ``message_id``'s parked job (it carries the id as a message attribute); every
    other message looked at is made visible again."""
    looked_at: list[str] = []
    found = None
    try:
        for _ in range(_SEARCH_BATCHES):
            messages = sqs.receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=_LOOK_SECONDS
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                attributes = message.get("MessageAttributes", {})
                if found is None and attributes.get(MESSAGE_ID_ATTRIBUTE, {}).get("StringValue") == message_id:
                    found = ParkedJob(
                        message["Body"],
                        {
                            name: {"DataType": value["DataType"], "StringValue": value["StringValue"]}
                            for name, value in attributes.items()
                            if "StringValue" in value
                        },
                        message["ReceiptHandle"],
                    )
                else:
                    looked_at.append(message["ReceiptHandle"])
            if found is not None:
                break
    finally:
        for start in range(0, len(looked_at), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(looked_at[start : start + 10])
                ],
            )
    return found
