"""``postline report`` opened in Chromium, offline, as someone opens the file they were sent: nothing fetched, no
console error, the figures on the page are those ``postline stats --campaign NAME --json`` prints, and every chart
is drawn with the JSON's numbers (each point's hover text, as the reader sees it)."""
from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from tests.stats_counts import CAMPAIGN, counted_deployment, june_facts, other_facts

HOUR = timedelta(hours=1)


@pytest.fixture
def deployment(monkeypatch):
    with counted_deployment(monkeypatch) as counted:
        yield counted


def shown(value) -> str:
    """A figure as the page must show it: a count with thousands separators, a rate as a percentage."""
    if value is None:
        return "-"
    return f"{value * 100:.2f}%" if isinstance(value, float) else f"{value:,}"


def at(stats: dict, path: str):
    part, name = path.split(".")
    return stats[part][name]


def points(page, chart: str) -> list[str]:
    """The hover text of each point of a chart's SVG (its first ``<title>`` is the chart's own)."""
    return page.locator(f"#{chart} svg title").all_text_contents()[1:]


def write_report(deployment, tmp_path, name: str):
    path = tmp_path / f"{name}.html"
    deployment.postline("report", "--campaign", name, "--html", str(path))
    return path, deployment.postline("stats", "--campaign", name, "--json")


def test_the_report_opens_offline_and_shows_what_stats_json_prints(page, browser_log, screenshot, deployment,
                                                                    tmp_path):
    deployment.count(june_facts() + other_facts())
    deployment.pause_campaign()
    report, stats = write_report(deployment, tmp_path, CAMPAIGN)

    page.context.set_offline(True)
    page.goto(report.as_uri())
    assert browser_log.requests == [report.as_uri()]  # no font, style, script or image from anywhere
    assert json.loads(page.locator("script#stats").text_content()) == stats

    figures = {element.get_attribute("data-figure"): element.inner_text()
               for element in page.locator("[data-figure]").all()}
    assert {"totals.sent", "totals.delivered", "totals.hard_bounced", "totals.complained", "totals.opened_unique",
            "totals.clicked_unique", "totals.unsubscribed",
            *(f"rates.{rate}" for rate in stats["rates"])} <= set(figures)
    assert figures == {path: shown(at(stats, path)) for path in figures}
    assert page.locator(".card.warn .label").first.inner_text() == "bounced"  # 7.5 %: past SES's 5 %

    totals = stats["totals"]
    funnel = points(page, "chart-funnel")
    assert sorted(funnel) == sorted([f"sent: {totals['sent']}", f"delivered: {totals['delivered']}",
                                     f"opened: {totals['opened_unique']}", f"clicked: {totals['clicked_unique']}"])
    widths = [box["width"] for box in (bar.bounding_box() for bar in page.locator("#chart-funnel svg rect.reactive")
                                       .all())]
    assert widths == sorted(widths) and widths[0] > 0  # clicked, opened, delivered, sent: drawn to scale

    per_series: dict[str, int] = defaultdict(int)
    for point in points(page, "chart-timeline"):
        series, value = re.fullmatch(r"(\w+), .+: (\d+)", point).groups()
        per_series[series] += int(value)
    assert dict(per_series) == {"sent": totals["sent"], "delivered": totals["delivered"],
                                "opened": totals["opened_unique"], "clicked": totals["clicked_unique"]}
    counted = sorted(hour for hour, counts in stats["hours"].items() if any(counts.values()))
    hours = (datetime.strptime(counted[-1], "%Y-%m-%dT%H") - datetime.strptime(counted[0], "%Y-%m-%dT%H")) // HOUR
    assert page.locator("#chart-timeline svg circle.dot").count() == 4 * (hours + 1)  # every hour, zeros too

    assert sorted(points(page, "chart-links")) == sorted(
        f"{link['url'].split('://')[1]}: {link['clicked_unique']}" for link in stats["links"])
    assert sorted(points(page, "chart-reasons")) == sorted(
        f"{label}: {reason}: {count}" for kind, label in (("hard_bounced", "hard bounce"),
                                                          ("soft_bounced", "soft bounce"), ("complained", "complaint"))
        for reason, count in stats["reasons"].get(kind, {}).items())
    assert points(page, "chart-opens") == [f"people: {totals['opened']}", f"machines: {totals['machine_opened']}"]

    screenshot(page, "report-campaign")


def test_a_campaign_with_nothing_counted_says_so_in_the_browser(page, browser_log, screenshot, deployment, tmp_path):
    report, stats = write_report(deployment, tmp_path, "nothing-yet")
    page.context.set_offline(True)
    page.goto(report.as_uri())
    assert "Nothing was counted for campaign nothing-yet" in page.locator(".nothing").inner_text()
    assert page.locator("svg").count() == 0
    assert page.locator('[data-figure="totals.sent"]').inner_text() == "0" and stats["totals"]["sent"] == 0
    screenshot(page, "report-nothing-counted")
