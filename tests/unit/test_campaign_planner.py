"""The planner: when a campaign finishes, checked against figures worked out by hand."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from postline.campaigns.planner import plan
from postline.campaigns.windows import Window

UNLIMITED = -1


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def planned(recipients: int, *, rate: float = 14, share: float = 0.7, quota: float = UNLIMITED, sent: float = 0,
            start: str = "2026-12-03 12:00", window: Window | None = None, warmup: list[int] | None = None,
            already_sent: int = 0):
    return plan(recipients, rate=rate, marketing_share=share, max_24_hour_send=quota, sent_last_24_hours=sent,
                start_at=utc(start), window=window, warmup=warmup, already_sent=already_sent)


def test_only_the_rate_holds_it_back():
    result = planned(100_000)  # 14/s × 0.7 = 9.8/s: 100,000 / 9.8 = 10,204.08 s
    assert result.finish_at - utc("2026-12-03 12:00") == pytest.approx(10_204.08, abs=0.01)
    assert result.spans == [(utc("2026-12-03 12:00"), result.finish_at, 100_000)]
    assert (result.windows, result.binding) == (1, "rate")
    assert result.describe("UTC") == "finishes today 14:51 UTC (rate)"  # 14:50:04, by the minute after
    assert result.describe("Europe/Berlin") == "finishes today 15:51 Europe/Berlin (rate)"


def test_what_was_handed_on_already_is_not_planned_again():
    result = planned(100_000, already_sent=50_000)
    assert result.finish_at - utc("2026-12-03 12:00") == pytest.approx(5_102.04, abs=0.01)


def test_the_quota_spreads_it_over_days():
    # 10/s; quota 50,000: marketing 45,000 a day, 40,000 on the first (5,000 sent in the last 24 hours)
    result = planned(100_000, rate=20, share=0.5, quota=50_000, sent=5_000)
    start = utc("2026-12-03 12:00")
    assert result.spans == [(start, start + 4_000, 40_000),
                            (start + 86_400, start + 86_400 + 4_500, 45_000),
                            (start + 2 * 86_400, start + 2 * 86_400 + 1_500, 15_000)]
    assert (result.windows, result.binding) == (3, "quota")
    assert result.describe("UTC") == "3 days: finishes Sat 12:25 UTC (quota)"


def test_a_quota_spent_already_waits_a_day():
    result = planned(1_000, rate=10, share=1, quota=10_000, sent=9_000)
    start = utc("2026-12-03 12:00")
    assert result.spans == [(start + 86_400, start + 86_400 + 100, 1_000)]
    assert result.binding == "quota"


def test_a_window_takes_three_nights():
    # 02:00-06:00 in Berlin is 14,400 s: 141,120 emails at 9.8/s; 300,000 - 2 × 141,120 = 17,760: 1,812.24 s
    window = Window.parse("02:00-06:00", "Europe/Berlin")
    result = planned(300_000, start="2026-12-01 01:00", window=window)  # Tuesday 02:00 CET
    assert [emails for _, _, emails in result.spans] == [141_120, 141_120, 17_760]
    assert result.finish_at == pytest.approx(utc("2026-12-03 01:00") + 1_812.24, abs=0.01)
    assert (result.windows, result.binding) == (3, "window")
    assert result.describe("Europe/Berlin") == "3 windows: finishes Thu 02:31 Europe/Berlin (window)"
    assert result.describe("UTC") == "3 windows: finishes Thu 01:31 UTC (window)"


def test_a_campaign_created_in_the_afternoon_waits_for_its_window():
    window = Window.parse("02:00-06:00", "Europe/Berlin")
    result = planned(1_000, start="2026-12-03 12:00", window=window)
    assert result.spans[0][0] == utc("2026-12-04 01:00")
    assert result.describe("Europe/Berlin") == "1 window: finishes tomorrow 02:02 Europe/Berlin (window)"


def test_the_night_the_clocks_go_forward_is_an_hour_shorter():
    # Sat 28 March 2026: 4 h (141,120); Sun 29: 03:00-06:00 CEST, 3 h (105,840); Mon 30: 53,040 left, 5,412.24 s
    window = Window.parse("02:00-06:00", "Europe/Berlin")
    result = planned(300_000, start="2026-03-28 01:00", window=window)
    assert result.spans == [(utc("2026-03-28 01:00"), utc("2026-03-28 05:00"), 141_120),
                            (utc("2026-03-29 01:00"), utc("2026-03-29 04:00"), 105_840),
                            (utc("2026-03-30 00:00"), pytest.approx(utc("2026-03-30 00:00") + 5_412.24, abs=0.01),
                             53_040)]
    assert result.describe("Europe/Berlin", now=utc("2026-03-28 01:00")) == \
        "3 windows: finishes Mon 03:31 Europe/Berlin (window)"


def test_the_quota_binds_when_each_window_could_send_more_than_it_allows():
    # 45,000 a day at 9.8/s is 4,591.8 s of a 14,400 s window; the third night sends the last 10,000: 1,020.4 s
    window = Window.parse("02:00-06:00", "UTC")
    result = planned(100_000, quota=50_000, start="2026-12-01 02:00", window=window)
    assert [emails for _, _, emails in result.spans] == [45_000, 45_000, 10_000]
    assert result.finish_at == pytest.approx(utc("2026-12-03 02:00") + 1_020.41, abs=0.01)
    assert (result.windows, result.binding) == (3, "quota")


def test_warm_up_caps_each_utc_day_and_the_days_past_the_list_are_not_capped():
    # 10/s: 1,000 on Thursday (100 s), 2,000 on Friday (200 s), 5,000 on Saturday (500 s), the last 2,000 on Sunday
    result = planned(10_000, rate=10, share=1, warmup=[1_000, 2_000, 5_000])
    assert result.spans == [(utc("2026-12-03 12:00"), utc("2026-12-03 12:01:40"), 1_000),
                            (utc("2026-12-04 00:00"), utc("2026-12-04 00:03:20"), 2_000),
                            (utc("2026-12-05 00:00"), utc("2026-12-05 00:08:20"), 5_000),
                            (utc("2026-12-06 00:00"), utc("2026-12-06 00:03:20"), 2_000)]
    assert result.binding == "warm-up"
    assert result.describe("UTC") == "3 days: finishes Sun 00:04 UTC (warm-up)"


def test_a_span_that_carries_on_past_midnight_is_one_span():
    result = planned(50_000, rate=10, share=1, start="2026-12-03 23:00", warmup=[100_000, 100_000])
    assert result.spans == [(utc("2026-12-03 23:00"), utc("2026-12-04 00:23:20"), 50_000)]
    assert result.binding == "rate"


def test_days_are_named_from_now_when_given():
    result = planned(100_000, start="2026-12-17 12:00")
    assert result.describe("UTC", now=utc("2026-12-03 09:00")) == "finishes Thu 17 Dec 14:51 UTC (rate)"
    assert result.describe("UTC", now=utc("2025-12-03 09:00")) == "finishes Thu 17 Dec 2026 14:51 UTC (rate)"


def test_nothing_left_to_send():
    result = planned(5_000, already_sent=5_000)
    assert (result.spans, result.windows, result.finish_at) == ([], 0, utc("2026-12-03 12:00"))
    assert result.describe("UTC") == "nothing to send"


@pytest.mark.parametrize("limits, reason", [({"rate": 0}, "nothing would ever be sent"),
                                            ({"share": 0}, "nothing would ever be sent"),
                                            ({"quota": 1}, "leaves marketing nothing"),
                                            ({"quota": 200}, "would not finish within 5 years")])
def test_limits_under_which_it_would_never_finish_are_refused(limits, reason):
    with pytest.raises(ValueError, match=reason):
        planned(10_000_000, **limits)


def test_an_unknown_zone_to_describe_in_is_refused():
    with pytest.raises(ValueError, match="unknown time zone"):
        planned(10).describe("Moon/Tranquility")
