"""Recipient-domain hygiene: whether an address's domain can receive mail at all, asked of the DNS before SES is.

A domain cannot receive mail when it does not exist, when it publishes a null MX (RFC 7505: ``MX 0 .``), or when it
has no MX and no A/AAAA record either (RFC 5321 5.1 falls back to the address records). Mail to it would bounce,
and bounces cost the sender's reputation; the render stage rejects it instead, with the reason
``undeliverable_domain`` and, for a likely typo of a large provider (``gmial.com``), the domain meant.

Answers are kept per domain for ``ttl_seconds``: in the container's memory, and in DynamoDB (the email_events
table, under the key prefix ``domain#``, with the table's TTL attribute) so that every container of a campaign
shares them and a million emails to one provider cost one lookup. A DNS that does not answer in time never holds
up or rejects an email: the domain counts as deliverable (fail open), and ``timeouts`` counts it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.resolver

from .dynamo import batch_get

UNDELIVERABLE_DOMAIN = "undeliverable_domain"
CACHE_PREFIX = "domain#"  # the email_events rows that hold answers (message ids never start with it)
CACHE_SORT_KEY = "mx"
# Large mailbox providers whose misspellings are worth a suggestion (only ever made for a domain that fails).
PROVIDERS = (
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "proton.me",
    "protonmail.com",
    "comcast.net",
    "mail.com",
    "yandex.ru",
)
MEMORY_ENTRIES = 20_000  # a container's cache: the most recently used domains
UNKNOWN_MEMORY_SECONDS = 60  # a domain whose DNS timed out is not asked again for this long by the container


@dataclass(frozen=True)
class DomainAnswer:
    domain: str
    deliverable: bool | None  # None: the DNS did not answer in time (treated as deliverable)
    why: str = ""  # for an undeliverable domain: what the DNS said

    def reason(self) -> str:
        """The rejection reason a message to this domain gets."""
        suggestion = suggest(self.domain)
        return f"{UNDELIVERABLE_DOMAIN}: {self.domain} {self.why}" + (
            f" (did you mean {suggestion}?)" if suggestion else ""
        )


def suggest(domain: str) -> str | None:
    """The large provider ``domain`` is most likely a misspelling of, if any."""
    return None if domain in PROVIDERS else closest(domain, PROVIDERS, max_distance=2)


def closest(word: str, candidates: Iterable[str], max_distance: int) -> str | None:
    """The candidate fewest typing mistakes away from ``word`` (a letter added, dropped, changed, or two swapped),
    if at most ``max_distance``; the first listed of equally close ones."""
    best = min(candidates, key=lambda candidate: typing_distance(word, candidate), default=None)
    return best if best is not None and typing_distance(word, best) <= max_distance else None


def typing_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: edits, counting two neighbours swapped (gmial, gmail) as one."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def make_resolver(nameserver: str = "", timeout: float = 2.0) -> dns.resolver.Resolver:
    """A resolver that gives up after ``timeout`` seconds in all: the system's (``/etc/resolv.conf``, Lambda's VPC
    resolver), or ``nameserver`` as ``HOST`` or ``HOST:PORT``."""
    if nameserver:
        host, _, port = nameserver.rpartition(":") if nameserver.count(":") == 1 else (nameserver, "", "")
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port = [host], int(port or 53)
    else:
        resolver = dns.resolver.Resolver()
    resolver.timeout = resolver.lifetime = timeout
    return resolver


def look_up(resolver: dns.resolver.Resolver, domain: str) -> DomainAnswer:
    """What the DNS says of ``domain`` as a mail destination, within the resolver's lifetime for all its questions
    (MX, then A and AAAA when there is no MX)."""
    deadline = time.monotonic() + resolver.lifetime

    def ask(kind: str):
        left = deadline - time.monotonic()
        if left <= 0:
            raise dns.exception.Timeout()
        return resolver.resolve(domain, kind, raise_on_no_answer=False, search=False, lifetime=left)

    try:
        mx = ask("MX")
        exchanges = [(r.preference, r.exchange.to_text()) for r in mx.rrset or ()]
        if exchanges == [(0, ".")]:
            return DomainAnswer(domain, False, "publishes a null MX: it accepts no mail")
        if exchanges:
            return DomainAnswer(domain, True)
        for kind in ("A", "AAAA"):
            if ask(kind).rrset:
                return DomainAnswer(domain, True)
        return DomainAnswer(domain, False, "has no MX and no A/AAAA record: no server receives its mail")
    except dns.resolver.NXDOMAIN:
        return DomainAnswer(domain, False, "does not exist")
    except (dns.exception.Timeout, dns.resolver.NoNameservers):
        return DomainAnswer(domain, None)


class DomainCheck:
    """The answers for a batch's domains: from memory, then the shared cache, then the DNS (concurrently).

    ``lookups`` counts the domains asked of the DNS, ``timeouts`` those it did not answer in time, ``shared_hits``
    those the shared cache answered."""

    def __init__(
        self,
        resolver: dns.resolver.Resolver,
        dynamodb: Any,
        table: str,
        ttl_seconds: int,
        clock: Callable[[], float],
        workers: int = 8,
    ):
        self.resolver, self.dynamodb, self.table, self.ttl, self.clock = resolver, dynamodb, table, ttl_seconds, clock
        self.workers = workers
        self._memory: OrderedDict[str, tuple[DomainAnswer, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.lookups = self.timeouts = self.shared_hits = 0

    def check(
        self, domains: Iterable[str], on_shared_error: Callable[[Exception], None] = lambda _: None
    ) -> dict[str, DomainAnswer]:
        now = self.clock()
        wanted = {d.lower().rstrip(".") for d in domains}
        answers = {d: a for d in wanted if (a := self._remembered(d, now)) is not None}
        missing = sorted(wanted - answers.keys())
        if missing:
            try:
                shared = self._read_shared(missing, now)
            except Exception as error:  # noqa: BLE001 - the cache is an economy: the DNS answers without it
                on_shared_error(error)
                shared = {}
            self.shared_hits += len(shared)
            for answer in shared.values():
                self._remember(answer, now + self.ttl)
            answers.update(shared)
        asked = [d for d in missing if d not in answers]
        if asked:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(asked))) as pool:
                found = list(pool.map(lambda d: look_up(self.resolver, d), asked))
            self.lookups += len(found)
            known = [a for a in found if a.deliverable is not None]
            self.timeouts += len(found) - len(known)
            for answer in found:
                self._remember(answer, now + (self.ttl if answer.deliverable is not None else UNKNOWN_MEMORY_SECONDS))
                answers[answer.domain] = answer
            try:
                self._write_shared(known, now)
            except Exception as error:  # noqa: BLE001 - as above: the next container asks the DNS again
                on_shared_error(error)
        return answers

    def _remembered(self, domain: str, now: float) -> DomainAnswer | None:
        with self._lock:
            entry = self._memory.get(domain)
            if entry is None or entry[1] <= now:
                return None
            self._memory.move_to_end(domain)
            return entry[0]

    def _remember(self, answer: DomainAnswer, until: float) -> None:
        with self._lock:
            self._memory[answer.domain] = (answer, until)
            self._memory.move_to_end(answer.domain)
            while len(self._memory) > MEMORY_ENTRIES:
                self._memory.popitem(last=False)

    def _read_shared(self, domains: list[str], now: float) -> dict[str, DomainAnswer]:
        keys = [{"message_id": {"S": CACHE_PREFIX + d}, "time_type": {"S": CACHE_SORT_KEY}} for d in domains]
        found = batch_get(self.dynamodb, {self.table: keys})[self.table]
        answers = {}
        for item in found:
            if float(item["expires_at"]["N"]) <= now:  # DynamoDB deletes expired items only eventually
                continue
            domain = item["message_id"]["S"][len(CACHE_PREFIX) :]
            why = json.loads(item["detail"]["S"]) if "detail" in item else ""
            answers[domain] = DomainAnswer(domain, item["type"]["S"] == "deliverable", why)
        return answers

    def _write_shared(self, answers: list[DomainAnswer], now: float) -> None:
        items = [
            {
                "PutRequest": {
                    "Item": {
                        "message_id": {"S": CACHE_PREFIX + a.domain},
                        "time_type": {"S": CACHE_SORT_KEY},
                        "type": {"S": "deliverable" if a.deliverable else UNDELIVERABLE_DOMAIN},
                        "at": {"N": str(now)},
                        "detail": {"S": json.dumps(a.why)},  # JSON, as EmailEvent.detail is everywhere else
                        "expires_at": {"N": str(int(now + self.ttl))},
                    }
                }
            }
            for a in answers
        ]
        for start in range(0, len(items), 25):
            request = {self.table: items[start : start + 25]}
            for _ in range(3):
                request = self.dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                if not request:
                    break
