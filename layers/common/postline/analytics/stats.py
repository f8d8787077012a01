"""Reading the counters back: a scope's hours (shards summed), its totals, rates, reasons and links.

What ``postline stats``, the HTML report, the dashboard and the alerts read: one ``Query`` per day of the period
(its cells, summed for the stream, template or campaign asked for), one for a template's or campaign's links.
"""

from __future__ import annotations

import calendar
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from .counters import COUNTERS, REASON_PREFIX, SCOPES, day_partition, hour, links_partition, parse_cell_key


def rates(counts: dict[str, int]) -> dict[str, float | None]:
    """The rates people watch, ``None`` where nothing was there to divide by. Bounce and complaint rates are per
    email sent, as SES computes the figures it reviews an account on; engagement is per email delivered (human
    opens and clicks only: machine ones are privacy proxies and scanners)."""
    sent, delivered = counts.get("sent", 0), counts.get("delivered", 0)
    opened = counts.get("opened_unique", 0)

    def ratio(part: str, whole: int) -> float | None:
        return counts.get(part, 0) / whole if whole else None

    return {
        "delivery": ratio("delivered", sent),
        "bounce": ratio("hard_bounced", sent),
        "complaint": ratio("complained", sent),
        "human_open": ratio("opened_unique", delivered),
        "click_through": ratio("clicked_unique", delivered),
        "click_to_open": ratio("clicked_unique", opened),
        "unsubscribe": ratio("unsubscribed", delivered),
    }


@dataclass
class Stats:
    kind: str  # stream, template or campaign
    name: str
    since: float
    until: float
    hours: dict[str, dict[str, int]] = field(default_factory=dict)  # "YYYY-MM-DDTHH" (UTC) -> counts
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)  # hard_bounced|soft_bounced|complained -> n
    links: list[dict[str, Any]] = field(default_factory=list)  # [{"url", "clicked", "clicked_unique"}], most first

    @property
    def totals(self) -> dict[str, int]:
        totals = dict.fromkeys(COUNTERS, 0)
        for counts in self.hours.values():
            for name, value in counts.items():
                totals[name] += value
        return totals

    def days(self) -> dict[str, dict[str, int]]:
        days: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        for at_hour, counts in self.hours.items():
            for name, value in counts.items():
                days[at_hour[:10]][name] += value
        return dict(sorted(days.items()))

    def as_dict(self) -> dict[str, Any]:
        """The shape ``--json`` prints, and the report and dashboard draw."""
        totals = self.totals
        return {
            "kind": self.kind,
            "name": self.name,
            "since": hour(self.since),
            "until": hour(self.until),
            "totals": totals,
            "rates": rates(totals),
            "days": self.days(),
            "hours": dict(sorted(self.hours.items())),
            "reasons": self.reasons,
            "links": self.links,
        }


def read(dynamodb, table: str, kind: str, name: str, *, since: float, until: float, with_links: bool = True) -> Stats:
    """``kind`` NAME's counts in the hours from ``since`` to ``until`` (epoch seconds, inclusive)."""
    stats = read_all(dynamodb, table, kind, since=since, until=until).get(name) or Stats(kind, name, since, until)
    if with_links and kind != "stream":
        stats.links = _links(dynamodb, table, links_partition(kind, name))
    return stats


def read_all(dynamodb, table: str, kind: str, *, since: float, until: float) -> dict[str, Stats]:
    """Every stream's, template's or campaign's counts in the period (those with any), in one pass over its days;
    without links."""
    return {name: stats for (_, name), stats in read_many(dynamodb, table, {kind: (since, until)}).items()}


