"""The HTML report (postline_cli.analytics.report): its figures are the JSON's, it carries the JSON, it needs
nothing from anywhere else, and what the counts hold (a link, a reason) can never become markup or script."""
from __future__ import annotations

import json
import re
from html import unescape

from postline.analytics.counters import COUNTERS
from postline.analytics.stats import Stats
from postline_cli.analytics.report import POLICY, report_html

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
GENERATED = "2027-01-15T09:00:00.000Z"
JSON_BLOCK = re.compile(r'<script type="application/json" id="stats">(.*?)</script>', re.S)


def counts(**figures: int) -> dict[str, int]:
    return {**dict.fromkeys(COUNTERS, 0), **figures}


def view(hours=None, reasons=None, links=None, name: str = "june") -> dict:
    return Stats("campaign", name, T0 - 86400, T0, hours=hours or {}, reasons=reasons or {},
                 links=links or []).as_dict()


def figures(page: str) -> dict[str, str]:
    """Each figure on the page by its place in the JSON (``data-figure``), as the reader sees it."""
    return {path: unescape(text) for path, text in re.findall(r'data-figure="([^"]+)">([^<]*)<', page)}


def carried(page: str) -> dict:
    [block] = JSON_BLOCK.findall(page)
    return json.loads(block)


JUNE = view(hours={"2027-01-14T09": counts(sent=40, delivered=36, hard_bounced=3, opened=16, opened_unique=12,
                                           machine_opened=5, machine_opened_unique=5),
                   "2027-01-14T12": counts(complained=1, clicked=11, clicked_unique=8, unsubscribed=2)},
            reasons={"hard_bounced": {"General": 2, "NoEmail": 1}, "complained": {"abuse": 1}},
            links=[{"url": "https://example.com/spring", "clicked": 8, "clicked_unique": 6}])


def test_the_page_shows_the_figures_of_the_json_it_carries():
    page = report_html(JUNE, days=30, state={"state": "paused", "since": "2027-01-14T12:05:00.000Z"},
                       generated=GENERATED)
    assert carried(page) == JUNE
    shown = figures(page)
    assert {path: shown[path] for path in ("totals.sent", "totals.delivered", "totals.hard_bounced",
                                           "totals.complained", "totals.opened_unique", "totals.clicked_unique",
                                           "totals.unsubscribed")} == {
        "totals.sent": "40", "totals.delivered": "36", "totals.hard_bounced": "3", "totals.complained": "1",
        "totals.opened_unique": "12", "totals.clicked_unique": "8", "totals.unsubscribed": "2"}
    assert {path: text for path, text in shown.items() if path.startswith("rates.")} == {
        "rates.delivery": "90.00%", "rates.bounce": "7.50%", "rates.complaint": "2.50%",
        "rates.human_open": "33.33%", "rates.click_through": "22.22%", "rates.click_to_open": "66.67%",
        "rates.unsubscribe": "5.56%"}
    assert "paused since 2027-01-14T12:05:00.000Z" in page
    for chart in ("chart-timeline", "chart-funnel", "chart-opens", "chart-links", "chart-reasons"):
        assert re.search(f'<figure id="{chart}"><svg ', page), chart


def test_rates_past_ses_review_levels_are_marked_and_said():
    page = report_html(JUNE, days=30, state=None, generated=GENERATED)
    warned = re.findall(r'<div class="card warn"><span class="label">(\w+)', page)
    assert warned == ["bounced", "complained"]  # 7.5 % of bounces, 2.5 % of complaints
    assert "The bounce and complaint rates are at or past the level SES reviews an account at" in page


def test_all_bounced_shows_a_bounce_rate_of_100_and_no_engagement_rate():
    page = report_html(view(hours={"2027-01-14T09": counts(sent=50, hard_bounced=50)},
                            reasons={"hard_bounced": {"General": 50}}), days=30, state=None, generated=GENERATED)
    shown = figures(page)
    assert (shown["rates.bounce"], shown["rates.delivery"]) == ("100.00%", "0.00%")
    assert (shown["rates.human_open"], shown["rates.click_through"]) == ("-", "-")  # nothing delivered
    assert "The bounce rate is at or past" in page


def test_nothing_counted_says_so_and_draws_no_chart():
    empty = view(name="nothing-yet")
    page = report_html(empty, days=30, state=None, generated=GENERATED)
    assert "Nothing was counted for campaign nothing-yet in this period" in page
    assert "<svg" not in page
    assert figures(page)["totals.sent"] == "0" and figures(page)["rates.bounce"] == "-"
    assert carried(page) == empty


def test_the_page_asks_for_nothing_from_anywhere_and_runs_no_script():
    page = report_html(JUNE, days=30, state=None, generated=GENERATED)
    assert f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">' in page
    assert POLICY.startswith("default-src 'none';") and "script-src" not in POLICY
    assert re.findall(r"<script[^>]*>", page) == ['<script type="application/json" id="stats">']
    for fetching in (" src=", " href=", "<link", "@import", "url("):
        assert fetching not in page, fetching


def test_what_a_link_or_a_reason_holds_stays_text():
    hostile = "https://example.com/</script><script>alert(1)</script><!--"
    data = view(hours={"2027-01-14T09": counts(sent=2, hard_bounced=1, clicked=1, clicked_unique=1)},
                reasons={"hard_bounced": {"<b>General</b>": 1}},
                links=[{"url": hostile, "clicked": 1, "clicked_unique": 1}])
    page = report_html(data, days=30, state=None, generated=GENERATED)
    assert carried(page) == data  # the JSON block ends where it should and holds the link as it is
    assert "<script>alert" not in page and "<b>General</b>" not in page
    assert "&lt;b&gt;General&lt;/b&gt;" in page  # shown as text in the reasons table (and on the chart)
    assert re.findall(r"<script[^>]*>", page) == ['<script type="application/json" id="stats">']
