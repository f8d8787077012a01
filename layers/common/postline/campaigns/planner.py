"""When a campaign will finish: a walk forward in time, span by span, at the marketing rate, within the window and
each day's budgets.

Assumptions (a plan, not a promise): other mail keeps its reserve, so marketing sends at ``rate ×
marketing_share``; marketing stops at its share of the 24-hour quota (as the limiter does), and what was sent in
the last 24 hours counts against the first day only: the quota frees fully 24 hours after the campaign could first
send, and every 24 hours after that; a warm-up cap holds for each UTC day (as the limiter counts it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any, cast

from ..limiter import QUOTA_SHARE
from .windows import Window, time_zone

RATE, QUOTA, WARMUP, WINDOW = "rate", "quota", "warm-up", "window"
DAY_SECONDS = 86_400
# Beyond this a plan is not worth giving: a quota of a few emails a day for a large audience, say.
LONGEST_PLAN_SECONDS = 5 * 365 * DAY_SECONDS

_LIMIT_NAMES = {"quota": QUOTA, "warmup": WARMUP, "window": WINDOW}
Span = tuple[float, float, int]  # (start, end, emails) in epoch seconds


@dataclass(frozen=True)
class Plan:
    start_at: float
    finish_at: float
    spans: list[Span]
    windows: int  # windows sent in, or without a window, days (24-hour periods from the first send)
    binding: str  # what held it back most: RATE, QUOTA, WARMUP or WINDOW
    window: Window | None

    def describe(self, timezone: str, now: float | None = None) -> str:
        """``3 windows: finishes Thu 05:40 Europe/Berlin (window)``; days are named from ``now`` (by default the
        plan's start)."""
        if not self.spans:
            return "nothing to send"
        zone = time_zone(timezone)
        finish = datetime.fromtimestamp(math.ceil(self.finish_at / 60) * 60, zone)  # "finishes by": minutes up
        today = datetime.fromtimestamp(self.start_at if now is None else now, zone).date()
        unit = "window" if self.window else "day"
        count = f"{self.windows} {unit}{'' if self.windows == 1 else 's'}: " if self.window or self.windows > 1 else ""
        return f"{count}finishes {_day_name(finish.date(), today)} {finish:%H:%M} {timezone} ({self.binding})"


def plan(
    recipients: int,
    *,
    rate: float,
    marketing_share: float,
    max_24_hour_send: float,
    sent_last_24_hours: float,
    start_at: float,
    window: Window | None,
    warmup: list[int] | None,
    already_sent: int = 0,
) -> Plan:
    """The plan for ``recipients`` from ``start_at`` (now, for a campaign under way, with ``already_sent`` of them
    handed on).

    ``max_24_hour_send`` < 0: no quota. ``warmup``: the emails marketing may send on each UTC day, the first being
    ``start_at``'s day (what is left of its pool's cap, at marketing's share of it); days past the list are not
    capped. A ValueError when the campaign could never finish."""
    speed = rate * marketing_share
    if speed <= 0:
        raise ValueError(f"the marketing rate is {rate:g}/s × {marketing_share:g}: nothing would ever be sent")
    quota = None
    if max_24_hour_send >= 0:
        daily = math.floor(max_24_hour_send * QUOTA_SHARE["marketing"])
        if daily < 1:
            raise ValueError(f"a 24-hour quota of {max_24_hour_send:g} leaves marketing nothing to send")
        quota = (max(0, math.floor(max_24_hour_send * QUOTA_SHARE["marketing"] - sent_last_24_hours)), daily)
    left = max(0, recipients - already_sent)
    # Any: each limit has its own type, and each is also set to None in turn below
    limits: dict[str, Any] = {"quota": quota, "warmup": warmup or None, "window": window}
    spans = _walk(left, speed, start_at, **limits)
    finish_at = _finish(spans, start_at)
    # What held it back most: the limit without which it would have finished soonest ("rate" when none would).
    sooner = {
        name: finish_at - _finish(_walk(left, speed, start_at, **{**limits, name: None}), start_at)
        for name, limit in limits.items()
        if limit is not None
    }
    held_most = max(sooner, key=sooner.get, default=None)
    binding = _LIMIT_NAMES[held_most] if held_most and sooner[held_most] > 0 else RATE
    return Plan(start_at, finish_at, spans, _windows(spans, window), binding, window)


def _walk(
    left: int,
    speed: float,
    start_at: float,
    *,
    quota: tuple[int, int] | None,
    warmup: list[int] | None,
    window: Window | None,
) -> list[Span]:
    """The spans in which ``left`` emails are sent from ``start_at``. ``quota``: marketing's budget on the first
    24-hour day and on each one after (None: no quota)."""
    spans: list[Span] = []
    sent_on_quota_day: dict[int, int] = defaultdict(int)
    sent_on_utc_day: dict[int, int] = defaultdict(int)
    first_utc_day = _utc_date(start_at)
    quota_from = None  # when the quota's first day starts: the first moment the campaign could send
    t = start_at
    while left > 0:
        if t - start_at > LONGEST_PLAN_SECONDS:
            raise ValueError(
                f"the campaign would not finish within {LONGEST_PLAN_SECONDS // (365 * DAY_SECONDS)} "
                "years at these limits"
            )
        if window and not window.contains(t):
            t = window.next_start(t)
            continue
        until = window.end_after(t) if window else math.inf
        budget = left
        if quota:
            quota_from = t if quota_from is None else quota_from
            quota_day = math.floor((t - quota_from) / DAY_SECONDS + 1e-9)  # (at a day's edge: that day)
            quota_left = (quota[0] if quota_day == 0 else quota[1]) - sent_on_quota_day[quota_day]
            day_ends = quota_from + (quota_day + 1) * DAY_SECONDS
            if quota_left <= 0:
                t = day_ends
                continue
            until, budget = min(until, day_ends), min(budget, quota_left)
        utc_day = (_utc_date(t) - first_utc_day).days
        if warmup and utc_day < len(warmup):
            midnight = datetime.combine(
                _utc_date(t) + timedelta(days=1), datetime.min.time(), dt_timezone.utc
            ).timestamp()
            cap_left = warmup[utc_day] - sent_on_utc_day[utc_day]
            if cap_left <= 0:
                t = midnight
                continue
            until, budget = min(until, midnight), min(budget, cap_left)
        room = math.floor(speed * (until - t) + 1e-9) if until < math.inf else math.inf
        emails = cast(int, min(budget, room))  # room is infinite only when budget (an int) is the smaller
        end = until if emails == room else t + emails / speed
        if emails:
            if quota:
                sent_on_quota_day[quota_day] += emails
            sent_on_utc_day[utc_day] += emails
            left -= emails
            _extend(spans, (t, end, emails))
        t = end
    return spans


def _extend(spans: list[Span], span: Span) -> None:
    """Add ``span``, joined to the last one when it carries straight on (split only at a day's edge)."""
    if spans and spans[-1][1] == span[0]:
        start, _, emails = spans[-1]
        spans[-1] = (start, span[1], emails + span[2])
    else:
        spans.append(span)


def _finish(spans: list[Span], start_at: float) -> float:
    return spans[-1][1] if spans else start_at


def _windows(spans: list[Span], window: Window | None) -> int:
    if not spans:
        return 0
    if window:  # a window is known by when it closes
        return len({window.end_after(start) for start, _, _ in spans})
    return max(1, math.ceil((spans[-1][1] - spans[0][0]) / DAY_SECONDS))


def _utc_date(t: float) -> date:
    return datetime.fromtimestamp(t, dt_timezone.utc).date()


def _day_name(day: date, today: date) -> str:
    ahead = (day - today).days
    if ahead == 0:
        return "today"
    if ahead == 1:
        return "tomorrow"
    if 1 < ahead < 7:
        return f"{day:%a}"
    return f"{day:%a} {day.day} {day:%b}" + ("" if day.year == today.year else f" {day.year}")
