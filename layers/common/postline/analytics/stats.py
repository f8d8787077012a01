"""Reading the counters back: a scope's hours (shards summed), its totals, rates, reasons and links.

What ``postline stats``, the HTML report, the dashboard and the alerts read. One ``Query`` per scope and period
(hour rows sort by time), one for its links, one for the names that have counts.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from .counters import COUNTERS, INDEX, REASON_PREFIX, SCOPES, hour, scope


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
        return {"kind": self.kind, "name": self.name, "since": hour(self.since), "until": hour(self.until),
                "totals": totals, "rates": rates(totals), "days": self.days(), "hours": dict(sorted(self.hours.items())),
                "reasons": self.reasons, "links": self.links}


def read(dynamodb, table: str, kind: str, name: str, *, since: float, until: float,
         with_links: bool = True) -> Stats:
    """``kind`` NAME's counts in the hours from ``since`` to ``until`` (epoch seconds, inclusive)."""
    if kind not in SCOPES:
        raise ValueError(f"kind must be one of {SCOPES}")
    stats = Stats(kind, name, since, until)
    hours: dict[str, Counter] = defaultdict(Counter)
    reasons: dict[str, Counter] = defaultdict(Counter)
    for item in _query(dynamodb, table, scope(kind, name), "#key BETWEEN :low AND :high",
                       {":low": {"S": f"h#{hour(since)}"}, ":high": {"S": f"h#{hour(until)}#~"}}):
        at_hour = item["key"]["S"].split("#")[1]
        for attribute, value in item.items():
            if "N" not in value or attribute == "expires_at":
                continue
            if attribute.startswith(REASON_PREFIX):
                counted, reason = attribute[len(REASON_PREFIX):].split(":", 1)
                reasons[counted][reason] += int(value["N"])
            elif attribute in COUNTERS:
                hours[at_hour][attribute] += int(value["N"])
    stats.hours = {at_hour: {name: counts.get(name, 0) for name in COUNTERS} for at_hour, counts in hours.items()}
    stats.reasons = {counted: dict(found.most_common()) for counted, found in reasons.items()}
    if with_links:
        stats.links = _links(dynamodb, table, scope(kind, name))
    return stats


def _links(dynamodb, table: str, row: str) -> list[dict[str, Any]]:
    """Links' clicks over the whole life of the scope (links are not kept per hour)."""
    links: dict[str, Counter] = defaultdict(Counter)
    for item in _query(dynamodb, table, row, "begins_with(#key, :link)", {":link": {"S": "link#"}}):
        url = item.get("url", {}).get("S", "")
        for name in ("clicked", "clicked_unique"):
            links[url][name] += int(item.get(name, {}).get("N", "0"))
    ordered = sorted(links.items(), key=lambda entry: (-entry[1]["clicked_unique"], -entry[1]["clicked"], entry[0]))
    return [{"url": url, "clicked": counts["clicked"], "clicked_unique": counts["clicked_unique"]}
            for url, counts in ordered]


def names(dynamodb, table: str, kind: str) -> list[tuple[str, float]]:
    """Every campaign or template with counts, and when they last moved (epoch seconds), latest first."""
    if kind not in ("template", "campaign"):
        raise ValueError("names are listed for templates and campaigns (the streams are fixed)")
    found = [(item["key"]["S"].split("#", 1)[1], float(item["last_at"]["N"]))
             for item in _query(dynamodb, table, INDEX, "begins_with(#key, :kind)", {":kind": {"S": f"{kind}#"}})]
    return sorted(found, key=lambda entry: (-entry[1], entry[0]))


def _query(dynamodb, table: str, row: str, key_condition: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request = {"TableName": table, "KeyConditionExpression": f"#scope = :scope AND {key_condition}",
               "ExpressionAttributeNames": {"#scope": "scope", "#key": "key"},
               "ExpressionAttributeValues": {":scope": {"S": row}, **values}}
    while True:
        page = dynamodb.query(**request)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
