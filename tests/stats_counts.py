"""Counts as the functions write them (``postline.analytics.counters.count`` into moto's DynamoDB), and the CLI
pointed at them, for the tests of ``postline stats`` and ``postline report`` (tests/integration/test_stats_cli.py,
tests/browser/test_report.py: each has a ``deployment`` fixture of ``counted_deployment``).

The campaign ``june-newsletter`` (template ``newsletter``, marketing) over two UTC days, with known figures
(``JUNE``), plus a day of other streams' mail; the campaign has a record, paused after an alert.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from click.testing import CliRunner
from moto import mock_aws

from postline.analytics.counters import Fact, count
from postline.campaigns import store
from postline_cli.analytics import reading
from postline_cli.local import resources
from postline_cli.main import cli
from postline_cli.target import Target

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOUR = 3600
NOW = T0 + 30 * HOUR  # 2027-01-16T14:00:00Z: when the operator looks
DAY_TWO = "2027-01-16"
TABLE = resources.TABLES["POSTLINE_STATS_TABLE"]
CAMPAIGN, TEMPLATE = "june-newsletter", "newsletter"
SPRING, AUTUMN = "https://example.com/spring", "https://example.com/autumn-sale"
# What the campaign's counts must come to.
JUNE = {"sent": 40, "delivered": 36, "hard_bounced": 3, "soft_bounced": 1, "complained": 1, "unsubscribed": 2,
        "suppressed": 2, "failed": 1, "rejected": 0, "opened": 16, "opened_unique": 12, "machine_opened": 5,
        "machine_opened_unique": 5, "clicked": 11, "clicked_unique": 8, "machine_clicked": 0,
        "machine_clicked_unique": 0, "undeliverable_domain": 0}
JUNE_REASONS = {"hard_bounced": {"General": 2, "NoEmail": 1}, "soft_bounced": {"MailboxFull": 1},
                "complained": {"abuse": 1}}
JUNE_LINKS = [{"url": SPRING, "clicked": 8, "clicked_unique": 6}, {"url": AUTUMN, "clicked": 3, "clicked_unique": 2}]


def june_facts() -> list[Fact]:
    """The campaign's facts, each once, as the functions count them (they mark an email's first open and click):
    sent in its first hour, delivered and bounced in the next, opened and clicked over the hours after, the last
    clicks on the next day."""
    def fact(kind: str, i: int, at: float, **more) -> Fact:
        return Fact(kind, f"june-{i}", at, "marketing", TEMPLATE, CAMPAIGN, **more)

    facts = [fact("sent", i, T0 + i) for i in range(40)]
    facts += [fact("delivered", i, T0 + HOUR + i) for i in range(36)]
    facts += [fact("hard_bounced", 36 + i, T0 + HOUR, reason="General" if i < 2 else "NoEmail") for i in range(3)]
    facts += [fact("soft_bounced", 39, T0 + HOUR, reason="MailboxFull")]
    facts += [fact("complained", 7, T0 + 5 * HOUR, reason="abuse")]
    facts += [fact("unsubscribed", i, T0 + 6 * HOUR) for i in range(2)]
    facts += [fact("suppressed", 300 + i, T0) for i in range(2)]
    facts += [fact("failed", 310, T0)]
    # 12 people open, 4 of them again later; machines fetch 5 pixels
    facts += [fact("opened", i, T0 + (2 + i) * HOUR, first=True) for i in range(12)]
    facts += [fact("opened", i, T0 + (8 + i) * HOUR) for i in range(4)]
    facts += [fact("machine_opened", 100 + i, T0 + 2 * HOUR, first=True) for i in range(5)]
    # 6 people click the spring link (2 of them twice), 2 the autumn one the next day (1 twice)
    facts += [fact("clicked", i, T0 + (2 + i) * HOUR, link=f"{SPRING}?utm_source=june", first=True,
                   first_on_link=True) for i in range(6)]
    facts += [fact("clicked", i, T0 + 9 * HOUR, link=SPRING) for i in range(2)]
    facts += [fact("clicked", 20 + i, T0 + 20 * HOUR, link=AUTUMN, first=True, first_on_link=True) for i in range(2)]
    facts += [fact("clicked", 20, T0 + 21 * HOUR, link=AUTUMN)]
    return facts


def other_facts() -> list[Fact]:
    """Critical and transactional mail, and a marketing email of no campaign."""
    facts = [Fact("sent", f"reset-{i}", T0 + i, "critical", "password-reset") for i in range(5)]
    facts += [Fact("delivered", f"reset-{i}", T0 + 60 + i, "critical", "password-reset") for i in range(5)]
    facts += [Fact("sent", f"welcome-{i}", T0 + 2 * HOUR, "transactional", "welcome") for i in range(10)]
    facts += [Fact("delivered", f"welcome-{i}", T0 + 2 * HOUR, "transactional", "welcome") for i in range(9)]
    facts += [Fact("hard_bounced", "welcome-9", T0 + 2 * HOUR, "transactional", "welcome", reason="General")]
    facts += [Fact("sent", "promo-1", T0 + 20 * HOUR, "marketing", "promo")]
    return facts


class Deployment:
    """moto's stats and campaigns tables holding the counts, and the CLI pointed at them at ``NOW``."""

    def __init__(self, dynamodb, monkeypatch):
        self.dynamodb, self.now = dynamodb, NOW
        where = Target(None, dict(resources.TABLES), {}, "", "", "")
        monkeypatch.setattr(reading, "target", lambda: where)
        monkeypatch.setattr(reading, "_client", lambda service: dynamodb)
        monkeypatch.setattr(reading, "now", lambda: self.now)

    def count(self, facts: list[Fact]) -> None:
        count(self.dynamodb, TABLE, facts, NOW)

    def pause_campaign(self) -> None:
        """The campaign's record, as the alert makes it for a campaign an application sends itself."""
        store.create(self.dynamodb, resources.TABLES["POSTLINE_CAMPAIGNS_TABLE"],
                     store.external(CAMPAIGN, T0 + 5 * HOUR, store.PAUSED))

    def postline(self, *args: str):
        """Run the command as the operator does; its JSON (with --json) or its text. It must succeed."""
        result = CliRunner().invoke(cli, list(args))
        assert result.exit_code == 0, (result.output, result.exception)
        return json.loads(result.stdout) if "--json" in args else result.stdout


@contextmanager
def counted_deployment(monkeypatch) -> Iterator[Deployment]:
    """moto, the stats and campaigns tables, and the CLI pointed at them (a test module's fixture yields it)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        resources.create_stats_table(dynamodb, set())
        resources.create_campaigns_table(dynamodb, set())
        yield Deployment(dynamodb, monkeypatch)
