"""The charts (postline_cli.analytics.charts): what they draw from the counts, hour by hour or day by day, and SVG
that runs nothing and fetches nothing."""
from __future__ import annotations

import re

from postline.analytics.counters import COUNTERS
from postline_cli.analytics import charts


def counts(**figures: int) -> dict[str, int]:
    return {**dict.fromkeys(COUNTERS, 0), **figures}


def stats(hours: dict[str, dict[str, int]]) -> dict:
    """The part of ``Stats.as_dict()`` the timeline reads."""
    days: dict[str, dict[str, int]] = {}
    for at, figures in hours.items():
        day = days.setdefault(at[:10], counts())
        for name, value in figures.items():
            day[name] += value
    return {"hours": hours, "days": days}


def tips(svg: str) -> list[str]:
    """The hover text of every point drawn, in the SVG's order."""
    return re.findall(r"<title>([^<]*)</title>", svg)[1:]  # (the first is the chart's own)


def test_the_timeline_runs_hour_by_hour_from_the_first_counted_hour_to_the_last_with_zeros_between():
    unit, slots, series = charts.timeline(stats({"2027-01-15T08": counts(sent=40),
                                                 "2027-01-15T11": counts(delivered=36, opened_unique=3),
                                                 "2027-01-15T05": counts()}))  # a row that counts nothing
    assert unit == "hour"
    assert slots == ["2027-01-15T08", "2027-01-15T09", "2027-01-15T10", "2027-01-15T11"]
    assert series == {"sent": [40, 0, 0, 0], "delivered": [0, 0, 0, 36], "opened": [0, 0, 0, 3],
                      "clicked": [0, 0, 0, 0]}


def test_past_three_days_of_activity_the_timeline_runs_day_by_day():
    three_days = stats({"2027-01-15T08": counts(sent=40), "2027-01-18T07": counts(clicked_unique=1)})  # 71 hours
    assert charts.timeline(three_days)[0] == "hour"
    longer = stats({"2027-01-15T08": counts(sent=40), "2027-01-18T09": counts(clicked_unique=1),
                    "2027-01-18T10": counts(clicked_unique=2)})
    unit, slots, series = charts.timeline(longer)
    assert unit == "day"
    assert slots == ["2027-01-15", "2027-01-16", "2027-01-17", "2027-01-18"]
    assert series["sent"] == [40, 0, 0, 0] and series["clicked"] == [0, 0, 0, 3]
    svg = charts.timeline_svg(longer)
    assert "sent, 2027-01-15: 40" in tips(svg) and "clicked, 2027-01-18: 3" in tips(svg)


def test_the_funnel_draws_sent_delivered_opened_clicked_on_one_scale():
    svg = charts.funnel_svg(counts(sent=40, delivered=36, opened_unique=12, clicked_unique=8, opened=99))
    assert sorted(tips(svg)) == ["clicked: 8", "delivered: 36", "opened: 12", "sent: 40"]  # people, first opens
    scale = re.findall(r'<g class="guides">.*?<text[^>]*>([^<]*)</text>', svg)
    assert scale[-5:] == ["0", "10", "20", "30", "40"]  # whole emails (pygal's own scale would mark 0.2 of one)


def test_links_draw_the_people_who_clicked_the_most_clicked_ten():
    links = [{"url": f"https://example.com/{i}", "clicked": 30 - i, "clicked_unique": 20 - i} for i in range(12)]
    svg = charts.links_svg(links + [{"url": "https://example.com/never", "clicked": 0, "clicked_unique": 0}])
    assert sorted(tips(svg), key=lambda tip: int(tip.rsplit(": ", 1)[1])) == [
        f"example.com/{i}: {20 - i}" for i in reversed(range(10))]


def test_reasons_draw_each_kind_and_reason_the_most_first():
    svg = charts.reasons_svg({"hard_bounced": {"General": 2, "NoEmail": 1}, "complained": {"abuse": 3},
                              "soft_bounced": {}})
    assert tips(svg)[::-1] == ["complaint: abuse: 3", "hard bounce: General: 2", "hard bounce: NoEmail: 1"]


def test_opens_are_split_between_people_and_machines():
    svg = charts.opens_svg(counts(opened=16, opened_unique=12, machine_opened=5))
    assert tips(svg) == ["people: 16", "machines: 5"]


def test_nothing_to_draw_is_a_message_without_axes_or_points():
    for svg in (charts.timeline_svg(stats({})), charts.funnel_svg(counts()), charts.links_svg([]),
                charts.reasons_svg({}), charts.opens_svg(counts())):
        assert "nothing counted" in svg and tips(svg) == [] and 'class="axis' not in svg


def test_a_chart_runs_no_script_and_fetches_nothing():
    svg = charts.timeline_svg(stats({"2027-01-15T08": counts(sent=40)}))
    assert svg.startswith("<svg ") and 'role="img"' in svg
    assert "<script" not in svg and "href=" not in svg and "url(" not in svg and "@import" not in svg
    assert "<title>Sent, delivered, opened and clicked per hour</title>" in svg


def test_ticks_are_whole_emails_six_at_most():
    assert charts._ticks(0) == [0, 1]
    assert charts._ticks(6) == [0, 2, 4, 6]
    assert charts._ticks(40) == [0, 10, 20, 30, 40]
    assert charts._ticks(1_234) == [0, 500, 1_000, 1_500]
