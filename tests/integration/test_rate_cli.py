"""``postline rate status`` and ``postline warmup status`` against what a real limiter wrote: limiters
(``postline.limiter.Limiter``) take slots in moto's DynamoDB with a clock the test moves and an SES whose
GetAccount answers the test's numbers, then the command, run as an operator runs it, must tell exactly that."""
from __future__ import annotations

import json
from datetime import date

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from postline.limiter import QUOTA, WARMUP, Limiter, WarmupPlan
from postline_cli import rate
from postline_cli.local import resources
from postline_cli.main import cli
from postline_cli.target import Target
from tests.integration.conftest import Clock, SesAccount

TABLE = resources.TABLES["POSTLINE_RATE_LIMITS_TABLE"]
T0 = 1_800_000_000.25  # 2027-01-15T08:00:00.250Z
CONFIG_VARIABLES = (rate.RATE_VARIABLE, rate.QUOTA_VARIABLE, rate.SHARE_VARIABLE, rate.WARMUP_VARIABLE)


class Account:
    """The deployment as the CLI sees it: the rate_limits table (moto), SES, the clock."""

    def __init__(self, dynamodb, monkeypatch):
        self.dynamodb, self.ses, self.clock = dynamodb, SesAccount(rate=14, quota=50_000), Clock(T0)
        monkeypatch.setattr(rate, "target", lambda: Target(None, dict(resources.TABLES), {}, "", "", ""))
        monkeypatch.setattr(rate, "_dynamodb", lambda: self.dynamodb)
        monkeypatch.setattr(rate, "_sesv2", lambda: self.ses)
        monkeypatch.setattr(rate, "now", lambda: self.clock.at)

    def limiter(self, **kw) -> Limiter:
        """A send function's limiter (each is a container of its own)."""
        return Limiter(self.dynamodb, self.ses, TABLE, clock=self.clock, **kw)

    def postline(self, *args: str):
        result = CliRunner().invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result.stdout


