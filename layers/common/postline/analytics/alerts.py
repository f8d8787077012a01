"""Alerts: a campaign or stream whose bounce or complaint rate passes its threshold, and the campaign's pause.

Checked after a batch of SES events moved a campaign's or stream's counters: the rates over the last
``alert_window_hours``, once at least ``alert_min_sample`` emails were sent in them (ten emails must not stop a
campaign). An alert fires once per crossing: its state (``alert#bounce`` / ``alert#complaint`` in the scope's
``alerts#`` partition) moves from clear to firing by a conditional write, which only one checker wins, and back to
clear when the rate falls under the threshold again. Firing publishes to the alarm topic (whoever gets the stack's
alarms gets it) and ``campaign.alert`` / ``stream.alert`` for the user's application, and pauses the campaign: its
fan-out stops and the send stage holds its marketing emails (a campaign an application names in its messages, with no
campaign record, gets a record of its own, paused, for the same hold). Critical and transactional mail is never
held by a campaign, and a stream's alert pauses nothing. A person resumes with ``postline campaigns resume``; the
alert stays firing while the rate stays over, so a resumed campaign is not paused again by the same crossing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from ..app_events import AccountEvent, publish
from ..batch import describe_for_log
from ..campaigns import control, store
from ..dynamo import condition_failed
from .counters import COUNTERS
from .stats import rates, read_many

logger = Logger(child=True)

FIRING, CLEAR = "firing", "clear"
# metric -> the counter it rates (its threshold is the Thresholds field of the metric's name)
METRICS = {"bounce": "hard_bounced", "complaint": "complained"}


def alert_partition(kind: str, name: str) -> str:
    """Where a campaign's or stream's alert states are kept (``alert#bounce``, ``alert#complaint``)."""
    return f"alerts#{kind}#{name}"


@dataclass(frozen=True)
class Thresholds:
    bounce: float
    complaint: float
    min_sample: int
    window_hours: int

    @classmethod
    def from_settings(cls, settings) -> Thresholds:
        return cls(
            settings.alert_bounce_rate,
            settings.alert_complaint_rate,
            settings.alert_min_sample,
            settings.alert_window_hours,
        )


@dataclass(frozen=True)
class Alert:
    kind: str  # campaign or stream
    name: str
    metric: str  # bounce or complaint
    rate: float
    threshold: float
    sent: int
    count: int  # hard bounces or complaints in the window
    window_hours: int
    paused: bool = False

    @property
    def event_name(self) -> str:
        return f"{self.kind}.alert"

    def summary(self) -> str:
        action = (
            "it is paused: `postline campaigns resume " + self.name + "` goes on"
            if self.paused
            else ("nothing was paused" if self.kind == "stream" else "it could not be paused: see the logs")
        )
        return (
            f"postline {self.kind} {self.name}: {self.metric} rate {self.rate:.2%} over the last "
            f"{self.window_hours} h ({self.count} of {self.sent} sent) reached {self.threshold:.2%}; {action}"
        )


@dataclass
class AlertContext:
    dynamodb: Any
    sns: Any
    events: Any
    stats_table: str
    campaigns_table: str
    alarm_topic_arn: str
    event_bus: str
    thresholds: Thresholds
    clock: Callable[[], float]


def check(ctx: AlertContext, scopes: Iterable[str]) -> list[Alert]:
    """Check the campaigns and streams among ``scopes`` (``campaign#NAME``, ``stream#NAME``); raise, announce and
    act on each new crossing. Returns the alerts raised."""
    raised: list[Alert] = []
    now, window = ctx.clock(), ctx.thresholds.window_hours
    checked = sorted(tuple(row.split("#", 1)) for row in set(scopes) if row.split("#", 1)[0] in ("campaign", "stream"))
    if not checked:
        return raised
    # One pass over the window's cells for every scope checked (a campaign and its stream read the same days).
    period = (now - window * 3600 + 1, now)
    counted = read_many(ctx.dynamodb, ctx.stats_table, dict.fromkeys({kind for kind, _ in checked}, period))
    for kind, name in checked:
        row = f"{kind}#{name}"
        totals = counted[(kind, name)].totals if (kind, name) in counted else dict.fromkeys(COUNTERS, 0)
        figures = rates(totals)
        firing = _firing(ctx, row)
        for metric, counter in METRICS.items():
            threshold = getattr(ctx.thresholds, metric)
            over = totals["sent"] >= ctx.thresholds.min_sample and (figures[metric] or 0) >= threshold
            if over and metric not in firing and _turn(ctx, row, metric, FIRING, now):
                alert = Alert(
                    kind, name, metric, figures[metric] or 0.0, threshold, totals["sent"], totals[counter], window
                )
                raised.append(_act(ctx, alert, now))
            elif not over and metric in firing:
                _turn(ctx, row, metric, CLEAR, now)
    return raised


def _firing(ctx: AlertContext, row: str) -> set[str]:
    found = ctx.dynamodb.query(
        TableName=ctx.stats_table,
        KeyConditionExpression="#scope = :scope AND begins_with(#key, :alert)",
        ExpressionAttributeNames={"#scope": "scope", "#key": "key"},
        ExpressionAttributeValues={":scope": {"S": alert_partition(*row.split("#", 1))}, ":alert": {"S": "alert#"}},
    )["Items"]
    return {item["key"]["S"].split("#", 1)[1] for item in found if item.get("state", {}).get("S") == FIRING}


def _turn(ctx: AlertContext, row: str, metric: str, state: str, now: float) -> bool:
    """Move the alert to ``state`` unless it is there already; whether this call moved it."""
    try:
        ctx.dynamodb.update_item(
            TableName=ctx.stats_table,
            Key={"scope": {"S": alert_partition(*row.split("#", 1))}, "key": {"S": f"alert#{metric}"}},
            UpdateExpression="SET #state = :state, changed_at = :now",
            ConditionExpression="attribute_not_exists(#state) OR #state <> :state",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":state": {"S": state}, ":now": {"N": str(round(now, 3))}},
        )
        return True
    except ClientError as error:
        if condition_failed(error):
            return False
        raise


