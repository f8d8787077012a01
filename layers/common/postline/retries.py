"""Soft bounces: the same email again later, with exponential backoff over a window (default 72 hours), then a
suppression (``soft_bounce_exhausted``) if the address still cannot take mail.

To send a message again postline needs what the application sent, so the render stage keeps the original send
message (for the streams that are retried) as a ``request`` item on the message's events, expiring with the
window. A retry goes back through the inbound queue with the ``postline_retry`` attribute, so it is rendered
and sent like the first attempt, under the same message id. Delays up to 15 minutes use SQS's own delay;
longer ones an EventBridge Scheduler one-time schedule (a durable timer, not a sleeping function).

The address's soft-bounce history is an item beside its suppressions (scope ``soft_bounces``): when the run of
soft bounces started and how many; a delivery to the address resets it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from .models import EmailEvent

REQUEST = "request"  # the sort key of the stored send message among the message's events
RETRY_ATTRIBUTE = "postline_retry"  # SQS message attribute: which retry this is (1, 2, ...)
SOFT_BOUNCES = "soft_bounces"  # the suppressions-table scope holding an address's soft-bounce history
SQS_MAX_DELAY_SECONDS = 900
SQS_SEND_MESSAGE_TARGET = "arn:aws:scheduler:::aws-sdk:sqs:sendMessage"


def request_item(message_id: str, body: str, now: float, keep_seconds: float) -> EmailEvent:
    return EmailEvent(
        message_id, REQUEST, type=REQUEST, at=now, detail=json.loads(body), expires_at=int(now + keep_seconds)
    )


def retry_delay(attempt: int, first_seconds: int) -> int:
    """10 min, 40 min, 2 h 40, 10 h 40, ~43 h with the defaults: a receiving server gets minutes first, then
    hours, and the whole run fits the 72-hour window."""
    return first_seconds * 4 ** (attempt - 1)


def schedule_target(*, role_arn: str, dead_letter_arn: str | None, send_message: dict[str, Any]) -> dict[str, Any]:
    """A schedule's target: SQS SendMessage with these parameters, run as ``role_arn``. What Scheduler cannot deliver
    once its retries are spent (the role or the queue refusing) goes to ``dead_letter_arn``, the call and its error
    with it, so a lost retry or campaign start is seen and can be sent by hand (docs/deploy.md)."""
    target: dict[str, Any] = {"Arn": SQS_SEND_MESSAGE_TARGET, "RoleArn": role_arn, "Input": json.dumps(send_message)}
    if dead_letter_arn:
        target["DeadLetterConfig"] = {"Arn": dead_letter_arn}
    return target


def schedule_retry(
    sqs,
    scheduler,
    *,
    queue_url: str,
    group: str,
    role_arn: str,
    message_id: str,
    body: str,
    attempt: int,
    due_at: float,
    now: float,
    dead_letter_arn: str | None = None,
) -> str:
    """Put ``body`` back on ``queue_url`` at ``due_at``; returns how ("sqs-delay" or "schedule"). Any error but a
    schedule that exists already (the same soft bounce applied twice) is raised: the caller tries that event again."""
    attributes = {RETRY_ATTRIBUTE: {"DataType": "Number", "StringValue": str(attempt)}}
    delay = max(0, int(due_at - now))
    if delay <= SQS_MAX_DELAY_SECONDS:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body, DelaySeconds=delay, MessageAttributes=attributes)
        return "sqs-delay"
    when = datetime.fromtimestamp(due_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    try:
        scheduler.create_schedule(
            Name=f"postline-retry-{message_id}-{attempt}",
            GroupName=group,
            ScheduleExpression=f"at({when})",
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            Target=schedule_target(
                role_arn=role_arn,
                dead_letter_arn=dead_letter_arn,
                send_message={"QueueUrl": queue_url, "MessageBody": body, "MessageAttributes": attributes},
            ),
        )
    except scheduler.exceptions.ConflictException:
        pass  # the same soft bounce delivered twice: the retry is already scheduled
    return "schedule"


def due_schedule_action(schedule: dict[str, Any]) -> dict[str, Any] | None:
    """The SendMessage parameters of a retry schedule (what EventBridge Scheduler will call), for tools and the
    local stack's scheduler."""
    target = schedule.get("Target", {})
    if target.get("Arn") != SQS_SEND_MESSAGE_TARGET:
        return None
    return json.loads(target["Input"])


def schedule_time(schedule: dict[str, Any]) -> float:
    expression = schedule["ScheduleExpression"]  # at(2026-11-28T01:02:03)
    return datetime.fromisoformat(expression[3:-1]).replace(tzinfo=timezone.utc).timestamp()
