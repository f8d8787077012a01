"""Analytics: what happened to the emails, counted per campaign, template, stream and hour, and the alerts on it.

``counters`` writes (one write per cell per batch), ``stats`` reads, ``alerts`` checks the rates
and pauses a campaign that passes them. ``Analytics.record`` is what the functions call: count a batch's facts,
emit them as CloudWatch metrics per stream (EMF, through Powertools), and, where SES events moved a campaign's or
stream's counts, check its alerts.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from ..batch import describe_for_log
from ..clients import client
from ..settings import Settings
from .alerts import AlertContext, Thresholds, check
from .counters import Fact, count

logger = Logger(child=True)

METRICS_NAMESPACE = "postline"
# Counted kind -> its CloudWatch metric (dimensions service=postline, stream): the dashboard's per-stream flows.
METRIC_NAMES = {
    "sent": "Sent",
    "delivered": "Delivered",
    "hard_bounced": "HardBounced",
    "soft_bounced": "SoftBounced",
    "complained": "Complained",
    "opened": "Opened",
    "machine_opened": "MachineOpened",
    "clicked": "Clicked",
    "machine_clicked": "MachineClicked",
    "unsubscribed": "Unsubscribed",
    "rejected": "Rejected",
    "failed": "Failed",
    "suppressed": "Suppressed",
    "undeliverable_domain": "UndeliverableDomain",
}
# Facts after which a campaign's or stream's rates are looked at: what moves the bounce and complaint rates, and
# deliveries, which follow nearly every send (so a sample that grows past the minimum is seen too).
ALERTING_KINDS = ("delivered", "hard_bounced", "complained")
ALERT_CHECK_SECONDS = 5

__all__ = ["Analytics", "Fact"]


@dataclass
class Analytics:
    settings: Settings
    dynamodb: Any = field(default_factory=lambda: client("dynamodb"))
    sns: Any = None  # created on the first alert: most functions never raise one
    events: Any = field(default_factory=lambda: client("events"))
    clock: Callable[[], float] = time.time
    _checked: dict[str, float] = field(default_factory=dict)  # scope -> when its alerts were last checked

    @cached_property
    def alert_context(self) -> AlertContext:
        settings = self.settings
        return AlertContext(
            self.dynamodb,
            self.sns or client("sns"),
            self.events,
            settings.stats_table,
            settings.campaigns_table,
            settings.alarm_topic_arn,
            settings.event_bus,
            Thresholds.from_settings(settings),
            self.clock,
        )

    def record(self, facts: Iterable[Fact]) -> None:
        """Count ``facts`` (new ones: see ``counters``), emit them as metrics, and check the alerts of the campaigns
        and streams whose bounce and complaint rates they may move (each at most every ``ALERT_CHECK_SECONDS`` per
        container: a check reads the window's cells). Raises what DynamoDB raises when the counts are not
        written."""
        facts = list(facts)
        if not facts:
            return
        now = self.clock()
        count(self.dynamodb, self.settings.stats_table, facts, now)
        _emit(facts)
        moved = {
            f"{kind}#{name}"
            for fact in facts
            if fact.kind in ALERTING_KINDS
            for kind, name in fact.names().items()
            if kind in ("campaign", "stream")
        }
        due = {scope for scope in moved if now - self._checked.get(scope, float("-inf")) >= ALERT_CHECK_SECONDS}
        if due:
            self._checked.update(dict.fromkeys(due, now))
            try:
                check(self.alert_context, due)
            except Exception as error:  # noqa: BLE001 - checked again with a later batch's events
                logger.warning("alerts not checked", extra={"error": describe_for_log(error)})


def _emit(facts: list[Fact]) -> None:
    for (stream, kind), value in sorted(Counter((fact.stream, fact.kind) for fact in facts).items()):
        emit_metric(METRIC_NAMES[kind], stream, value)


def emit_metric(name: str, stream: str, value: float) -> None:
    """One CloudWatch metric per stream, in EMF (a log line CloudWatch turns into the metric)."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=METRICS_NAMESPACE,
        default_dimensions={"service": "postline"},
    ) as metric:
        metric.add_dimension(name="stream", value=stream)
