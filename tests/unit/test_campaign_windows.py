"""Send windows: local wall-clock times in a time zone, across midnight and across DST."""
from __future__ import annotations

from datetime import datetime, time, timezone

import pytest

from postline.campaigns.windows import Window


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_a_window_in_utc():
    window = Window.parse("09:00-17:00", "UTC")
    assert window.contains(utc("2026-12-04 09:00"))
    assert window.contains(utc("2026-12-04 16:59:59"))
    assert not window.contains(utc("2026-12-04 17:00"))  # the end is not in the window
    assert window.next_start(utc("2026-12-04 12:00")) == utc("2026-12-04 12:00")  # inside: now
    assert window.next_start(utc("2026-12-04 17:00")) == utc("2026-12-05 09:00")
    assert window.next_start(utc("2026-12-04 03:00")) == utc("2026-12-04 09:00")
    assert window.end_after(utc("2026-12-04 12:00")) == utc("2026-12-04 17:00")
    assert window.end_after(utc("2026-12-04 18:00")) == utc("2026-12-05 17:00")  # outside: the next one's end


def test_a_window_across_midnight_opens_one_evening_and_closes_the_next_morning():
    window = Window.parse("22:00-04:00", "UTC")
    assert window.contains(utc("2026-12-04 23:30")) and window.contains(utc("2026-12-05 01:00"))
    assert not window.contains(utc("2026-12-05 12:00"))
    assert window.end_after(utc("2026-12-05 01:00")) == utc("2026-12-05 04:00")  # opened the evening before
    assert window.end_after(utc("2026-12-04 23:00")) == utc("2026-12-05 04:00")
    assert window.next_start(utc("2026-12-05 04:00")) == utc("2026-12-05 22:00")


def test_a_window_is_local_time_in_its_zone():
    window = Window.parse("02:00-06:00", "Europe/Berlin")  # CET in winter: UTC+1
    assert window.next_start(utc("2026-12-04 12:00")) == utc("2026-12-05 01:00")
    assert window.end_after(utc("2026-12-04 12:00")) == utc("2026-12-05 05:00")
    summer = window.next_start(utc("2026-07-01 12:00"))  # CEST: UTC+2
    assert summer == utc("2026-07-02 00:00")


def test_berlin_spring_forward_a_skipped_start_opens_at_the_first_minute_after_it():
    window = Window.parse("02:00-06:00", "Europe/Berlin")
    # Sunday 29 March 2026: the clocks go from 02:00 CET straight to 03:00 CEST (01:00 UTC)
    opens = window.next_start(utc("2026-03-28 22:00"))
    assert opens == utc("2026-03-29 01:00")
    assert window.end_after(opens) == utc("2026-03-29 04:00")  # 06:00 CEST: three hours that night
    assert not window.contains(utc("2026-03-29 00:30"))  # 01:30 CET, before the window
    # the night before and after, four hours
    assert window.end_after(utc("2026-03-28 01:00")) - utc("2026-03-28 01:00") == 4 * 3600
    assert window.end_after(utc("2026-03-30 00:00")) - utc("2026-03-30 00:00") == 4 * 3600


def test_berlin_spring_forward_a_window_wholly_in_the_skipped_hour_is_missed_that_night():
    window = Window.parse("02:15-02:45", "Europe/Berlin")
    assert window.next_start(utc("2026-03-28 22:00")) == utc("2026-03-30 00:15")  # Monday 02:15 CEST


def test_berlin_fall_back_the_repeated_hour_is_in_the_window_once():
    window = Window.parse("02:30-02:45", "Europe/Berlin")
    # Sunday 25 October 2026: 02:00-03:00 happens twice, first in CEST (00:00-01:00 UTC), then in CET
    assert window.next_start(utc("2026-10-24 22:00")) == utc("2026-10-25 00:30")
    assert window.contains(utc("2026-10-25 00:35"))  # the first 02:35
    assert not window.contains(utc("2026-10-25 01:35"))  # the second 02:35: not again
    assert window.next_start(utc("2026-10-25 00:50")) == utc("2026-10-26 01:30")  # Monday, CET


def test_berlin_fall_back_a_window_over_the_change_is_an_hour_longer():
    window = Window.parse("02:00-06:00", "Europe/Berlin")
    opens = window.next_start(utc("2026-10-24 22:00"))
    assert opens == utc("2026-10-25 00:00")  # 02:00 CEST
    assert window.end_after(opens) == utc("2026-10-25 05:00")  # 06:00 CET: five hours of sending that night


def test_new_york_a_window_across_midnight_and_the_spring_change():
    window = Window.parse("22:00-04:00", "America/New_York")
    # Saturday 7 March 2026 22:00 EST; at 02:00 on Sunday the clocks go to 03:00 EDT
    opens = window.next_start(utc("2026-03-07 20:00"))
    assert opens == utc("2026-03-08 03:00")
    assert window.end_after(opens) == utc("2026-03-08 08:00")  # 04:00 EDT: five hours
    assert window.contains(utc("2026-03-08 06:30")) and window.contains(utc("2026-03-08 07:30"))  # 01:30, 03:30


def test_new_york_fall_back_a_window_ending_after_the_repeated_hour():
    window = Window.parse("01:00-02:30", "America/New_York")
    # Sunday 1 November 2026: 01:00-02:00 happens twice (EDT, then EST)
    opens = window.next_start(utc("2026-10-31 20:00"))
    assert opens == utc("2026-11-01 05:00")  # the first 01:00, EDT
    assert window.end_after(opens) == utc("2026-11-01 07:30")  # 02:30 EST
    assert window.contains(utc("2026-11-01 06:30"))  # the second 01:30


@pytest.mark.parametrize("spec", ["2-6", "02:00", "02:00-", "25:00-06:00", "02:60-03:00", "02:00–06:00", "",
                                  "two-six"])
def test_a_malformed_window_says_how_to_write_one(spec):
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        Window.parse(spec, "UTC")


def test_a_window_that_opens_and_closes_at_once_is_refused():
    with pytest.raises(ValueError, match="give it a length"):
        Window.parse("02:00-02:00", "UTC")


@pytest.mark.parametrize("zone", ["Europe/Berlín", "Mars/Olympus", "", "../etc/passwd", "europe/berlin"])
def test_an_unknown_time_zone_is_refused_with_an_example(zone):
    with pytest.raises(ValueError, match="unknown time zone .*Europe/Berlin"):
        Window.parse("02:00-06:00", zone)


def test_the_campaign_items_window_map_round_trips():
    window = Window.parse(" 2:00 - 6:30 ", "Europe/Berlin")
    assert window == Window(time(2, 0), time(6, 30), "Europe/Berlin")
    assert window.as_dict() == {"start": "02:00", "end": "06:30", "timezone": "Europe/Berlin"}
    assert Window.from_dict(window.as_dict()) == window
    with pytest.raises(ValueError):
        Window.from_dict({"start": "02:00", "end": "06:30", "timezone": "Nowhere/Special"})
