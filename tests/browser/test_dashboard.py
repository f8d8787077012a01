"""The dashboard in Chromium, served over moto's in-process AWS holding a small deployment (``tests.unit.
test_dashboard.World``): the figures on the page are ``postline stats --json``'s, the charts are drawn, the pause and
resume buttons move the campaign, and the page follows the figures without a reload."""
from __future__ import annotations

import pytest

from postline.analytics.counters import Fact
from postline.campaigns import store
from postline_cli import campaigns
from postline_cli.analytics.tables import number, percent
from postline_cli.web.dashboard import dashboard_routes
from tests.unit.test_dashboard import T0, at_path, shown, world  # noqa: F401 - ``world`` is a fixture

HOUR = 3600


@pytest.fixture
def dashboard(world, web_server):  # noqa: F811 - the imported fixture
    return web_server(dashboard_routes(world.sources, 7, where="the test deployment"))


def page_figures(page) -> dict[str, str]:
    return page.evaluate("Object.fromEntries([...document.querySelectorAll('[data-figure]')]"
                         ".map(e => [e.dataset.figure, e.textContent]))")


def test_the_page_shows_the_figures_postline_stats_prints(page, world, dashboard, screenshot):  # noqa: F811
    page.goto(dashboard)
    streams = world.postline_json("stats")
    campaigns = {row["name"]: row for row in world.postline_json("stats", "--campaigns")}
    figures = page_figures(page)
    stream_figures = {path: text for path, text in figures.items() if path.startswith("streams.")}
    assert len(stream_figures) == 3 * 11
    for path, text in stream_figures.items():
        assert text == shown(path, at_path(streams, path.removeprefix("streams."))), path
    june = page.locator("tr[data-campaign=june-news] td[data-figure]").all_inner_texts()
    assert june[:2] == [number(campaigns["june-news"]["totals"]["sent"]),
                        number(campaigns["june-news"]["totals"]["delivered"])]
    assert june[2:4] == [percent(campaigns["june-news"]["rates"]["bounce"]),
                         percent(campaigns["june-news"]["rates"]["complaint"])]
    # the dead letter on the critical stream's queue is marked
    assert page.locator("tr.alarm[data-queue=postline-critical]").count() == 1
    screenshot(page, "dashboard")


def test_the_pause_button_pauses_the_running_campaign_and_resume_resumes_it(
        page, world, dashboard, screenshot):  # noqa: F811
    page.goto(dashboard)
    row = page.locator("tr[data-campaign=june-news]")
    assert row.locator(".state").inner_text() == "running"
    row.locator("button.pause").click()
    page.wait_for_url(f"{dashboard}/")
    assert world.record("june-news").state == store.PAUSED
    assert row.locator(".state").inner_text() == "paused"
    screenshot(page, "dashboard-paused")

    row.locator("button.resume").click()
    page.wait_for_url(f"{dashboard}/")
    assert world.record("june-news").state == store.RUNNING
    assert row.locator("button.pause").count() == 1


def test_a_campaigns_page_draws_its_charts(page, world, dashboard, screenshot):  # noqa: F811
    svgs = {}
    page.on("response", lambda response: response.url.endswith(".svg") and svgs.setdefault(
        response.url.rsplit("/", 1)[-1], response.text()))
    page.goto(f"{dashboard}/campaigns/june-news")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Campaign june-news"
    charts = page.locator("img.chart")
    assert charts.count() == 5
    assert page.evaluate("[...document.querySelectorAll('img.chart')].every(i => i.complete && i.naturalWidth > 0)")
    assert sorted(svgs) == ["funnel.svg", "links.svg", "opens.svg", "reasons.svg", "timeline.svg"]
    assert all('<desc class="value">' in svg for svg in svgs.values())  # points with values, not "nothing counted"
    stats = world.postline_json("stats", "--campaign", "june-news")
    for path, text in page_figures(page).items():
        assert text == shown(path, at_path(stats, path.removeprefix("stats."))), path
    screenshot(page, "dashboard-campaign")

    page.click("button.pause")
    page.wait_for_url(f"{dashboard}/campaigns/june-news")
    assert world.record("june-news").state == store.PAUSED


def test_the_page_follows_new_counts_and_states_without_a_reload(page, world, dashboard):  # noqa: F811
    page.goto(dashboard)
    page.evaluate("window.loadedOnce = true")  # gone if the page were reloaded
    sent = page.locator("[data-figure='today.critical.sent']")
    assert sent.inner_text() == "2"
    world.count([Fact("sent", f"reset-{i}", T0 - 60, "critical", "password-reset") for i in range(3, 6)])
    world.clock.at += 60
    campaigns.pause(world.where, "june-news")  # as `postline campaigns pause` would, from another terminal
    sent.filter(has_text="5").wait_for(timeout=20_000)
    page.locator("tr[data-campaign=june-news] button.resume").wait_for(timeout=20_000)
    assert page.evaluate("window.loadedOnce") is True
    assert "figures of 2027-01-15 08:01 UTC" in page.inner_text("#updated")
