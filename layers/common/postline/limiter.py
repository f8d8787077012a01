"""The shared sending-rate limiter: every send invocation takes its batch's tokens here before it calls SES.

**Slots.** The account's rate (SES's ``MaxSendRate``, or the deploy config's) is cut into *slots*, evenly spaced
instants at which one email may reach SES. Time is counted in windows (one second at usual rates); a window holds
``capacity`` slots, numbered from 0, slot ``p`` of window ``W`` being at ``W + p * length / capacity``. A counter
item per window in the ``rate_limits`` table (``used``: how many of its slots are taken) is advanced with one
conditional ``UpdateItem`` for a whole batch, and the sending threads each wait for their slot. Because every
slot belongs to one sender and slots are evenly spaced, no one-second span ever holds more than ``capacity``
sends, whichever second SES counts in, and however many functions send at once. ``HEADROOM`` keeps a slot or so
per second unused, for sends of other functions that reach SES late (each holds back its own: "Lateness").

A slot is never taken in the past (the condition starts at the slot for *now*), so capacity unused a moment ago
is gone, as it is at SES: a quiet spell never turns into a burst.

**Priority by horizon.** A stream may only take slots up to its *horizon* ahead of now: marketing
``marketing_rate_share`` of a window (0.7 s by default), transactional one window, critical three. So marketing
never holds more than its share of the coming slots; the rest is kept for critical and transactional mail, which
take them as they come (a password reset waits at most for marketing's horizon). The reserve is not left idle:
slots nobody else took become marketing's as their time comes within its horizon, so a newsletter alone uses
the whole rate, and critical mail can take every slot. (decisions.md: "Priority by horizon".)

**Sharding.** One counter item takes a write per batch from every sending function; above ``SHARD_RATE`` emails
per second the rate is split into shards, each its own counter item (partition key ``rate#<shard>``) with its
share of the rate and slots of its own. Each container starts at a shard of its own and moves to the next one
when its shard's slots are taken. The shards' slots are each evenly spaced, so the sum stays within the rate.

**The 24-hour quota** (SES's ``Max24HourSend`` and ``SentLast24Hours``, read with ``GetAccount`` every
``quota_refresh_seconds`` and counted in between) is guarded by stream: marketing may use ``QUOTA_SHARE`` 90 % of
it, transactional 97 %, critical all of it; a stream past its share waits, with an alarm metric and one
``sending.quota_low`` application event per level.

**Warm-up.** A pool of standard dedicated IPs in warm-up (``warmup_plan``) has a daily cap that rises along a
curve; a counter item per pool and UTC day holds what was sent, and the lowest-priority stream of the pool stops
first. Mail over the day's cap waits for the next day.

**Lateness.** A send reaches SES some milliseconds after its slot (the handoff write, the request itself), and
not always the same number: a few late sends followed a second later by sends on time would put one second of
SES's count over the rate. So each container also counts what it may have had at SES in the last second (sends
answered within it and sends still unanswered) and holds a send back, a few milliseconds, while that count is at
SES's rate (``Limiter.sending``). It counts only its own sends: across containers the headroom keeps the margin.

**Adaptive.** When SES throttles anyway (another sender on the account, a lowered quota), ``throttled`` lowers the
rate for every function (a factor kept in the table, read every few seconds) and it recovers gradually.

Nothing here drops, fails or sends an email: a batch gets slots for some of its emails, and the caller keeps the
rest waiting on its queue for ``Grant.retry_after`` seconds.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from botocore.exceptions import BotoCoreError, ClientError

from .batch import describe_error, describe_for_log, loggable
from .dynamo import condition_failed

logger = Logger(child=True)

STREAM_ORDER = ("critical", "transactional", "marketing")  # highest priority first
# How far ahead each stream may hold slots, in windows (marketing: its share of the rate, from the settings).
HORIZON_WINDOWS = {"critical": 3.0, "transactional": 1.0}
# Slots left unused for what one container cannot see: sends of other containers reaching SES late (each
# container holds back its own, ``RecentSends``). 2 % is one slot a second at 50 emails a second; it was 3 % before
# that guard (decisions.md, "Each send function holds a send back while its own last second is at SES's rate").
HEADROOM = 0.02
# Emails per second one counter item serves: a batch of 10 per write makes it 25 writes a second, far from
# DynamoDB's 1,000 per partition, and few enough that concurrent writers seldom collide.
SHARD_RATE = 250.0
# A window holds at least one batch's slots (so a batch needs one write): at rates under 10 per second per shard
# windows last longer than a second.
MIN_WINDOW_SLOTS = 10
# Shares of the 24-hour quota, and of a warm-up day's cap, each stream may use: as the budget runs low,
# marketing stops first, then transactional; critical mail may use all of it.
QUOTA_SHARE = {"marketing": 0.90, "transactional": 0.97, "critical": 1.0}
QUOTA_WAIT_SECONDS = 600  # SES: after "Daily message quota exceeded", wait up to 10 minutes and retry
QUOTA_NEAR_REFRESH_SECONDS = 30  # near a stream's share, SES's figure is read this often
# Adaptive slow-down: each throttle by SES multiplies the rate by THROTTLE_FACTOR (at most once per
# THROTTLE_HOLD_SECONDS), then it recovers by RECOVERY_PER_SECOND of the full rate each second. (A gentler, faster
# one, 0.9 and 0.02, used 89 % of the rate instead of 81 % alone, but drew five times the throttles, and beside
# another sender used 69 % instead of 88 %: decisions.md, "The adaptive slow-down stays as it was".)
THROTTLE_FACTOR = 0.8
THROTTLE_HOLD_SECONDS = 2.0
MIN_FACTOR = 0.2
RECOVERY_PER_SECOND = 0.005
SES_WINDOW_SECONDS = 1.0  # SES counts sends per second: the span a container's own sends are counted over
SLOWDOWN_READ_SECONDS = 2.0  # how often a container reads the shared slow-down
MAX_WAITS = 100  # a batch's waits for slots, at most (the deadline ends them first, short of a stopped clock)
WINDOW_TTL_SECONDS = 3600  # counter items outlive their window by this (``postline rate status`` reads them)
# The default warm-up curve for a standard dedicated IP pool: (day, emails that day), growing geometrically
# between the points, uncapped after the last. Modelled on SES's own automatic warm-up of standard dedicated IPs
# (about 45 days, docs.aws.amazon.com/ses/latest/dg/dedicated-ip-warming.html) and the common guidance of starting
# with a few hundred emails a day and about doubling each few days (docs/deploy.md).
DEFAULT_WARMUP_CURVE = (
    (1, 500),
    (3, 1_000),
    (7, 5_000),
    (14, 20_000),
    (21, 50_000),
    (28, 100_000),
    (35, 200_000),
    (42, 400_000),
)

RATE, QUOTA, WARMUP = "the sending rate", "the 24-hour quota", "the warm-up cap"


@dataclass(frozen=True)
class Quota:
    """The account's limits as the limiter uses them: from SES's ``GetAccount`` or the deploy config."""

    max_send_rate: float
    max_24_hour_send: float  # -1: unlimited
    sent_last_24_hours: float
    read_at: float
    source: str  # "ses", or "config" where the deploy config replaces a limit


@dataclass(frozen=True)
class WarmupPlan:
    start: date
    pools: dict[str, tuple[str, ...]]  # pool -> the streams that send through it
    curve: tuple[tuple[int, int], ...] = DEFAULT_WARMUP_CURVE

    @classmethod
    def from_json(cls, text: str) -> WarmupPlan:
        raw = json.loads(text)
        curve = tuple((int(day), int(cap)) for day, cap in raw.get("curve") or DEFAULT_WARMUP_CURVE)
        if (
            not curve
            or any(b[0] <= a[0] or b[1] < a[1] for a, b in pairwise(curve))
            or curve[0][0] < 1
            or curve[0][1] < 1
        ):
            raise ValueError("the curve's days must start at 1 or later and rise, its emails be positive and not fall")
        pools = {str(pool): tuple(streams) for pool, streams in raw["pools"].items()}
        if not pools or any(not streams or set(streams) - set(STREAM_ORDER) for streams in pools.values()):
            raise ValueError(f"each pool needs streams among {', '.join(STREAM_ORDER)}")
        return cls(date.fromisoformat(raw["start"]), pools, curve)

    def pool_of(self, stream: str) -> str | None:
        return next((pool for pool, streams in self.pools.items() if stream in streams), None)

    def day(self, on: date) -> int:
        return (on - self.start).days + 1

    def cap(self, on: date) -> int | None:
        """Emails the pool may send on ``on`` (a UTC day); None once the warm-up is over (or not begun)."""
        day = self.day(on)
        if day < 1 or day > self.curve[-1][0]:
            return None
        before = max((point for point in self.curve if point[0] <= day), default=self.curve[0])
        after = min((point for point in self.curve if point[0] >= day), default=self.curve[-1])
        if after[0] == before[0]:
            return before[1]
        step = (day - before[0]) / (after[0] - before[0])
        return int(before[1] * (after[1] / before[1]) ** step)


def budget_share(stream: str, streams: tuple[str, ...] = STREAM_ORDER) -> float:
    """The share of a budget (quota, warm-up cap) ``stream`` may use among the ``streams`` sharing it: the highest
    priority among them may use all of it."""
    highest = next(s for s in STREAM_ORDER if s in streams)
    return 1.0 if stream == highest else QUOTA_SHARE[stream]


@dataclass(frozen=True)
class Windows:
    """The slot arithmetic for one rate (emails per second, after headroom and slow-down) and shard count."""

    rate: float
    shards: int

    @classmethod
    def for_rate(cls, rate: float, factor: float = 1.0) -> Windows:
        usable = rate * factor * (1 - HEADROOM)
        return cls(usable, max(1, math.ceil(usable / SHARD_RATE)))

    @property
    def length(self) -> int:
        """Seconds per window: one, or enough for a batch's slots at low rates."""
        return max(1, math.ceil(MIN_WINDOW_SLOTS / (self.rate / self.shards)))

    @property
    def capacity(self) -> int:
        """Slots per window of one shard."""
        return max(1, int(self.rate / self.shards * self.length))

    def start(self, at: float) -> int:
        return int(at // self.length) * self.length

    def slot(self, window: int, position: int) -> float:
        return window + position * self.length / self.capacity

    def open_range(self, window: int, now: float, horizon_seconds: float) -> tuple[int, int]:
        """The positions of ``window`` that may be taken at ``now``: from the first slot not in the past to the
        last within the horizon (an empty range when lo >= hi)."""
        per_slot = self.length / self.capacity
        lo = max(0, math.ceil((now - window) / per_slot - 1e-9))
        hi = min(self.capacity, math.floor((now + horizon_seconds - window) / per_slot + 1e-9) + 1)
        return lo, hi


@dataclass
class Grant:
    slots: list[float] = field(default_factory=list)  # when each granted email may be sent
    waiting_for: str | None = None  # what holds the rest back (RATE, QUOTA, WARMUP)
    retry_after: float = 0.0  # seconds until the rest may get slots


class Limiter:
    def __init__(
        self,
        dynamodb,
        sesv2,
        table: str,
        *,
        marketing_share: float = 0.7,
        max_send_rate: float | None = None,
        max_24_hour_send: int | None = None,
        quota_refresh_seconds: int = 300,
        warmup: WarmupPlan | None = None,
        clock: Callable[[], float] = time.time,
        on_quota_low: Callable[[int, Quota], None] | None = None,
    ):
        self.dynamodb, self.sesv2, self.table = dynamodb, sesv2, table
        self.marketing_share = marketing_share
        self.max_send_rate, self.max_24_hour_send = max_send_rate, max_24_hour_send
        self.quota_refresh_seconds = quota_refresh_seconds
        self.warmup = warmup
        self.clock = clock
        self.on_quota_low = on_quota_low
        self._lock = threading.Lock()
        self._quota: Quota | None = None
        self._sent_since_read = 0  # slots granted since SES's figure was read
        self._factor, self._factor_at, self._factor_read_at = 1.0, 0.0, -math.inf
        self._shard = random.randrange(1 << 16)  # noqa: S311 - this container's first shard (modulo the shard count)
        self._used_seen: dict[tuple[int, int], int] = {}  # (shard, window) -> its ``used`` when last seen
        self._pool_full_until: dict[str, float] = {}  # stream -> when its pool's warm-up cap opens again
        self._alert_level, self._alert_at = 0, -math.inf  # the quota alert this container knows was raised
        self.writes = 0  # DynamoDB writes made (the benchmark's writes per email)
        self.recent = RecentSends(clock)

    # -- what holds: the quota, the slow-down --------------------------------------------------------------------

    def quota(self) -> Quota:
        """The limits in force, read from SES when due (both overrides given: SES is not asked)."""
        now = self.clock()
        current = self._quota
        if current is None or now - current.read_at >= self._refresh_interval(current):
            current = self._read_quota(now)
            with self._lock:
                self._quota, self._sent_since_read = current, 0
            if current.max_24_hour_send > 0:  # the alarm's metric (infra/stacks/monitoring.py)
                _metric(
                    "SesQuotaUsedPercent",
                    100 * current.sent_last_24_hours / current.max_24_hour_send,
                    MetricUnit.Percent,
                )
        return current

    def _refresh_interval(self, quota: Quota) -> float:
        if quota.max_24_hour_send < 0:
            return self.quota_refresh_seconds
        left = quota.max_24_hour_send * QUOTA_SHARE["marketing"] - quota.sent_last_24_hours - self._sent_since_read
        near = left < quota.max_send_rate * self.quota_refresh_seconds  # could be crossed before the next read
        return QUOTA_NEAR_REFRESH_SECONDS if near else self.quota_refresh_seconds

    def _read_quota(self, now: float) -> Quota:
        """SES's limits and what the account sent in the last 24 hours; the deploy config's limits, where given,
        replace SES's. A failed read keeps the last one (the batch fails only when there is none yet)."""
        try:
            answer = self.sesv2.get_account()["SendQuota"]
        except (ClientError, BotoCoreError) as error:
            if self._quota is None:
                raise
            logger.warning(
                "could not read the SES quota: the last one stands", extra={"error": loggable(describe_error(error))}
            )
            return replace(
                self._quota,
                read_at=now - self.quota_refresh_seconds + QUOTA_NEAR_REFRESH_SECONDS,
                sent_last_24_hours=self._quota.sent_last_24_hours + self._sent_since_read,
            )
        overridden = self.max_send_rate is not None or self.max_24_hour_send is not None
        return Quota(
            self.max_send_rate or float(answer["MaxSendRate"]),
            self.max_24_hour_send or float(answer["Max24HourSend"]),
            float(answer.get("SentLast24Hours", 0)),
            now,
            "config" if overridden else "ses",
        )

    def factor(self) -> float:
        """The shared slow-down in force (1: none), read from the table every few seconds."""
        now = self.clock()
        if now - self._factor_read_at >= SLOWDOWN_READ_SECONDS:
            item = self.dynamodb.get_item(TableName=self.table, Key=_key("rate#adaptive", "state")).get("Item")
            if item:
                self._factor, self._factor_at = float(item["factor"]["N"]), float(item["at"]["N"])
            self._factor_read_at = now
        return recovered(self._factor, self._factor_at, now)

    def throttled(self, count: int, *, for_the_rate: bool, for_the_quota: bool) -> None:
        """SES refused ``count`` sends of a batch for its limits: for the rate, lower the rate for every function
        (once per moment); for the 24-hour quota, read it again at the next take."""
        _metric("SesThrottledSends", count)
        with self._lock:  # counted when their slots were granted, but SES did not take them (their retries count)
            self._sent_since_read = max(0, self._sent_since_read - count)
        if for_the_quota:
            self._quota = None
        if not for_the_rate:
            return
        now = self.clock()
        if now - self._factor_at < THROTTLE_HOLD_SECONDS:
            return  # lowered a moment ago: these sends went out at the rate before it
        lowered = max(MIN_FACTOR, self.factor() * THROTTLE_FACTOR)
        self._factor, self._factor_at = lowered, now
        try:
            self.writes += 1
            self.dynamodb.update_item(
                TableName=self.table,
                Key=_key("rate#adaptive", "state"),
                UpdateExpression="SET factor = :f, #at = :now",
                ConditionExpression="attribute_not_exists(#at) OR #at < :recent",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={
                    ":f": _n(lowered),
                    ":now": _n(now),
                    ":recent": _n(now - THROTTLE_HOLD_SECONDS),
                },
            )
            logger.warning("SES throttled a send: the sending rate is lowered for a while", extra={"factor": lowered})
        except (ClientError, BotoCoreError) as error:  # the sends are done: never fail them for this
            if not condition_failed(error):  # (when it failed, another function lowered it a moment ago)
                logger.warning("the slow-down was not shared", extra={"error": loggable(describe_error(error))})

    @contextmanager
    def sending(self, sleep: Callable[[float], None]) -> Iterator[None]:
        """Around one call to SES, at its slot: holds the call back while this container may have had SES's
        rate of sends at SES in the last second (see "Lateness" above)."""
        with self.recent.admitted(max(1, math.floor(self.quota().max_send_rate)), sleep):
            yield

    # -- taking slots --------------------------------------------------------------------------------------------

    def take(self, stream: str, count: int) -> Grant:
        """Slots for up to ``count`` emails of ``stream`` now, without waiting; the grant says what holds back
        the rest and for how long."""
        allowed, grant = self._within_quota(stream, count, reserve=True)
        if allowed == 0:
            return grant
        granted = 0
        try:
            taken = self._take_allowed(stream, allowed, count, grant)
            granted = len(taken.slots)
            return taken
        finally:
            with self._lock:  # the quota reserved for emails that got no slot
                self._sent_since_read = max(0, self._sent_since_read - (allowed - granted))

    def _take_allowed(self, stream: str, allowed: int, count: int, grant: Grant) -> Grant:
        windows = Windows.for_rate(self.quota().max_send_rate, self.factor())
        slots = self._take_slots(stream, allowed, windows)
        if slots and self.warmup and (pool := self.warmup.pool_of(stream)):
            kept, held = self._within_warmup(pool, stream, len(slots))
            if kept < len(slots):
                return Grant(slots[:kept], WARMUP, held)
        if len(slots) < allowed:
            return Grant(slots, RATE, self._next_opening(stream, windows, count - len(slots)))
        return Grant(slots, grant.waiting_for, grant.retry_after)

    def held_back(self, stream: str) -> Grant:
        """What holds ``stream`` back before any slot is asked for: its share of the 24-hour quota spent, or its
        pool's warm-up cap reached today (as this container knows it: no write)."""
        allowed, grant = self._within_quota(stream, 1)
        if allowed == 0:
            return grant
        until = self._pool_full_until.get(stream, 0.0)
        if self.clock() < until:
            return Grant(waiting_for=WARMUP, retry_after=until - self.clock())
        return Grant()

    def acquire(self, stream: str, count: int, *, wait_until: float, sleep: Callable[[float], None]) -> Grant:
        """Slots for ``count`` emails, waiting in the invocation (until ``wait_until`` at most) while only the rate
        holds them back; what the quota or a warm-up cap holds back is left to wait on its queue."""
        grant = self.take(stream, count)
        for _ in range(MAX_WAITS):
            if grant.waiting_for != RATE or self.clock() + grant.retry_after >= wait_until:
                break
            sleep(grant.retry_after)
            more = self.take(stream, count - len(grant.slots))
            grant = Grant(grant.slots + more.slots, more.waiting_for, more.retry_after)
        if len(grant.slots) < count:
            _metric("RateLimiterWaits", count - len(grant.slots))
        return grant

    def _within_quota(self, stream: str, count: int, *, reserve: bool = False) -> tuple[int, Grant]:
        """How many of ``count`` emails the stream's share of the 24-hour quota lets through; with ``reserve``,
        counted as sent at once (``take`` gives back what gets no slot)."""
        quota = self.quota()
        if quota.max_24_hour_send < 0:
            return count, Grant()
        with self._lock:  # checked and counted at once: threads sharing a limiter (the local stack's pollers)
            used = quota.sent_last_24_hours + self._sent_since_read  # never both take the last of a share
            allowed = max(0, min(count, math.floor(quota.max_24_hour_send * budget_share(stream) - used)))
            if reserve:
                self._sent_since_read += allowed
        if allowed < count:
            self._quota_low(quota, used + allowed)
            return allowed, Grant(waiting_for=QUOTA, retry_after=QUOTA_WAIT_SECONDS)
        return allowed, Grant()

    def _quota_low(self, quota: Quota, used: float) -> None:
        """Raise the level of the quota alert (1: marketing stopped, 2: transactional too, 3: all mail), once per
        level and day for the whole deployment."""
        level = sum(
            1
            for stream in reversed(STREAM_ORDER)  # (a stream stops with less than one email left)
            if used >= math.floor(quota.max_24_hour_send * budget_share(stream))
        )
        now = self.clock()
        if level == 0 or (level <= self._alert_level and now - self._alert_at < 86_400):
            return  # (level 0: no stream stopped yet)
        self._alert_level, self._alert_at = level, now
        try:
            self.writes += 1
            self.dynamodb.update_item(
                TableName=self.table,
                Key=_key("quota#alert", "level"),
                UpdateExpression="SET #level = :l, #at = :now",
                ConditionExpression="attribute_not_exists(#level) OR #level < :l OR #at < :day_ago",
                ExpressionAttributeNames={"#level": "level", "#at": "at"},
                ExpressionAttributeValues={":l": _n(level), ":now": _n(now), ":day_ago": _n(now - 86_400)},
            )
        except (ClientError, BotoCoreError) as error:  # best effort: the mail waits whether or not it is said
            if not condition_failed(error):
                logger.warning("the quota alert was not recorded", extra={"error": loggable(describe_error(error))})
            return  # (when the condition failed, this level was announced already)
        logger.warning(
            "the 24-hour sending quota is running low",
            extra={"level": level, "used": used, "quota": quota.max_24_hour_send},
        )
        if self.on_quota_low:
            self.on_quota_low(level, quota)

    def _horizon(self, stream: str, windows: Windows) -> float:
        share = self.marketing_share if stream == "marketing" else HORIZON_WINDOWS[stream]
        return share * windows.length

    def _take_slots(self, stream: str, count: int, windows: Windows) -> list[float]:
        now = self.clock()
        horizon = self._horizon(stream, windows)
        slots: list[float] = []
        first = windows.start(now)
        for window in range(first, windows.start(now + horizon) + 1, windows.length):
            for step in range(windows.shards):
                shard = (self._shard + step) % windows.shards
                lo, hi = windows.open_range(window, now, horizon)
                positions = self._take_positions(shard, window, lo, hi, count - len(slots), stream)
                slots += [windows.slot(window, p) for p in positions]
                if len(slots) == count:
                    return slots
        return slots

    def _take_positions(self, shard: int, window: int, lo: int, hi: int, want: int, stream: str) -> range:
        """Advance one window's counter by up to ``want`` positions within [lo, hi): one conditional write, and
        another only when the counter is not where this container last saw it (the failed write says where)."""
        key = (shard, window)
        seen = self._used_seen.get(key)  # None: not seen, or no counter yet
        for _ in range(3):
            ahead = seen is not None and seen >= lo  # the counter is past now: count on from it
            start = seen if ahead else lo
            take = min(want, hi - start)
            if take <= 0:
                return range(0)
            request: dict[str, Any] = {
                "TableName": self.table,
                "Key": _key(f"rate#{shard}", str(window)),
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                "ExpressionAttributeNames": {"#s": stream},
                "ExpressionAttributeValues": {":n": _n(take), ":lo": _n(lo), ":exp": _n(window + WINDOW_TTL_SECONDS)},
            }
            if ahead:  # (the counter may have moved on since: the answer says where it stands now)
                request["UpdateExpression"] = "ADD used :n, #s :n SET expires_at = :exp"
                request["ConditionExpression"] = "used BETWEEN :lo AND :top"
                request["ExpressionAttributeValues"][":top"] = _n(hi - take)
                request["ReturnValues"] = "UPDATED_NEW"
            else:  # the slots before now are gone: the counter starts again at now's
                request["UpdateExpression"] = "SET used = :end, expires_at = :exp ADD #s :n"
                request["ConditionExpression"] = "attribute_not_exists(used) OR used < :lo"
                request["ExpressionAttributeValues"][":end"] = _n(lo + take)
            self.writes += 1
            try:
                answer = self.dynamodb.update_item(**request)
            except ClientError as error:
                if not condition_failed(error):
                    raise
                old = error.response.get("Item", {}).get("used")
                seen = int(old["N"]) if old else None
                continue
            end = int(answer["Attributes"]["used"]["N"]) if ahead else lo + take
            self._remember(key, end)
            return range(end - take, end)
        if seen is not None:
            self._remember(key, seen)
        return range(0)

    def _remember(self, key: tuple[int, int], used: int) -> None:
        self._used_seen[key] = used
        if len(self._used_seen) > 64:  # forget windows long past
            for old in sorted(self._used_seen, key=lambda k: k[1])[:32]:
                del self._used_seen[old]

    def _next_opening(self, stream: str, windows: Windows, count: int) -> float:
        """Seconds until ``count`` more slots may be within the stream's horizon: the slots after the last one
        this container saw taken, or the next window's start."""
        now = self.clock()
        horizon = self._horizon(stream, windows)
        last = max((w for _, w in self._used_seen), default=windows.start(now))
        used = max((u for (_, w), u in self._used_seen.items() if w == last), default=0)
        if used + count > windows.capacity:
            last, used = last + windows.length, 0
        opens = windows.slot(last, used + count - 1) - horizon
        return min(max(opens - now, 0.01), windows.length)

    def _within_warmup(self, pool: str, stream: str, count: int) -> tuple[int, float]:
        """How many of ``count`` emails the pool's warm-up cap lets through today, and seconds until the next
        day where it holds some back."""
        now = self.clock()
        today = datetime.fromtimestamp(now, timezone.utc).date()
        cap = self.warmup.cap(today)
        if cap is None:
            return count, 0.0
        limit = math.floor(cap * budget_share(stream, self.warmup.pools[pool]))
        tomorrow = datetime.combine(today + timedelta(days=1), datetime.min.time(), timezone.utc).timestamp()
        take = min(count, limit)  # (the day's first write creates the counter: its condition cannot hold it back)
        for _ in range(2 if take > 0 else 0):
            try:
                self.writes += 1
                self.dynamodb.update_item(
                    TableName=self.table,
                    Key=_key(f"warmup#{pool}", today.isoformat()),
                    UpdateExpression="ADD used :n, #stream :n SET cap = :cap, expires_at = :exp",
                    ConditionExpression="attribute_not_exists(used) OR used <= :top",
                    ExpressionAttributeNames={"#stream": stream},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    ExpressionAttributeValues={
                        ":n": _n(take),
                        ":top": _n(limit - take),
                        ":cap": _n(cap),
                        ":exp": _n(tomorrow + 7 * 86_400),
                    },
                )
                return take, (tomorrow - now if take < count else 0.0)
            except ClientError as error:
                if not condition_failed(error):
                    raise
                used = int(error.response.get("Item", {}).get("used", {}).get("N", 0))
                take = min(count, limit - used)
                if take <= 0:
                    break
        self._pool_full_until[stream] = tomorrow
        return 0, tomorrow - now


class RecentSends:
    """One container's sends that may have reached SES within the last second: those answered within it (a send
    reaches SES before its answer comes back) and those not answered yet. A send is admitted while they are fewer
    than the limit, so no one second of SES's count, as SES timestamps arrivals, holds more of this container's
    sends than the limit, however late some of them arrived."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self._lock = threading.Lock()
        self._answered: deque[float] = deque()  # answer times, oldest first
        self._unanswered = 0
        self.held = 0  # sends held back (the benchmark's figure)

    @contextmanager
    def admitted(self, limit: int, sleep: Callable[[float], None]) -> Iterator[None]:
        held = False
        while True:
            with self._lock:
                now = self.clock()
                while self._answered and self._answered[0] <= now - SES_WINDOW_SECONDS:
                    self._answered.popleft()
                if len(self._answered) + self._unanswered < limit:
                    self._unanswered += 1
                    break
                # Until the oldest answer leaves the second (all unanswered: until one is answered).
                wait = self._answered[0] + SES_WINDOW_SECONDS - now if self._answered else 0.005
                if not held:
                    self.held, held = self.held + 1, True
            sleep(max(0.001, wait))
        try:
            yield
        finally:
            with self._lock:
                self._unanswered -= 1
                self._answered.append(self.clock())


def recovered(factor: float, since: float, now: float) -> float:
    """A slow-down ``factor`` set at ``since``, recovered towards 1 by ``now``."""
    return min(1.0, factor + RECOVERY_PER_SECOND * max(0.0, now - since))


def _key(bucket: str, window: str) -> dict[str, Any]:
    return {"bucket": {"S": bucket}, "window": {"S": window}}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(round(value, 6)) if isinstance(value, float) else str(value)}


def _metric(name: str, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    """A CloudWatch metric in the embedded metric format (the alarm on SesQuotaUsedPercent watches it)."""
    try:
        with single_metric(name=name, unit=unit, value=value):
            pass  # Powertools adds the ``service`` dimension (POWERTOOLS_SERVICE_NAME)
    except Exception as error:  # noqa: BLE001 - a metric never stops a send (a missing namespace, say)
        logger.debug("metric not written", extra={"metric": name, "error": describe_for_log(error)})
