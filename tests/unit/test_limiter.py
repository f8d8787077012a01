"""The limiter's arithmetic: slots, horizons, shards, warm-up curves, budget shares, recovery."""
from __future__ import annotations

import heapq
import itertools
import math
from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from postline.limiter import (
    DEFAULT_WARMUP_CURVE,
    HEADROOM,
    RECOVERY_PER_SECOND,
    SHARD_RATE,
    Limiter,
    RecentSends,
    WarmupPlan,
    Windows,
    budget_share,
    recovered,
)


def most_in_any_second(times: list[float]) -> int:
    """The largest number of ``times`` in any half-open one-second span (what SES counts)."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.parametrize("rate", [1, 2, 14, 50, 200, 1000, 3000])
def test_every_slot_taken_never_puts_more_than_the_rate_in_any_second(rate):
    windows = Windows.for_rate(rate)
    slots = [windows.slot(window, position) for window in range(0, 30 * windows.length, windows.length)
             for position in range(windows.capacity) for _ in range(windows.shards)]
    assert most_in_any_second(slots) <= rate * (1 - HEADROOM) + windows.shards
    # and the headroom is all that is left unused
    assert len(slots) / (30 * windows.length) >= rate * (1 - HEADROOM) - windows.shards - 1


def test_a_rate_of_50_leaves_one_slot_a_second_unused():
    windows = Windows.for_rate(50)
    assert (windows.length, windows.capacity, windows.shards) == (1, 49, 1)
    assert windows.slot(100, 49) == 101.0  # the next window's first slot


def test_low_rates_get_windows_long_enough_for_a_batch():
    windows = Windows.for_rate(1)  # the SES sandbox's rate
    assert windows.capacity >= 10 and windows.length == 11
    assert windows.slot(0, 1) - windows.slot(0, 0) >= 1.0  # never faster than one a second


def test_high_rates_shard_the_counter():
    assert Windows.for_rate(SHARD_RATE).shards == 1
    windows = Windows.for_rate(1000)
    assert windows.shards == 4 and windows.capacity * windows.shards <= 1000


def test_a_slowdown_lowers_the_slots():
    assert Windows.for_rate(50, factor=0.5).capacity == 24


def test_the_open_range_starts_at_now_and_ends_at_the_horizon():
    windows = Windows.for_rate(50)  # 49 slots a second
    assert windows.open_range(100, 100.0, 0.7) == (0, 35)  # slots 0.0 .. 0.694 s
    assert windows.open_range(100, 100.5, 0.7) == (25, 49)  # the past half is gone, the rest of the window open
    assert windows.open_range(101, 100.5, 0.7) == (0, 10)  # and the next window's first 0.2 s
    lo, hi = windows.open_range(102, 100.5, 0.7)
    assert lo >= hi  # beyond the horizon: nothing


def test_the_warmup_curve_rises_between_its_points_and_ends_uncapped():
    start = date(2026, 12, 1)
    plan = WarmupPlan(start, {"marketing": ("marketing",)})
    caps = [plan.cap(start + timedelta(days=n)) for n in range(DEFAULT_WARMUP_CURVE[-1][0])]
    assert caps[0] == DEFAULT_WARMUP_CURVE[0][1] and caps[-1] == DEFAULT_WARMUP_CURVE[-1][1]
    assert all(b >= a for a, b in itertools.pairwise(caps))
    assert plan.cap(start + timedelta(days=DEFAULT_WARMUP_CURVE[-1][0])) is None  # warmed up
    assert plan.cap(start - timedelta(days=1)) is None  # not begun
    assert plan.day(start + timedelta(days=6)) == 7


def test_a_warmup_plan_is_read_from_the_deploy_configs_json():
    plan = WarmupPlan.from_json('{"start": "2026-12-01", "pools": {"transactional": ["critical", "transactional"]},'
                                ' "curve": [[1, 100], [3, 400]]}')
    assert plan.cap(date(2026, 12, 2)) == 200  # geometric between the points
    assert plan.pool_of("critical") == "transactional" and plan.pool_of("marketing") is None
    with pytest.raises(ValueError, match="rise"):
        WarmupPlan.from_json('{"start": "2026-12-01", "pools": {"marketing": ["marketing"]}, '
                             '"curve": [[2, 100], [1, 400]]}')
    with pytest.raises(ValueError, match="streams"):
        WarmupPlan.from_json('{"start": "2026-12-01", "pools": {"marketing": ["newsletters"]}}')


def test_as_a_budget_runs_low_marketing_stops_first_and_critical_last():
    assert budget_share("marketing") < budget_share("transactional") < budget_share("critical") == 1.0
    # a pool with marketing alone: marketing is its highest priority and may use the whole cap
    assert budget_share("marketing", ("marketing",)) == 1.0
    assert budget_share("transactional", ("critical", "transactional")) < 1.0


def test_a_slowdown_recovers_gradually():
    assert recovered(0.8, 100.0, 100.0) == 0.8
    assert recovered(0.8, 100.0, 110.0) == pytest.approx(0.8 + 10 * RECOVERY_PER_SECOND)
    assert recovered(0.8, 100.0, 10_000.0) == 1.0


class SendingSimulation:
    """Sends taken in slot order on a controllable clock: each reaches SES ``late`` seconds after it is let go
    and is answered 5 ms after that. Answers due while a send is held back come in the order of their time."""

    def __init__(self, guard: RecentSends | None):
        self.now, self.guard, self.answers, self.arrivals, self.let_go = 0.0, guard, [], [], []

    def advance(self, to: float) -> None:
        while self.answers and self.answers[0][0] <= to:
            self.now, _, answered = heapq.heappop(self.answers)
            answered.__exit__(None, None, None)
        self.now = max(self.now, to)

    def send(self, slot: float, late: float) -> None:
        self.advance(slot)
        admitted = self.guard.admitted(50, lambda seconds: self.advance(self.now + seconds)) if self.guard else None
        if admitted:
            admitted.__enter__()
        self.let_go.append(self.now)
        self.arrivals.append(self.now + late)
        if admitted:
            heapq.heappush(self.answers, (self.now + late + 0.005, len(self.arrivals), admitted))


def late_burst(slot: float) -> float:
    """Sends around the first second's end reach SES 80 ms late (a busy moment); every other one at once."""
    return 0.08 if 0.8 <= slot < 1.1 else 0.0


