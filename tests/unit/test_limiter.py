"""The limiter's arithmetic: slots, horizons, shards, warm-up curves, budget shares, recovery."""
from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest

from postline.limiter import (DEFAULT_WARMUP_CURVE, HEADROOM, RECOVERY_PER_SECOND, SHARD_RATE, WarmupPlan, Windows,
                              budget_share, recovered)


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


def test_a_new_accounts_rate_leaves_three_percent_headroom():
    windows = Windows.for_rate(50)
    assert (windows.length, windows.capacity, windows.shards) == (1, 48, 1)
    assert windows.slot(100, 24) == 100.5


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
    windows = Windows.for_rate(50)  # 48 slots a second
    assert windows.open_range(100, 100.0, 0.7) == (0, 34)  # slots 0.0 .. 0.6875 s
    assert windows.open_range(100, 100.5, 0.7) == (24, 48)  # the past half is gone, the rest of the window open
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
