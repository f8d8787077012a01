"""``postline stats`` as text (postline_cli.analytics.tables): the figures where a reader looks for them, rates as
percentages, "nothing counted" said plainly, and every line within 80 columns."""
from __future__ import annotations

from postline.analytics.counters import COUNTERS
from postline.analytics.stats import Stats, rates
from postline_cli.analytics.tables import link_lines, listing_lines, scope_lines, streams_lines

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SINCE = T0 - 6 * 86400 - 8 * 3600  # 2027-01-09T00:00Z


def counts(**figures: int) -> dict[str, int]:
    return {**dict.fromkeys(COUNTERS, 0), **figures}


def view(kind: str, name: str, hours=None, reasons=None, links=None) -> dict:
    """What ``postline stats --json`` prints for these counts."""
    return Stats(kind, name, SINCE, T0, hours=hours or {}, reasons=reasons or {}, links=links or []).as_dict()


def row(lines: list[str], label: str) -> list[str]:
    """The cells after ``label`` on its line."""
    [found] = [line for line in lines if line.startswith(label + "  ")]
    return found[len(label):].split()


def test_the_streams_are_columns_of_counts_then_of_rates_within_80_columns():
    views = {
        "critical": view("stream", "critical", {"2027-01-15T08": counts(sent=12, delivered=12)}),
        "transactional": view("stream", "transactional", {"2027-01-14T10": counts(
            sent=3_456_789, delivered=3_400_000, hard_bounced=56_789, complained=12, opened_unique=1_234_567,
            clicked_unique=345_678)}),
        "marketing": view("stream", "marketing"),
    }
    lines = streams_lines(views, 7)
    assert lines[0] == "streams, counted 2027-01-09 00:00 to 2027-01-15 08:59 UTC (the last 7 days)"
    assert lines[2].split() == ["critical", "transactional", "marketing"]
    assert row(lines, "sent") == ["12", "3,456,789", "0"]
    assert row(lines, "bounced (hard)") == ["0", "56,789", "0"]
    assert row(lines, "opened (human, unique)") == ["0", "1,234,567", "0"]
    assert row(lines, "bounce rate") == ["0.00%", "1.64%", "-"]  # nothing sent: no rate
    assert row(lines, "complaint rate") == ["0.00%", "0.00%", "-"]
    assert row(lines, "click-to-open rate") == ["-", "28.00%", "-"]
    assert max(map(len, lines)) <= 80


def test_no_counts_at_all_is_said_plainly():
    empty = {stream: view("stream", stream) for stream in ("critical", "transactional", "marketing")}
    assert streams_lines(empty, 7)[2] == "nothing was counted in this period: no email was sent, and no event came back"
    lines = scope_lines(view("campaign", "june"), 7)
    assert lines == ["campaign june", "nothing was counted for it (the last 7 days)",
                     "`postline stats --campaigns` lists the campaigns that have counts"]


def test_a_campaign_shows_its_state_its_totals_beside_its_rates_its_days_links_and_reasons():
    june = view("campaign", "june", hours={
        "2027-01-14T09": counts(sent=40, delivered=36, hard_bounced=3, opened_unique=12, opened=16),
        "2027-01-15T02": counts(complained=1, clicked_unique=8, clicked=11, machine_opened_unique=5,
                                undeliverable_domain=2)},
        reasons={"hard_bounced": {"General": 2, "NoEmail": 1}, "complained": {"abuse": 1}},
        links=[{"url": "https://example.com/spring", "clicked": 8, "clicked_unique": 6}])
    lines = scope_lines(june, 7, {"state": "paused", "since": "2027-01-15T02:10:00.000Z"})
    assert lines[:2] == ["campaign june (paused since 2027-01-15T02:10:00.000Z)",
                         "counted 2027-01-09 00:00 to 2027-01-15 08:59 UTC (the last 7 days)"]
    assert row(lines, "sent") == ["40", "delivery", "rate", "90.00%"]
    assert row(lines, "delivered") == ["36", "bounce", "rate", "7.50%"]
    assert row(lines, "bounced (hard)") == ["3", "complaint", "rate", "2.50%"]
    assert row(lines, "opened by machines") == ["5"]
    assert row(lines, "rejected (domain takes no mail)") == ["2"]
    assert row(lines, "2027-01-14") == ["40", "36", "3", "0", "12", "0", "0"]
    assert row(lines, "2027-01-15") == ["0", "0", "0", "1", "0", "8", "0"]
    assert row(lines, "https://example.com/spring") == ["6", "8"]
    reasons = lines[lines.index(next(line for line in lines if line.startswith("what "))):]
    assert [line.split() for line in reasons] == [["what", "reason", "emails"], ["hard", "bounce", "General", "2"],
                                                  ["hard", "bounce", "NoEmail", "1"], ["complaint", "abuse", "1"]]
    assert max(map(len, lines)) <= 80


def test_all_bounced_gives_a_bounce_rate_of_100_and_no_engagement_rates():
    lines = scope_lines(view("campaign", "bad-list", {"2027-01-15T08": counts(sent=50, hard_bounced=50)},
                             reasons={"hard_bounced": {"General": 50}}), 1)
    assert row(lines, "sent") == ["50", "delivery", "rate", "0.00%"]
    assert row(lines, "delivered") == ["0", "bounce", "rate", "100.00%"]
    assert row(lines, "complained") == ["0", "human", "open", "rate", "-"]  # nothing was delivered
    assert row(lines, "opened (human, unique)") == ["0", "click-through", "rate", "-"]
    assert row(lines, "clicked (human, unique)") == ["0", "click-to-open", "rate", "-"]


def test_a_long_link_is_cut_to_fit_80_columns_and_the_rest_are_counted():
    long = "https://example.com/" + "spring-collection/" * 8
    links = [{"url": long, "clicked": 1_234_567, "clicked_unique": 1_000_000}]
    links += [{"url": f"https://example.com/{i}", "clicked": 1, "clicked_unique": 1} for i in range(12)]
    lines = link_lines(links)
    assert lines[1].startswith("https://example.com/spring-collection/") and "…" in lines[1]
    assert lines[1].split()[-2:] == ["1,000,000", "1,234,567"]
    assert lines[-1] == "... and 3 more links"
    assert max(map(len, lines)) <= 80


def test_the_campaigns_list_has_their_state_and_a_dash_without_a_record():
    rows = [{"name": "june", "state": "paused", "last_counted": "2027-01-15T08:00:00.000Z",
             "totals": counts(sent=40, delivered=36, hard_bounced=3, complained=1, opened_unique=12, clicked_unique=8),
             "rates": None},
            {"name": "app-digest", "state": None, "last_counted": "2027-01-14T08:00:00.000Z",
             "totals": counts(), "rates": None}]
    for entry in rows:
        entry["rates"] = rates(entry["totals"])
    lines = listing_lines("campaign", rows)
    assert lines[0].split() == ["campaign", "state", "sent", "bounce", "complaint", "open", "click"]
    assert lines[1].split() == ["june", "paused", "40", "7.50%", "2.50%", "33.33%", "22.22%"]
    assert lines[2].split() == ["app-digest", "-", "0", "-", "-", "-", "-"]
    assert listing_lines("template", [])[0] == "no template has counts yet"
    assert "state" not in listing_lines("template", rows[:1])[0]