def simulate(guard: RecentSends | None) -> SendingSimulation:
    windows = Windows.for_rate(50)
    simulation = SendingSimulation(guard)
    if guard is not None:
        guard.clock = lambda: simulation.now
    for slot in (windows.slot(window, position) for window in range(4) for position in range(windows.capacity)):
        simulation.send(slot, late_burst(slot))
    simulation.advance(math.inf)
    return simulation


def test_sends_that_reach_ses_late_then_on_time_would_put_a_second_over_the_rate():
    assert most_in_any_second(simulate(None).arrivals) > 50  # what SES would throttle


def test_a_container_holds_a_send_back_while_the_second_before_it_holds_the_rate_at_ses():
    guard = RecentSends(clock=lambda: 0.0)
    simulation = simulate(guard)
    assert most_in_any_second(simulation.arrivals) <= 50
    assert guard.held > 0
    # held a moment, not a slot's worth of time: the pace is kept
    slots = sorted(simulate(None).let_go)
    assert max(b - a for a, b in zip(slots, sorted(simulation.let_go), strict=True)) < 0.1


def test_unanswered_sends_count_and_the_limit_is_the_accounts_rate():
    now = [0.0]
    ses = SimpleNamespace(get_account=lambda: {"SendQuota": {"MaxSendRate": 3.0, "Max24HourSend": 100.0,
                                                             "SentLast24Hours": 0.0}})
    limiter = Limiter(None, ses, "rate-limits", clock=lambda: now[0])
    open_sends = [limiter.sending(sleep=lambda seconds: None) for _ in range(3)]
    for send in open_sends:
        send.__enter__()

    def answer_one(seconds: float) -> None:  # while the fourth waits, the first is answered, and a second passes
        open_sends.pop(0).__exit__(None, None, None)
        now[0] += 1.0

    with limiter.sending(sleep=answer_one):
        assert now[0] == 1.0 and len(open_sends) == 2
    assert limiter.recent.held == 1