@pytest.fixture
def account(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        resources.create_rate_limits_table(dynamodb, set())
        yield Account(dynamodb, monkeypatch)


def line(output: str, label: str) -> str:
    [found] = [row for row in output.splitlines() if row.startswith(label + "  ")]
    return " ".join(found[len(label):].split())


def stream_row(output: str, stream: str) -> list[str]:
    return line(output, stream).split(" ", 1)


# ---------------------------------------------------------------- rate status
def test_the_last_minute_counts_exactly_the_emails_each_stream_took_and_not_older_ones(account):
    sender, other = account.limiter(), account.limiter()
    account.clock.at = T0 - 120  # two minutes ago: not in the last minute
    assert len(sender.take("marketing", 5).slots) == 5
    account.clock.at = T0 - 30
    earlier = len(other.take("transactional", 4).slots)
    account.clock.at = T0
    critical = len(sender.take("critical", 2).slots)
    transactional = len(other.take("transactional", 5).slots)
    marketing = sender.take("marketing", 30)  # more than marketing's share of the coming slots
    assert (earlier, critical, transactional) == (4, 2, 5) and 0 < len(marketing.slots) < 30

    view = account.postline("rate", "status", "--json")
    assert {s: row["last_minute"] for s, row in view["streams"].items()} == {
        "critical": 2, "transactional": 9, "marketing": len(marketing.slots)}
    assert view["last_minute"]["emails"] == 11 + len(marketing.slots)
    text = account.postline("rate", "status")
    assert stream_row(text, "transactional") == ["9", "sending (stops at 97 %)"]
    assert stream_row(text, "marketing")[0] == str(len(marketing.slots))
    assert line(text, "total") == str(11 + len(marketing.slots))
    assert line(text, "max send rate").startswith("14/s (from SES)")

    account.clock.at = T0 + 61  # a minute on, all of it is older than a minute
    assert account.postline("rate", "status", "--json")["last_minute"]["emails"] == 0


def test_at_a_high_rate_the_counters_of_every_shard_are_summed(account):
    account.ses = SesAccount(rate=2_000, quota=10_000_000)  # 1,940 usable a second: 8 shards
    senders = [account.limiter() for _ in range(4)]
    taken = sum(len(s.take("critical", 900).slots) for s in senders)  # more than one shard's 242 a window
    assert taken == 3_600
    view = account.postline("rate", "status", "--json")
    assert view["last_minute"]["shards"] == 8
    assert view["streams"]["critical"]["last_minute"] == 3_600 and view["last_minute"]["emails"] == 3_600
    assert stream_row(account.postline("rate", "status"), "critical")[0] == "3,600"


def test_the_quota_used_and_the_streams_it_stops_are_what_the_limiter_holds_back(account):
    account.ses = SesAccount(rate=14, quota=50_000, sent=45_500)  # 91 %: past marketing's 90 %
    sender = account.limiter()
    held = sender.take("marketing", 10)
    assert (held.slots, held.waiting_for) == ([], QUOTA)
    assert len(sender.take("transactional", 3).slots) == 3

    view = account.postline("rate", "status", "--json")
    assert view["quota"] == {"sent_last_24_hours": 45_500.0, "max_24_hour_send": 50_000.0, "used_percent": 91.0,
                             "stopped": ["marketing"]}
    assert view["quota_alert"] == {"level": 1, "at": "2027-01-15T08:00:00.250Z"}
    text = account.postline("rate", "status")
    assert line(text, "quota used") == "91 % (45,500 of 50,000): marketing stopped"
    assert line(text, "quota alert") == "raised at 2027-01-15T08:00:00.250Z: marketing stopped"
    assert stream_row(text, "marketing") == ["0", "stopped (stops at 90 %)"]
    assert stream_row(text, "transactional") == ["3", "sending (stops at 97 %)"]

    account.ses.answer["SentLast24Hours"] = 48_600  # 97.2 %: transactional stops too, critical still sends
    assert account.postline("rate", "status", "--json")["quota"]["stopped"] == ["marketing", "transactional"]
    assert line(account.postline("rate", "status"), "critical") == "0 sending (stops at 100 %)"


def test_a_stream_is_shown_stopped_once_less_than_one_email_of_its_share_is_left(account):
    account.ses = SesAccount(rate=14, quota=40, sent=38)  # transactional's 97 % is 38.8 emails: none more to send
    assert account.limiter().take("transactional", 1).waiting_for == QUOTA
    assert account.postline("rate", "status", "--json")["quota"]["stopped"] == ["marketing", "transactional"]


def test_limits_from_the_deploy_config_replace_ses_and_say_so(account, monkeypatch):
    account.ses = SesAccount(rate=14, quota=50_000, sent=45_500)
    monkeypatch.setenv("POSTLINE_MAX_24_HOUR_SEND", "100000")
    monkeypatch.setenv("POSTLINE_MARKETING_RATE_SHARE", "0.5")
    view = account.postline("rate", "status", "--json")
    assert view["limits"] == {"max_send_rate": 14.0, "max_send_rate_from": "ses",
                              "max_24_hour_send": 100_000.0, "max_24_hour_send_from": "config"}
    assert (view["quota"]["used_percent"], view["quota"]["stopped"]) == (45.5, [])
    assert (view["marketing_rate_share"], view["marketing_rate_share_from"]) == (0.5, "config")
    text = account.postline("rate", "status")
    assert line(text, "24-hour quota") == "100,000 (from the config, POSTLINE_MAX_24_HOUR_SEND)"
    assert line(text, "marketing share") == "50 % of the coming slots (from the config, POSTLINE_MARKETING_RATE_SHARE)"
    assert line(text, "quota used") == "45.5 % (45,500 of 100,000)"


def test_a_slow_down_after_ses_throttled_is_shown_while_it_recovers(account):
    assert line(account.postline("rate", "status"), "slow-down") == "none"
    account.limiter().throttled(3, for_the_rate=True, for_the_quota=False)  # at T0: the rate times 0.8
    account.clock.at = T0 + 10  # recovered by 0.5 % a second: 85 % now
    view = account.postline("rate", "status", "--json")
    assert view["slowdown"] == {"factor": 0.85, "lowered_to": 0.8, "throttled_at": "2027-01-15T08:00:00.250Z",
                                "full_rate_at": "2027-01-15T08:00:40.250Z"}
    assert view["usable_rate"] == round(14 * 0.85 * 0.98, 3)
    assert line(account.postline("rate", "status"), "slow-down") == (
        "rate lowered to 85 % after SES throttled at 2027-01-15T08:00:00.250Z, recovering "
        "(full rate by 2027-01-15T08:00:40.250Z)")
    account.clock.at = T0 + 41
    assert account.postline("rate", "status", "--json")["slowdown"] is None


def test_a_bad_setting_is_one_line(account, monkeypatch):
    monkeypatch.setenv("POSTLINE_MAX_SEND_RATE", "fast")
    result = CliRunner().invoke(cli, ["rate", "status"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "error: POSTLINE_MAX_SEND_RATE='fast' is not a number\n"


# ---------------------------------------------------------------- warm-up status
PLAN = {"start": "2027-01-11", "pools": {"news": ["marketing"], "app": ["critical", "transactional"]}}


def test_warmup_shows_each_pools_day_cap_used_and_left(account, monkeypatch):
    monkeypatch.setenv("POSTLINE_WARMUP_PLAN", json.dumps(PLAN))
    plan = WarmupPlan.from_json(json.dumps(PLAN))
    cap = plan.cap(date(2027, 1, 15))  # day 5 of the default curve
    account.ses = SesAccount(rate=1_000, quota=10_000_000)
    sender = account.limiter(warmup=plan)
    assert len(sender.take("marketing", 120).slots) == 120
    assert len(sender.take("transactional", 7).slots) == 7

    view = account.postline("warmup", "status", "--json")
    assert (view["configured"], view["source"], view["date"]) == (True, "POSTLINE_WARMUP_PLAN", "2027-01-15")
    news, app = sorted(view["pools"], key=lambda p: p["pool"] != "news")
    assert (news["day"], news["cap"], news["used"], news["left"], news["stopped"]) == (5, cap, 120, cap - 120, [])
    assert (app["used"], app["by_stream"]) == (7, {"critical": 0, "transactional": 7})
    assert (news["ends"], news["uncapped_from"]) == ("2027-02-21", "2027-02-22")  # day 42, the curve's last
    text = account.postline("warmup", "status")
    assert " ".join(next(r for r in text.splitlines() if r.startswith("news")).split()) == (
        f"news marketing 5 of 42 {cap:,} 120 {cap - 120:,} after 2027-02-21")


def test_a_pool_at_its_cap_shows_the_stream_stopped_for_today(account, tmp_path):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({**PLAN, "curve": [[1, 10], [5, 10]]}))  # 10 a day, 5 days
    sender = account.limiter(warmup=WarmupPlan.from_json(plan_file.read_text()))
    assert len(sender.take("transactional", 5).slots) == 5
    held = sender.take("transactional", 7)  # transactional may use 97 % of the app pool's cap: 9
    assert (len(held.slots), held.waiting_for) == (4, WARMUP)

    view = account.postline("warmup", "status", "--plan", str(plan_file), "--json")
    app = next(p for p in view["pools"] if p["pool"] == "app")
    assert (view["source"], app["day"], app["cap"], app["used"], app["left"]) == (str(plan_file), 5, 10, 9, 1)
    assert app["stopped"] == ["transactional"] and app["ends"] == "2027-01-15"
    assert "app: transactional stopped for today (waits for tomorrow's cap)" in account.postline(
        "warmup", "status", "--plan", str(plan_file))

    account.clock.at = T0 + 86_400  # the day after the last: uncapped
    app = next(p for p in account.postline("warmup", "status", "--plan", str(plan_file), "--json")["pools"]
               if p["pool"] == "app")
    assert (app["state"], app["cap"], app["left"], app["used"]) == ("over", None, None, 0)


def test_without_a_plan_warmup_says_none_is_configured_and_ses_warms_managed_pools(account):
    text = account.postline("warmup", "status")
    assert text.startswith("no warm-up is configured (POSTLINE_WARMUP_PLAN is not set")
    assert "Managed dedicated IP pools" in text and "warmed by SES itself" in text
    view = account.postline("warmup", "status", "--json")
    assert (view["configured"], view["pools"]) == (False, [])


def test_a_plan_that_is_not_one_is_one_line(account, tmp_path):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"start": "2027-01-11", "pools": {"news": ["newsletters"]}}))
    result = CliRunner().invoke(cli, ["warmup", "status", "--plan", str(plan_file)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "is not a warm-up plan (each pool needs streams among critical, transactional, marketing)" in result.stderr
