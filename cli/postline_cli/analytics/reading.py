"""What ``postline stats`` and ``postline report`` read: the counters (``postline.analytics.stats``) over a period of
whole UTC days, and a campaign's state from its record. Plain data: ``Stats.as_dict()`` for a scope."""

from __future__ import annotations

from typing import Any

from postline.analytics.stats import Stats, latest_first, rates, read, read_all
from postline.settings import STREAMS

from ..rate import now
from ..target import target
from ..views import iso

STATS_TABLE, CAMPAIGNS_TABLE = "POSTLINE_STATS_TABLE", "POSTLINE_CAMPAIGNS_TABLE"
DAY = 86400
# The default periods. Counts are read a day at a time (one query a day), so a default stays short: a week of the
# streams, which count every hour; a month of a campaign or template, long enough for a newsletter's late opens.
STREAM_DAYS, SCOPE_DAYS = 7, 30


def _client(service: str):
    from postline.clients import client

    return client(service)


def period(days: int, at: float) -> tuple[float, float]:
    """The last ``days`` UTC days, today's so far included: from midnight ``days - 1`` days before ``at``'s."""
    return at - at % DAY - (days - 1) * DAY, at


def scope(kind: str, name: str, days: int) -> dict[str, Any]:
    """``kind`` NAME's counts (``Stats.as_dict()``) over the last ``days``."""
    since, until = period(days, now())
    return read(_client("dynamodb"), target().tables[STATS_TABLE], kind, name, since=since, until=until).as_dict()


def streams(days: int) -> dict[str, dict[str, Any]]:
    """Each stream's counts (``Stats.as_dict()``), keyed by stream, over the last ``days``."""
    since, until = period(days, now())
    found = read_all(_client("dynamodb"), target().tables[STATS_TABLE], "stream", since=since, until=until)
    return {stream: (found.get(stream) or Stats("stream", stream, since, until)).as_dict() for stream in STREAMS}


def campaign_state(name: str) -> dict[str, str] | None:
    """The campaign's state and since when, from its record; None when it has none (an application's own
    campaign that was never paused)."""
    from postline.campaigns import store

    campaign = store.get(_client("dynamodb"), target().tables[CAMPAIGNS_TABLE], name)
    return {"state": campaign.state, "since": iso(campaign.state_at)} if campaign else None


def listing(kind: str, days: int) -> list[dict[str, Any]]:
    """Every campaign or template with counts in the last ``days``, the latest counted first: the start of the last
    hour it was counted in, its totals and rates over the period and, for a campaign, its record's state (None
    without one)."""
    since, until = period(days, now())
    dynamodb, table = _client("dynamodb"), target().tables[STATS_TABLE]
    states: dict[str, str] = {}
    if kind == "campaign":
        from postline.campaigns import store

        states = {c.campaign_id: c.state for c in store.list_all(dynamodb, target().tables[CAMPAIGNS_TABLE])}
    rows = []
    found = read_all(dynamodb, table, kind, since=since, until=until)
    for name, last_at in latest_first(found):
        totals = found[name].totals
        row = {"name": name, "last_counted": iso(last_at), "totals": totals, "rates": rates(totals)}
        if kind == "campaign":
            row["state"] = states.get(name)
        rows.append(row)
    return rows
