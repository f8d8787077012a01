"""``postline stats`` and ``postline report`` run as an operator runs them, against counts the functions' own
counter code wrote into moto's DynamoDB (tests/stats_counts.py): the JSON is the library's read, with the figures
the facts add up to, the text says the same, and the report carries exactly what ``stats --json`` prints."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from postline.analytics.stats import read
from postline_cli.analytics.reading import period
from postline_cli.main import cli
from tests.stats_counts import (
    AUTUMN,
    CAMPAIGN,
    DAY_TWO,
    JUNE,
    JUNE_LINKS,
    JUNE_REASONS,
    NOW,
    SPRING,
    TABLE,
    TEMPLATE,
    counted_deployment,
    june_facts,
    other_facts,
)


@pytest.fixture
def deployment(monkeypatch):
    with counted_deployment(monkeypatch) as counted:
        yield counted


def test_stats_json_for_a_campaign_is_what_its_facts_add_up_to(deployment):
    deployment.count(june_facts() + other_facts())
    june = deployment.postline("stats", "--campaign", CAMPAIGN, "--json")
    assert june["totals"] == JUNE
    assert june["reasons"] == JUNE_REASONS and june["links"] == JUNE_LINKS
    assert june["rates"] == {"delivery": 0.9, "bounce": 0.075, "complaint": 0.025, "human_open": 12 / 36,
                             "click_through": 8 / 36, "click_to_open": 8 / 12, "unsubscribe": 2 / 36}
    assert list(june["days"]) == ["2027-01-15", DAY_TWO]
    assert (june["since"], june["until"]) == ("2026-12-18T00", "2027-01-16T14")  # the last 30 days by default
    since, until = period(30, NOW)
    assert june == read(deployment.dynamodb, TABLE, "campaign", CAMPAIGN, since=since, until=until).as_dict()
    assert deployment.postline("stats", "--template", TEMPLATE, "--json")["totals"] == JUNE


def test_stats_json_for_the_streams_is_an_object_keyed_by_stream(deployment):
    deployment.count(june_facts() + other_facts())
    streams = deployment.postline("stats", "--json")
    assert list(streams) == ["critical", "transactional", "marketing"]
    assert {stream: (view["kind"], view["name"]) for stream, view in streams.items()} == {
        "critical": ("stream", "critical"), "transactional": ("stream", "transactional"),
        "marketing": ("stream", "marketing")}
    assert [streams[s]["totals"]["sent"] for s in streams] == [5, 10, JUNE["sent"] + 1]  # (a promo without campaign)
    assert streams["transactional"]["rates"]["bounce"] == 0.1
    assert streams["marketing"]["links"] == []  # links are not counted per stream
    assert (streams["critical"]["since"], streams["critical"]["until"]) == ("2027-01-10T00", "2027-01-16T14")


def test_days_keeps_only_the_last_days(deployment):
    deployment.count(june_facts())
    today = deployment.postline("stats", "--campaign", CAMPAIGN, "--days", "1", "--json")
    assert list(today["days"]) == [DAY_TWO] and today["since"] == f"{DAY_TWO}T00"
    assert (today["totals"]["sent"], today["totals"]["clicked"]) == (0, 3)  # the autumn clicks, the next day
    assert deployment.postline("stats", "--days", "1", "--json")["marketing"]["totals"]["clicked"] == 3


def test_the_text_says_what_the_json_says(deployment):
    deployment.count(june_facts() + other_facts())
    deployment.pause_campaign()
    text = deployment.postline("stats", "--campaign", CAMPAIGN).splitlines()
    assert text[0] == f"campaign {CAMPAIGN} (paused since 2027-01-15T13:00:00.000Z)"
    assert text[1] == "counted 2026-12-18 00:00 to 2027-01-16 14:59 UTC (the last 30 days)"
    assert re.search(r"^sent +40 +delivery rate +90\.00%$", "\n".join(text), re.M)
    assert re.search(r"^bounced \(hard\) +3 +complaint rate +2\.50%$", "\n".join(text), re.M)
    assert any(line.split() == [SPRING, "6", "8"] for line in text)
    assert any(line.split() == [AUTUMN, "2", "3"] for line in text)
    streams = deployment.postline("stats").splitlines()
    assert next(line for line in streams if line.startswith("sent ")).split() == ["sent", "5", "10", "41"]
    assert max(len(line) for line in text + streams) <= 80


def test_the_lists_name_what_has_counts_latest_first_with_the_campaigns_state(deployment):
    deployment.count(june_facts() + other_facts())
    deployment.pause_campaign()
    [june] = deployment.postline("stats", "--campaigns", "--json")
    assert (june["name"], june["state"], june["totals"]["sent"], june["rates"]["bounce"]) == (
        CAMPAIGN, "paused", 40, 0.075)
    assert june["last_counted"] == "2027-01-16T05:00:00.000Z"  # the hour of its last click
    assert [row["name"] for row in deployment.postline("stats", "--templates", "--json")] == [
        "newsletter", "promo", "welcome", "password-reset"]
    assert deployment.postline("stats", "--campaigns").splitlines()[1].split() == [
        CAMPAIGN, "paused", "40", "7.50%", "2.50%", "33.33%", "22.22%"]


def test_a_name_without_counts_is_said_plainly(deployment):
    deployment.count(june_facts())
    assert deployment.postline("stats", "--campaign", "july").splitlines()[1:] == [
        "nothing was counted for it (the last 30 days)",
        "`postline stats --campaigns` lists the campaigns that have counts"]
    assert deployment.postline("stats", "--campaign", "july", "--json")["totals"] == dict.fromkeys(JUNE, 0)


def test_the_report_carries_exactly_what_stats_json_prints(deployment, tmp_path):
    deployment.count(june_facts())
    deployment.pause_campaign()
    said = deployment.postline("report", "--campaign", CAMPAIGN, "--html", str(tmp_path / "june.html"))
    assert said.strip() == f"wrote {tmp_path / 'june.html'}: campaign {CAMPAIGN}, 40 sent, 36 delivered"
    page = (tmp_path / "june.html").read_text()
    [block] = re.findall(r'<script type="application/json" id="stats">(.*?)</script>', page, re.S)
    assert json.loads(block) == deployment.postline("stats", "--campaign", CAMPAIGN, "--json")
    assert "paused since 2027-01-15T13:00:00.000Z" in page
    standard_output = deployment.postline("report", "--template", TEMPLATE, "--html", "-")
    assert standard_output.startswith("<!DOCTYPE html>") and "Template newsletter" in standard_output


def test_asking_for_two_things_at_once_is_a_usage_error(deployment):
    for args in (["stats", "--campaign", "a", "--template", "b"], ["stats", "--campaigns", "--campaign", "a"],
                 ["report", "--html", "x.html"], ["stats", "--days", "0"]):
        assert CliRunner().invoke(cli, args).exit_code == 2, args