def _act(ctx: AlertContext, alert: Alert, now: float) -> Alert:
    if alert.kind == "campaign":
        try:
            paused = _pause(ctx, alert.name, now)
        except Exception as error:  # noqa: BLE001 - the alert is raised once: it must still go out, saying so
            logger.error("campaign not paused", extra={"error": describe_for_log(error)})
            paused = False
        alert = Alert(**{**asdict(alert), "paused": paused})
    logger.warning(
        "alert",
        extra={
            "scope": alert.kind,
            "scope_name": alert.name,
            "metric": alert.metric,
            "rate": alert.rate,
            "sent": alert.sent,
            "paused": alert.paused,
        },
    )
    try:
        ctx.sns.publish(
            TopicArn=ctx.alarm_topic_arn,
            Subject=alert.summary()[:99],
            Message=json.dumps({"summary": alert.summary(), **asdict(alert)}, indent=2),
        )
    except Exception as error:  # noqa: BLE001 - the pause and the application's event still happen
        logger.warning("could not publish the alert to the alarm topic", extra={"error": describe_for_log(error)})
    publish(ctx.events, ctx.event_bus, [AccountEvent(alert.event_name, now, asdict(alert))], (alert.event_name,))
    return alert


def _pause(ctx: AlertContext, campaign_id: str, now: float) -> bool:
    """Pause the campaign (announcing ``campaign.paused``), or, for a name with no campaign record, create one
    paused so that the send stage holds its emails. Whether it is paused now."""
    campaign = store.get(ctx.dynamodb, ctx.campaigns_table, campaign_id)
    if campaign is None:
        try:
            store.create(ctx.dynamodb, ctx.campaigns_table, store.external(campaign_id, now, state=store.PAUSED))
            return True
        except store.CampaignExists:
            campaign = store.get(ctx.dynamodb, ctx.campaigns_table, campaign_id)
    if campaign is None or campaign.state == store.PAUSED:
        return campaign is not None
    try:
        moved = store.move(ctx.dynamodb, ctx.campaigns_table, campaign_id, store.PAUSED, now=now)
    except store.CampaignStateError:  # cancelled, or finished with nothing left to hold
        return False
    control.announce(ctx.events, ctx.event_bus, moved)
    return True
