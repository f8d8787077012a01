"""What the dashboard shows, read through the AWS APIs the CLI's commands use, on whichever stack the CLI points at
(``postline_cli.target``): the counters (``postline.analytics``), the campaigns table, the alerts' rows and the
queues' attributes. Plain data: ``summary()`` is ``/api/summary.json``, and the page is drawn from it.

The figures are the CLI's: a stream's are ``postline stats --days N --json``'s, a campaign's ``postline stats
--campaigns --json``'s (its default period). They come from one pass over the period's counter cells (one query a
day, ``stats.read_many``), not one read per stream and campaign: each of those would query the same days again. Then a
query per shown scope for its alerts, and one attribute call per queue; the email events table is never read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from postline import queue_names
from postline.analytics.alerts import alert_partition
from postline.analytics.counters import COUNTERS, hour
from postline.analytics.stats import Stats, rates, read, read_many
from postline.campaigns import store
from postline.settings import STREAMS

from ..analytics.reading import (
    CAMPAIGNS_TABLE,
    SCOPE_DAYS,
    STATS_TABLE,
    STREAM_DAYS,
    period,
)
from ..campaigns import campaign_view
from ..target import Target, is_loopback
from ..views import iso

QUEUE_ATTRIBUTES = {
    "messages": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}
_NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
# Each refresh reads every shown campaign's alerts: the most recently active ones are shown, so that a year of
# finished campaigns does not make every refresh slower (`postline stats --campaigns` lists them all).
CAMPAIGNS_SHOWN = 25
MOVES_SHOWN = 20
RECENT_HOURS = 12
HOUR = 3600


@dataclass(frozen=True)
class Sources:
    """Where the dashboard reads: the CLI's target, its clients and its clock (the local stack's, when local)."""

    where: Target
    dynamodb: Any
    sqs: Any
    clock: Callable[[], float]

    @classmethod
    def of_cli(cls) -> Sources:
        from postline.clients import client

        from ..rate import now
        from ..target import target

        return cls(target(), client("dynamodb"), client("sqs"), now)

    @property
    def local(self) -> bool:
        """Whether the CLI points at a stack on this machine (which has an outbox to show)."""
        return bool(self.where.endpoint) and is_loopback(self.where.endpoint)

    @property
    def stats_table(self) -> str:
        return self.where.tables[STATS_TABLE]

    @property
    def campaigns_table(self) -> str:
        return self.where.tables[CAMPAIGNS_TABLE]


# -- the counters ----------------------------------------------------------------------------------------------------
def today(views: dict[str, dict[str, Any]], at: float) -> dict[str, dict[str, int]]:
    """Each stream's counts of today (UTC) so far: the last day of its view (``postline stats --days 1``)."""
    day = hour(at)[:10]
    return {stream: view["days"].get(day, dict.fromkeys(COUNTERS, 0)) for stream, view in views.items()}


def recent_hours(views: dict[str, dict[str, Any]], at: float) -> list[dict[str, Any]]:
    """The last ``RECENT_HOURS`` hours of the views' period, the latest first: each stream's counts in it (zeros
    for a quiet hour)."""
    zeros = dict.fromkeys(COUNTERS, 0)
    since = min(view["since"] for view in views.values())
    slots = [slot for slot in (hour(at - n * HOUR) for n in range(RECENT_HOURS)) if slot >= since]
    return [
        {"hour": slot, "streams": {stream: view["hours"].get(slot, zeros) for stream, view in views.items()}}
        for slot in slots
    ]


def campaign_stats(sources: Sources, name: str, at: float) -> dict[str, Any]:
    """The campaign's ``Stats.as_dict()``, links included, over ``postline stats --campaign NAME --json``'s
    period."""
    since, until = period(SCOPE_DAYS, at)
    return read(sources.dynamodb, sources.stats_table, "campaign", name, since=since, until=until).as_dict()


# -- alerts ----------------------------------------------------------------------------------------------------------
def alerts(sources: Sources, kind: str, name: str) -> list[dict[str, Any]]:
    """A campaign's or stream's alert rows (``alert#bounce``, ``alert#complaint`` in its ``alerts#`` partition,
    postline.analytics.alerts): each metric that ever alerted, ``firing`` or ``clear``, and when it last changed."""
    answer = sources.dynamodb.query(
        TableName=sources.stats_table,
        KeyConditionExpression="#scope = :scope AND begins_with(#key, :alert)",
        ExpressionAttributeNames={"#scope": "scope", "#key": "key"},
        ExpressionAttributeValues={":scope": {"S": alert_partition(kind, name)}, ":alert": {"S": "alert#"}},
    )
    return [
        {
            "kind": kind,
            "name": name,
            "metric": item["key"]["S"].split("#", 1)[1],
            "state": item.get("state", {}).get("S", ""),
            "changed_at": iso(float(item["changed_at"]["N"])) if "changed_at" in item else None,
        }
        for item in answer.get("Items", [])
    ]


# -- campaigns -------------------------------------------------------------------------------------------------------
def can_pause(state: str | None) -> bool:
    """Whether a campaign in ``state`` may be paused (``postline campaigns pause`` would do it)."""
    return state is not None and store.PAUSED in store.MOVES.get(state, ())


def _hour_start(at_hour: str) -> float:
    return datetime.strptime(at_hour, "%Y-%m-%dT%H").replace(tzinfo=timezone.utc).timestamp()


def campaigns(
    sources: Sources, records: list[store.Campaign], counted: dict[str, Stats]
) -> tuple[list[dict[str, Any]], int]:
    """The most recently active campaigns (a state move, or an hour with counts), the latest first: each with its
    record's state and the totals and rates of ``counted`` (as ``postline stats --campaigns --json`` lists them);
    and how many more there are. A campaign an application names in its messages has counts and no record until
    an alert pauses it."""
    by_name = {record.campaign_id: record for record in records}
    last_counted = {name: _hour_start(max(stats.hours)) for name, stats in counted.items() if stats.hours}
    active = {
        name: max(last_counted.get(name, 0.0), by_name[name].state_at if name in by_name else 0.0)
        for name in {*by_name, *counted}
    }
    shown = sorted(active, key=lambda name: (-active[name], name))[:CAMPAIGNS_SHOWN]
    rows = []
    for name in shown:
        record = by_name.get(name)
        totals = counted[name].totals if name in counted else dict.fromkeys(COUNTERS, 0)
        state = record.state if record else None
        rows.append(
            {
                "name": name,
                "state": state,
                "state_since": iso(record.state_at) if record else None,
                "external": record.external if record else True,
                "progress": campaign_view(record)["progress"] if record and not record.external else None,
                "last_counted": iso(last_counted[name]) if name in last_counted else None,
                "totals": totals,
                "rates": rates(totals),
                "alerts": alerts(sources, "campaign", name) if name in counted or record else [],
                "can_pause": can_pause(state),
                "can_resume": state == store.PAUSED,
            }
        )
    return rows, len(active) - len(shown)


def moves(records: list[store.Campaign]) -> list[dict[str, Any]]:
    """The latest campaign state moves (each record's history), the latest first."""
    entries = sorted(
        ((entry["at"], record.campaign_id, entry["state"]) for record in records for entry in record.history),
        reverse=True,
    )[:MOVES_SHOWN]
    return [{"campaign": name, "state": state, "at": iso(at)} for at, name, state in entries]


# -- queues ----------------------------------------------------------------------------------------------------------
def queue_url_prefix(where: Target) -> str:
    """What every postline queue's URL starts with (``.../postline-``): the marketing inbound queue's URL, which the
    CLI knows wherever it points, less its suffix (as the functions derive their queues' URLs)."""
    marketing = where.inbound_queue_url("marketing")
    return marketing[: -len(queue_names.inbound("marketing"))]


def queues(sources: Sources) -> list[dict[str, Any]]:
    """Every postline queue (postline.queue_names) with its backlog: messages waiting, in flight (received, not yet
    deleted) and delayed. A queue the stack does not have (``ses-send-events`` goes with the EventBridge route
    only) is left out."""
    prefix = queue_url_prefix(sources.where)
    found = []
    for suffix in queue_names.suffixes(STREAMS):
        try:
            attributes = sources.sqs.get_queue_attributes(
                QueueUrl=prefix + suffix, AttributeNames=list(QUEUE_ATTRIBUTES.values())
            )["Attributes"]
        except ClientError as error:
            if error.response["Error"]["Code"] in _NO_QUEUE:
                continue
            raise
        found.append(
            {
                "queue": (prefix + suffix).rsplit("/", 1)[-1],
                "dead_letter": suffix.endswith(queue_names.DLQ),
                **{name: int(attributes.get(attribute, 0)) for name, attribute in QUEUE_ATTRIBUTES.items()},
            }
        )
    return found


# -- the whole page --------------------------------------------------------------------------------------------------
def summary(sources: Sources, days: int = STREAM_DAYS) -> dict[str, Any]:
    """Everything the dashboard shows (``/api/summary.json``)."""
    at = sources.clock()
    records = store.list_all(sources.dynamodb, sources.campaigns_table)
    counted = read_many(
        sources.dynamodb, sources.stats_table, {"stream": period(days, at), "campaign": period(SCOPE_DAYS, at)}
    )
    since, until = period(days, at)
    views = {
        stream: (counted.get(("stream", stream)) or Stats("stream", stream, since, until)).as_dict()
        for stream in STREAMS
    }
    rows, more = campaigns(
        sources, records, {name: stats for (kind, name), stats in counted.items() if kind == "campaign"}
    )
    found_alerts = [alert for stream in STREAMS for alert in alerts(sources, "stream", stream)]
    found_alerts += [alert for row in rows for alert in row["alerts"]]
    return {
        "at": iso(at),
        "days": days,
        "local": sources.local,
        "streams": views,
        "today": today(views, at),
        "recent_hours": recent_hours(views, at),
        "campaign_days": SCOPE_DAYS,
        "campaigns": rows,
        "more_campaigns": more,
        "queues": queues(sources),
        "alerts": sorted(found_alerts, key=lambda alert: alert["changed_at"] or "", reverse=True),
        "moves": moves(records),
    }
