"""Campaign control messages: ``{"campaign_id": ..., "version": N}`` on the control queue, each one run of the
fan-out (postline.campaigns.fanout) from the checkpoint at ``version``. They are sent at once (a campaign started
now, a run handing on), or later by SQS's delay (up to 15 minutes) or a one-time EventBridge Scheduler schedule
(a start time, the next window's start), which the local stack's scheduler fires as it fires retries.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone

from ..app_events import campaign_event, publish
from ..retries import SQS_MAX_DELAY_SECONDS, schedule_target
from .store import RUNNING, Campaign


@dataclass(frozen=True)
class ControlMessage:
    campaign_id: str
    version: int
    # The SQS message id it was delivered as (not in the body): the same message delivered again after its run
    # died is recognised by it (store.Campaign.run_by).
    delivery_id: str | None = None

    def body(self) -> str:
        return json.dumps({"campaign_id": self.campaign_id, "version": self.version}, separators=(",", ":"))

    @classmethod
    def from_body(cls, body: str, delivery_id: str | None = None) -> ControlMessage:
        document = json.loads(body)
        campaign_id, version = document["campaign_id"], document["version"]
        if not isinstance(campaign_id, str) or not isinstance(version, int) or isinstance(version, bool):
            raise ValueError('a control message is {"campaign_id": string, "version": integer}')
        return cls(campaign_id, version, delivery_id)


def start_now(sqs, queue_url: str, campaign: Campaign, delay_seconds: int = 0) -> None:
    """A run of ``campaign`` from its current checkpoint, now or after ``delay_seconds`` (at most SQS's 15 min)."""
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=ControlMessage(campaign.campaign_id, campaign.version).body(),
        DelaySeconds=min(SQS_MAX_DELAY_SECONDS, max(0, int(delay_seconds))),
    )


def announce(events, bus: str, campaign: Campaign) -> None:
    """Publish ``campaign.<state>`` for a campaign ``store.move`` just moved (whoever moved it)."""
    runs = sum(1 for entry in campaign.history if entry["state"] == RUNNING)
    event = campaign_event(campaign.campaign_id, campaign.state, campaign.counts, campaign.state_at, resumed=runs > 1)
    publish(events, bus, [event], (event.name,))


def schedule_name(campaign_id: str, at: float) -> str:
    """``campaign-<name>-<epoch seconds>``: within Scheduler's 64 characters (names are 40 at most), and the same
    for the same campaign and time, so a wake-up asked for twice is scheduled once. (By time rather than by
    version: a run outside its window may ask for the next start before its own start schedule is deleted.)"""
    return f"campaign-{campaign_id}-{math.ceil(at)}"


def schedule_start(
    scheduler,
    *,
    group: str,
    role_arn: str,
    queue_url: str,
    campaign: Campaign,
    at: float,
    dead_letter_arn: str | None = None,
) -> str:
    """A one-time schedule in postline's group that puts the campaign's control message on the control queue at
    ``at`` (to the second after: never before ``at``) and is deleted once it has; returns its name. Asking again for
    the same time changes nothing."""
    name = schedule_name(campaign.campaign_id, at)
    when = datetime.fromtimestamp(math.ceil(at), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    message = ControlMessage(campaign.campaign_id, campaign.version)
    try:
        scheduler.create_schedule(
            Name=name,
            GroupName=group,
            ScheduleExpression=f"at({when})",
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            Target=schedule_target(
                role_arn=role_arn,
                dead_letter_arn=dead_letter_arn,
                send_message={"QueueUrl": queue_url, "MessageBody": message.body()},
            ),
        )
    except scheduler.exceptions.ConflictException:
        pass  # asked for already (a control message delivered twice)
    return name


def wake_at(
    sqs,
    scheduler,
    *,
    group: str,
    role_arn: str,
    queue_url: str,
    campaign: Campaign,
    at: float,
    now: float,
    dead_letter_arn: str | None = None,
) -> None:
    """A run of ``campaign`` at ``at``: SQS's delay when that is within 15 minutes, else a schedule."""
    if at - now <= SQS_MAX_DELAY_SECONDS:
        start_now(sqs, queue_url, campaign, delay_seconds=math.ceil(at - now))
    else:
        schedule_start(
            scheduler,
            group=group,
            role_arn=role_arn,
            queue_url=queue_url,
            campaign=campaign,
            at=at,
            dead_letter_arn=dead_letter_arn,
        )
