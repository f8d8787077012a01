"""Counters per campaign, template and stream, by the hour: each event counted once, one write per row per batch.

A ``Fact`` is something that happened to one email (sent, delivered, opened...). ``count`` turns a batch of facts
into one DynamoDB transaction per chunk: a *marker* per fact that may only count once (``m#<message id>`` /
``<what>``, written only where none exists), and one ``ADD`` per counter row touched, with the batch's facts summed.
A marker that exists already cancels the transaction; the facts it stood for are dropped (they were counted
before: a repeated, replayed or redelivered event) and the rest are written again. So a duplicate never counts
twice, in whatever order events arrive, and a crash between two writes cannot happen: there is one write.

Rows are sharded (``SHARDS``): a batch picks one shard at random for its rows, so concurrent batches seldom touch
the same item (a transaction conflicts with any other write in flight on its items), and one that does tries again
on another shard. Readers sum the shards (``stats``). docs/analytics.md shows the items.
"""
from __future__ import annotations

import hashlib
import random
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import ClientError

from ..dynamo import RetryLater

# What a fact can be; each is a counter of the same name (``first`` kinds add ``<kind>_unique`` on a message's
# first one: unique opens and clicks).
ONCE = ("sent", "delivered", "hard_bounced", "complained", "unsubscribed", "rejected", "failed", "suppressed")
FIRST = ("opened", "machine_opened", "clicked", "machine_clicked")
KINDS = (*ONCE, "soft_bounced", *FIRST)
COUNTERS = (*ONCE, "soft_bounced", *FIRST, *(f"{kind}_unique" for kind in FIRST))
SCOPES = ("stream", "template", "campaign")

SHARDS = 8
MARKER_DAYS = 45  # a marker outlives any replay of its event: SES sends late complaints within weeks
ROW_DAYS = 400  # counters are kept over a year, then expire (DynamoDB TTL)
FACTS_PER_TRANSACTION = 10
INDEX = "index"  # scope of the rows naming every campaign and template that has counts (key ``<kind>#<name>``)
_ATTEMPTS = 6
REASON_PREFIX = "reason:"  # attribute ``reason:<kind>:<SES sub-type>`` counts bounces and complaints per reason


@dataclass(frozen=True)
class Fact:
    kind: str
    message_id: str
    at: float
    stream: str
    template: str | None = None
    campaign: str | None = None
    event_id: str | None = None  # soft bounces: which one (each attempt may bounce)
    link: str | None = None  # clicks: the target
    reason: str | None = None  # bounces and complaints: SES's sub-type

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"not a counted kind: {self.kind!r}")

    def rows(self) -> list[str]:
        """The scopes it counts in: its stream, template and campaign."""
        named = (("stream", self.stream), ("template", self.template), ("campaign", self.campaign))
        return [scope(kind, name) for kind, name in named if name]


def scope(kind: str, name: str) -> str:
    return f"{kind}#{name}"