def read_many(dynamodb, table: str, periods: dict[str, tuple[float, float]]) -> dict[tuple[str, str], Stats]:
    """Every scope's counts, each kind over its own period (``{"stream": (since, until), "campaign": ...}``), keyed
    by (kind, name), from one pass over the days the periods span; without links."""
    unknown = set(periods) - set(SCOPES)
    if unknown:
        raise ValueError(f"kinds must be among {SCOPES}, not {sorted(unknown)}")
    hours: dict[tuple[str, str], dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    reasons: dict[tuple[str, str], dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    bounds = {kind: (hour(since), hour(until)) for kind, (since, until) in periods.items()}
    first = min(since for since, _ in periods.values())
    last = max(until for _, until in periods.values())
    for at_hour, names_, item in _cells(dynamodb, table, first, last):
        scopes = [
            (kind, names_[kind]) for kind, (low, high) in bounds.items() if kind in names_ and low <= at_hour <= high
        ]
        for attribute, value in item.items():
            if "N" not in value or attribute == "expires_at":
                continue
            for scope_ in scopes:
                if attribute.startswith(REASON_PREFIX):
                    counted, reason = attribute[len(REASON_PREFIX) :].split(":", 1)
                    reasons[scope_][counted][reason] += int(value["N"])
                elif attribute in COUNTERS:
                    hours[scope_][at_hour][attribute] += int(value["N"])
    found = {}
    for scope_ in hours.keys() | reasons.keys():
        since, until = periods[scope_[0]]
        found[scope_] = Stats(
            *scope_,
            since,
            until,
            hours={
                at_hour: {counter: counts.get(counter, 0) for counter in COUNTERS}
                for at_hour, counts in sorted(hours[scope_].items())
            },
            reasons={counted: dict(counts.most_common()) for counted, counts in reasons[scope_].items()},
        )
    return found


def _links(dynamodb, table: str, partition: str) -> list[dict[str, Any]]:
    """A marketing template's or campaign's links and their clicks, over its whole life (not kept per hour)."""
    found = [
        {
            "url": item.get("url", {}).get("S", ""),
            "clicked": int(item.get("clicked", {}).get("N", "0")),
            "clicked_unique": int(item.get("clicked_unique", {}).get("N", "0")),
        }
        for item in _query(dynamodb, table, partition)
    ]
    return sorted(found, key=lambda link: (-link["clicked_unique"], -link["clicked"], link["url"]))


def names(
    dynamodb, table: str, kind: str, *, since: float | None = None, until: float | None = None
) -> list[tuple[str, float]]:
    """Every campaign or template with counts between ``since`` and ``until`` (by default the last 30 days), with
    the start of the last hour it had any (epoch seconds), latest first."""
    until = time.time() if until is None else until
    since = until - 30 * 86400 if since is None else since
    if kind not in ("template", "campaign"):
        raise ValueError("names are listed for templates and campaigns (the streams are fixed)")
    return latest_first(read_all(dynamodb, table, kind, since=since, until=until))


def latest_first(found: dict[str, Stats]) -> list[tuple[str, float]]:
    """Names of ``read_all``'s answer, with the start of the last hour each had counts, latest first."""
    last = [
        (name, calendar.timegm(time.strptime(max(stats.hours), "%Y-%m-%dT%H")))
        for name, stats in found.items()
        if stats.hours
    ]
    return sorted(last, key=lambda entry: (-entry[1], entry[0]))


def _cells(dynamodb, table: str, since: float, until: float):
    """(hour, names, item) of every cell from ``since``'s hour to ``until``'s: one query per day."""
    first, last = hour(since), hour(until)
    day = first[:10]
    while day <= last[:10]:
        low = first[11:13] if day == first[:10] else "00"
        high = last[11:13] if day == last[:10] else "23"
        for item in _query(
            dynamodb,
            table,
            day_partition(day),
            ("#key BETWEEN :low AND :high", {":low": {"S": low}, ":high": {"S": f"{high}#~"}}),
        ):
            at_hour, names_ = parse_cell_key(day, item["key"]["S"])
            yield at_hour, names_, item
        day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _query(
    dynamodb, table: str, partition: str, key_condition: tuple[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#scope = :scope",
        "ExpressionAttributeNames": {"#scope": "scope"},
        "ExpressionAttributeValues": {":scope": {"S": partition}},
    }
    if key_condition:
        request["KeyConditionExpression"] += f" AND {key_condition[0]}"
        request["ExpressionAttributeNames"]["#key"] = "key"
        request["ExpressionAttributeValues"].update(key_condition[1])
    while True:
        page = dynamodb.query(**request)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
