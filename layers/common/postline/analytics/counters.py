"""Counters: what happened to the emails, by the hour, for each stream, template and campaign.

A ``Fact`` is something that happened to one email (sent, delivered, opened...). ``count`` adds a batch's facts
to *cells*: one item per hour and per (stream, template, campaign) that had emails, in a partition per day
(``d#2026-12-04`` / ``13#marketing#newsletter#june``). A batch's facts usually share one cell, so a batch costs one
``UpdateItem`` (an atomic ``ADD``, 1 write unit), whatever its size; a stream's, a template's or a campaign's
figures are sums of cells, read back a day at a time (``stats``).

Counting each event once is the callers' part, done with writes they make anyway: the send stage counts the
outcome its claim made (a claim is taken once), ses_events marks each counted event in the message's record with
the same write that moves its status (``events._count``), the tracking endpoints mark a message's first open or
click there (for the unique counts). So a repeated, replayed or reordered event never counts twice. The marks are
written before the counts: should DynamoDB fail between the two, a count is lost, never doubled.

Clicks on a marketing email's links are also counted per link (``links#campaign#NAME`` / ``links#template#NAME``),
by scheme, host and path only: the query string may carry a person's data or a token.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# What a fact can be; each is a counter of the same name. A first open or click (``Fact.first``) also adds to
# ``<kind>_unique``.
KINDS = (
    "sent",
    "delivered",
    "hard_bounced",
    "soft_bounced",
    "complained",
    "unsubscribed",
    "rejected",
    "failed",
    "suppressed",
    "opened",
    "machine_opened",
    "clicked",
    "machine_clicked",
    "undeliverable_domain",
)  # rejected by render: the recipient's domain receives no mail (postline.domains)
ENGAGEMENT = ("opened", "machine_opened", "clicked", "machine_clicked")
COUNTERS = (*KINDS, *(f"{kind}_unique" for kind in ENGAGEMENT))
SCOPES = ("stream", "template", "campaign")
REASONS = ("hard_bounced", "soft_bounced", "complained")
REASON_PREFIX = "reason:"  # attribute ``reason:<kind>:<SES sub-type>`` counts bounces and complaints per reason
ROW_DAYS = 400  # cells are kept over a year, then expire (DynamoDB TTL)


@dataclass(frozen=True)
class Fact:
    kind: str
    message_id: str
    at: float
    stream: str
    template: str | None = None
    campaign: str | None = None
    first: bool = False  # the message's first open or click (of this kind): counts as unique too
    link: str | None = None  # clicks: the target
    first_on_link: bool = False  # the message's first click on this link
    reason: str | None = None  # bounces and complaints: SES's sub-type

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"not a counted kind: {self.kind!r}")

    def names(self) -> dict[str, str]:
        """The scopes it counts in: its stream, template and (when it has one) campaign."""
        return {
            kind: name
            for kind, name in (("stream", self.stream), ("template", self.template), ("campaign", self.campaign))
            if name
        }


def day_partition(day: str) -> str:
    return f"d#{day}"


def cell_key(at_hour: str, stream: str, template: str | None, campaign: str | None) -> str:
    """``HH#stream#template#campaign``: template names hold no ``#``; a campaign's name may, so it comes last."""
    return f"{at_hour[11:13]}#{stream}#{template or ''}#{campaign or ''}"


def parse_cell_key(day: str, key: str) -> tuple[str, dict[str, str]]:
    """(the hour ``YYYY-MM-DDTHH``, {"stream", "template", "campaign"} with the empty ones left out)."""
    hour_of_day, stream, template, campaign = key.split("#", 3)
    names = {"stream": stream, "template": template, "campaign": campaign}
    return f"{day}T{hour_of_day}", {kind: name for kind, name in names.items() if name}


def hour(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H", time.gmtime(at))


def links_partition(kind: str, name: str) -> str:
    return f"links#{kind}#{name}"


def public_link(url: str) -> str:
    """A click's target as the link counts keep it: scheme, host and path, without query or fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))[:500]


def link_digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def count(dynamodb, table: str, facts: Iterable[Fact], now: float | None = None) -> None:
    """Add ``facts`` to their cells (and marketing clicks to their links): one ``ADD`` per cell and link a batch
    touched. The caller has made sure each fact is new."""
    now = time.time() if now is None else now
    cells: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    links: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for fact in facts:
        at_hour = hour(fact.at)
        counters = cells[(day_partition(at_hour[:10]), cell_key(at_hour, fact.stream, fact.template, fact.campaign))]
        counters[fact.kind] += 1
        if fact.first and fact.kind in ENGAGEMENT:
            counters[f"{fact.kind}_unique"] += 1
        if fact.reason and fact.kind in REASONS:
            counters[f"{REASON_PREFIX}{fact.kind}:{fact.reason[:60]}"] += 1
        if fact.kind == "clicked" and fact.link and fact.stream == "marketing":
            # Per link only for marketing: other streams' links are a person's own (a reset link, an order page).
            url = public_link(fact.link)
            for kind in ("template", "campaign"):
                if name := fact.names().get(kind):
                    per_link = links[(links_partition(kind, name), url)]
                    per_link["clicked"] += 1
                    per_link["clicked_unique"] += fact.first_on_link
    expires = str(int(now + ROW_DAYS * 86400))
    for (partition, key), counters in cells.items():
        _add(dynamodb, table, partition, key, counters, expires)
    for (partition, url), counters in links.items():
        _add(dynamodb, table, partition, link_digest(url), counters, expires, url=url)


def _add(
    dynamodb, table: str, partition: str, key: str, counters: dict[str, int], expires: str, url: str | None = None
) -> None:
    names = {f"#c{i}": name for i, name in enumerate(sorted(counters))}
    values: dict[str, Any] = {f":c{i}": {"N": str(counters[name])} for i, name in enumerate(sorted(counters))}
    sets = ["expires_at = :expires"]
    values[":expires"] = {"N": expires}
    if url is not None:
        names["#url"], values[":url"] = "url", {"S": url}
        sets.append("#url = :url")
    additions = ", ".join(f"{name} :{name[1:]}" for name in names if name != "#url")
    dynamodb.update_item(
        TableName=table,
        Key={"scope": {"S": partition}, "key": {"S": key}},
        UpdateExpression=f"ADD {additions} SET {', '.join(sets)}",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )
