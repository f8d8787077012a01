"""Analytics: what happened to the emails, counted per campaign, template, stream and hour, and the alerts on it.

``counters`` writes (each event once, one write per row per batch), ``stats`` reads, ``alerts`` checks the rates
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

from ..clients import client
from ..settings import Settings
from .alerts import AlertContext, Thresholds, check
from .counters import Fact, count

logger = Logger(child=True)

METRICS_NAMESPACE = "postline"
# Counted kind -> its CloudWatch metric (dimensions service=postline, stream): the dashboard's per-stream flows.
METRIC_NAMES = {"sent": "Sent", "delivered": "Delivered", "hard_bounced": "HardBounced", "soft_bounced": "SoftBounced",
                "complained": "Complained", "opened": "Opened", "machine_opened": "MachineOpened",
                "clicked": "Clicked", "machine_clicked": "MachineClicked", "unsubscribed": "Unsubscribed",
                "rejected": "Rejected", "failed": "Failed", "suppressed": "Suppressed"}
# Facts after which a campaign's or stream's rates are looked at: what moves the bounce and complaint rates, and
# deliveries, which follow nearly every send (so a sample that grows past the minimum is seen too).
ALERTING_KINDS = ("delivered", "hard_bounced", "complained")

__all__ = ["Analytics", "Fact"]


@dataclass
class Analytics:
    settings: Settings
    dynamodb: Any = field(default_factory=lambda: client("dynamodb"))
    sns: Any = None  # created on the first alert: most functions never raise one
    events: Any = field(default_factory=lambda: client("events"))
    clock: Callable[[], float] = time.time

    @cached_property
    def alert_context(self) -> AlertContext:
        settings = self.settings
        return AlertContext(self.dynamodb, self.sns or client("sns"), self.events, settings.stats_table, settings.campaigns_table,
                            settings.alarm_topic_arn, settings.event_bus, Thresholds.from_settings(settings), self.clock)

    def record(self, facts: Iterable[Fact]) -> list[Fact]:
        """Count ``facts`` (each once, whatever was counted before) and check the alerts they may move; returns
        the facts that were new. Raises ``dynamo.RetryLater`` when the counters could not be written."""
        facts = list(facts)
        if not facts:
            return []
        counted = count(self.dynamodb, self.settings.stats_table, facts, self.clock())
        _emit(counted.new)
        moved = {row for fact in counted.new if fact.kind in ALERTING_KINDS for row in fact.rows()}
        if moved:
            try:
                check(self.alert_context, moved)
            except Exception as error:  # noqa: BLE001 - checked again with the next batch's events
                logger.warning("alerts not checked", extra={"error": str(error)})
        return counted.new


def _emit(facts: list[Fact]) -> None:
    for (stream, kind), value in sorted(Counter((fact.stream, fact.kind) for fact in facts).items()):
        with single_metric(name=METRIC_NAMES[kind], unit=MetricUnit.Count, value=value, namespace=METRICS_NAMESPACE,
                           default_dimensions={"service": "postline"}) as metric:
            metric.add_dimension(name="stream", value=stream)