def hour(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H", time.gmtime(at))


def counter_key(at_hour: str, shard: int) -> str:
    return f"h#{at_hour}#{shard}"


def public_link(url: str) -> str:
    """A click's target as the link counts keep it: without query and fragment, which may carry a person's
    data or a token (the counts are read by whoever operates postline, not only the sender)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))[:500]


def link_key(url: str, shard: int) -> str:
    return f"link#{_digest(url)}#{shard}"


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Part:
    """What a fact adds: to these rows' counters, if its marker is new (or always, without one)."""

    marker: str | None
    rows: tuple[tuple[str, str, str], ...]  # (scope, "h"|"link", counter)


def _parts(fact: Fact) -> list[_Part]:
    at_rows = fact.rows()
    counted = tuple((row, "h", fact.kind) for row in at_rows)
    if fact.reason and fact.kind in ("hard_bounced", "soft_bounced", "complained"):
        counted += tuple((row, "h", f"{REASON_PREFIX}{fact.kind}:{fact.reason[:60]}") for row in at_rows)
    if fact.kind in ONCE:
        return [_Part(fact.kind, counted)]
    if fact.kind == "soft_bounced":
        return [_Part(f"soft_bounced#{fact.event_id or fact.at}", counted)]
    parts = [_Part(None, counted), _Part(fact.kind, tuple((row, "h", f"{fact.kind}_unique") for row in at_rows))]
    if fact.kind == "clicked" and fact.link and fact.stream == "marketing":
        # Per link only for marketing: other streams' links are a person's own (a reset link, an order page).
        linked = [row for row in at_rows if not row.startswith("stream#")]
        parts += [_Part(None, tuple((row, "link", "clicked") for row in linked)),
                  _Part(f"clicked#{_digest(public_link(fact.link))}",
                        tuple((row, "link", "clicked_unique") for row in linked))]
    return parts


@dataclass
class Counted:
    """What ``count`` wrote: each new fact (by its index in the batch), and the scopes whose rows moved."""

    new: list[Fact]
    scopes: set[str]


def count(dynamodb, table: str, facts: Iterable[Fact], now: float | None = None) -> Counted:
    """Count ``facts`` once each (markers), one update per counter row per transaction; returns what was new.
    Raises ``RetryLater`` when DynamoDB keeps refusing (the caller's batch is tried again: nothing counts twice)."""
    facts = list(facts)
    now = time.time() if now is None else now
    counted = Counted([], set())
    # A fact's parts and their markers; a marker repeated in the batch counts once (its first fact).
    seen: set[tuple[str, str]] = set()
    pending: list[tuple[Fact, _Part]] = []
    for fact in facts:
        for part in _parts(fact):
            if part.marker is not None:
                if (fact.message_id, part.marker) in seen:
                    continue
                seen.add((fact.message_id, part.marker))
            pending.append((fact, part))
    for chunk in _chunks(pending):
        _write(dynamodb, table, chunk, now, counted)
    return counted


def _chunks(pending: list[tuple[Fact, _Part]]) -> list[list[tuple[Fact, _Part]]]:
    """Parts in groups of ``FACTS_PER_TRANSACTION`` facts (a fact's parts stay together): a fact writes at most
    2 markers, 3 hour rows, 2 link rows and 2 index rows, so a group stays within DynamoDB's 100 items."""
    chunks: list[list[tuple[Fact, _Part]]] = []
    facts: set[int] = set()
    for fact, part in pending:
        if id(fact) not in facts and len(facts) == FACTS_PER_TRANSACTION:
            facts = set()
        if not facts:
            chunks.append([])
        facts.add(id(fact))
        chunks[-1].append((fact, part))
    return chunks


def _write(dynamodb, table: str, chunk: list[tuple[Fact, _Part]], now: float, counted: Counted) -> None:
    attempt = 0
    while chunk:
        shard = random.randrange(SHARDS)
        markers = [(fact, part) for fact, part in chunk if part.marker is not None]
        items = [_marker_put(table, fact, part.marker, now) for fact, part in markers]
        items += _row_updates(table, chunk, shard, now)
        try:
            dynamodb.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                if error.response["Error"]["Code"] in ("ProvisionedThroughputExceededException", "ThrottlingException",
                                                        "InternalServerError", "RequestLimitExceeded"):
                    attempt += 1
                    if attempt < _ATTEMPTS:
                        _pause(attempt)
                        continue
                    raise RetryLater(f"counters not written: {error.response['Error']['Code']}") from error
                raise
            reasons = error.response.get("CancellationReasons") or []
            repeated = {id(markers[i][1]) for i, reason in enumerate(reasons[:len(markers)])
                        if reason.get("Code") == "ConditionalCheckFailed"}
            if repeated:  # counted before: drop them and write the rest at once
                chunk = [(fact, part) for fact, part in chunk if id(part) not in repeated]
                continue
            attempt += 1  # a conflict with another batch's write on a row (or throttling): another shard, later
            if attempt >= _ATTEMPTS:
                raise RetryLater(f"counters not written: {[r.get('Code') for r in reasons]}") from error
            _pause(attempt)
            continue
        counted.new += list({id(fact): fact for fact, _ in chunk}.values())
        counted.scopes |= {row for _, part in chunk for row, _, _ in part.rows}
        return


def _pause(attempt: int) -> None:
    time.sleep(min(1.0, 0.05 * 2 ** attempt) * random.random())


def _marker_put(table: str, fact: Fact, marker: str, now: float) -> dict[str, Any]:
    return {"Put": {
        "TableName": table,
        "Item": {"scope": {"S": f"m#{fact.message_id}"}, "key": {"S": marker},
                 "expires_at": {"N": str(int(now + MARKER_DAYS * 86400))}},
        "ConditionExpression": "attribute_not_exists(#key)",
        "ExpressionAttributeNames": {"#key": "key"},
    }}


def _row_updates(table: str, chunk: list[tuple[Fact, _Part]], shard: int, now: float) -> list[dict[str, Any]]:
    """One ``ADD`` per row: the chunk's increments summed per (scope, hour) and per (scope, link)."""
    sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    urls: dict[tuple[str, str], str] = {}
    for fact, part in chunk:
        for row, family, counter in part.rows:
            if family == "h":
                key = counter_key(hour(fact.at), shard)
            else:
                link = public_link(fact.link or "")
                key = link_key(link, shard)
                urls[(row, key)] = link
            sums[(row, key)][counter] += 1
    updates = [{"Update": {
        "TableName": table, "Key": {"scope": {"S": INDEX}, "key": {"S": row}},
        "UpdateExpression": "SET last_at = :now", "ExpressionAttributeValues": {":now": {"N": str(int(now))}},
    }} for row in sorted({row for row, _ in sums}) if not row.startswith("stream#")]
    expires = {"N": str(int(now + ROW_DAYS * 86400))}
    for (row, key), counters in sums.items():
        names = {f"#c{i}": name for i, name in enumerate(sorted(counters))}
        values: dict[str, Any] = {f":c{i}": {"N": str(counters[name])} for i, name in enumerate(sorted(counters))}
        values[":expires"] = expires
        sets = ["expires_at = :expires"]
        if (row, key) in urls:
            values[":url"] = {"S": urls[(row, key)]}
            sets.append("#url = :url")
            names["#url"] = "url"
        updates.append({"Update": {
            "TableName": table,
            "Key": {"scope": {"S": row}, "key": {"S": key}},
            "UpdateExpression": "ADD " + ", ".join(f"{n} :{n[1:]}" for n in names if n != "#url")
                                + " SET " + ", ".join(sets),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }})
    return updates
