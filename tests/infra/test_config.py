"""The deployment config is validated at synth, with every problem named at once."""
from __future__ import annotations

import dataclasses
import json

import pytest

from stacks import config as config_module
from stacks.config import EXAMPLE_CONFIG, REPO_ROOT, ConfigError, config_path, load_config, parse_config

MINIMAL = {"domain": "mail.example.com", "from_address": "Example <hello@mail.example.com>"}


def _problems(raw):
    with pytest.raises(ConfigError) as error:
        parse_config(raw, "test")
    return str(error.value)


def test_the_example_config_is_valid():
    config = load_config(EXAMPLE_CONFIG)
    assert config.domain == "mail.example.com" and config.mail_from_domain == "bounce.mail.example.com"
    assert config.unsubscribe_mailto == "unsubscribe@unsubscribe.mail.example.com"  # received on its own subdomain


def test_which_file_is_read(tmp_path, monkeypatch):
    default = tmp_path / "postline.config.json"
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG", default)
    assert config_path(None) == EXAMPLE_CONFIG  # nothing chosen, no postline.config.json
    default.write_text("{}")
    assert config_path(None) == default
    assert config_path("staging.json") == REPO_ROOT / "staging.json"
    assert config_path(str(tmp_path / "x.json")) == tmp_path / "x.json"


def test_defaults():
    config = parse_config(MINIMAL)
    assert (config.stack_name, config.ip_pools, config.dmarc_policy, config.retain_data) == (
        "postline", "none", "none", True)
    assert config.hosted_zone is None and config.api_domain is None and config.alarm_email is None
    assert config.send_concurrency["marketing"] < config.send_concurrency["critical"]
    # The limiter uses SES's own rate and quota, marketing 70% of the rate, and no warm-up.
    assert (config.max_send_rate, config.max_24_hour_send, config.marketing_rate_share, config.warmup) == (
        None, None, 0.7, None)


def test_history_is_kept_30_days_by_default_as_the_functions_keep_it():
    from postline.settings import Settings

    # What the functions keep when POSTLINE_*_TTL_DAYS is not set.
    functions = {f.name: f.default for f in dataclasses.fields(Settings)}
    for config in (parse_config(MINIMAL), load_config(EXAMPLE_CONFIG)):
        assert (config.message_ttl_days, config.event_ttl_days) == (30, 30)
        assert (config.message_ttl_days, config.event_ttl_days) == (functions["message_ttl_days"],
                                                                    functions["event_ttl_days"])
    kept_longer = parse_config({**MINIMAL, "message_ttl_days": 90, "event_ttl_days": 90})
    assert (kept_longer.message_ttl_days, kept_longer.event_ttl_days) == (90, 90)


def test_every_problem_is_reported_at_once():
    message = _problems({"from_address": "nobody", "ip_pools": "cheap", "log_retention_days": 31, "colour": 1})
    for fragment in ("domain: required", "from_address: 'nobody'", "ip_pools: 'cheap' is not one of",
                     "log_retention_days: 31 is not one CloudWatch allows", "colour: unknown key"):
        assert fragment in message


@pytest.mark.parametrize("change, fragment", [
    ({"from_address": "hello@elsewhere.com"}, "not on the sending domain mail.example.com"),
    ({"domain": "not a domain"}, "is not a domain name"),
    ({"hosted_zone": {"zone_id": "Z123ABC", "zone_name": "example.org"}}, "does not contain the domain"),
    ({"hosted_zone": {"zone_id": "bad", "zone_name": "example.com"}}, "hosted_zone.zone_id"),
    ({"api_domain": {"domain_name": "links.example.com"}}, "certificate_arn: required when no hosted_zone"),
    ({"api_domain": {"domain_name": "links.example.com", "certificate_arn": "nope"}}, "ACM certificate ARN"),
    ({"send_concurrency": {"marketing": 50}}, "marketing (50) may not exceed critical (4)"),
    ({"render_concurrency": {"critical": 1}}, "render_concurrency.critical: must be a whole number from 2"),
    ({"render_concurrency": {"bulk": 5}}, "render_concurrency.bulk: unknown stream"),
    ({"app_events": ["email.sent", "email.opend"]}, "app_events: unknown events ['email.opend']"),
    ({"app_events": "some"}, 'app_events: must be a list of event names or "all"'),
    ({"message_ttl_days": 7}, "message_ttl_days: 7 is outside 30..3650"),
    ({"tracing": "yes"}, "tracing: must be bool"),
    ({"api_rate_limit": True}, "api_rate_limit: must be int, got bool"),
    ({"alarm_email": "ops"}, "alarm_email: 'ops' is not an email address"),
    ({"mail_from_subdomain": "a.b"}, "must be one DNS label"),
    ({"dmarc_policy": "strict"}, "dmarc_policy: 'strict' is not one of none, quarantine, reject"),
    ({"sandbox_recipients": ["x"]}, "sandbox_recipients: not email addresses"),
    ({"adopt_existing_identity": "yes"}, "adopt_existing_identity: must be bool, got str"),
    ({"bootstrap_kms_key_arn": "alias/cdk"}, "bootstrap_kms_key_arn: 'alias/cdk' is not a KMS key ARN"),
    ({"alerts": {"bounce_rate": 0}}, "alerts.bounce_rate: must be a number above 0 and at most 1, got 0"),
    ({"alerts": {"complaint_rate": 1.5}}, "alerts.complaint_rate: must be a number above 0 and at most 1, got 1.5"),
    ({"alerts": {"min_sample": 10.5}}, "alerts.min_sample: must be a whole number at least 1"),
    ({"alerts": {"window_hours": 337}}, "alerts.window_hours: must be a whole number at least 1 and at most 336"),
    ({"alerts": {"bounce_rate": True}}, "alerts.bounce_rate: must be a number above 0"),
    ({"alerts": {"pause": True}}, "alerts.pause: unknown key (known: bounce_rate, complaint_rate, min_sample, "
                                  "window_hours)"),
    ({"alerts": [0.05]}, "alerts: must be dict, got list"),
])
def test_invalid_values_are_named(change, fragment):
    assert fragment in _problems({**MINIMAL, **change})


STANDARD = {**MINIMAL, "ip_pools": "standard"}


@pytest.mark.parametrize("change, fragment", [
    ({"max_send_rate": 0}, "max_send_rate: must be a number of emails per second above 0, got 0"),
    ({"max_send_rate": -2.5}, "max_send_rate: must be a number of emails per second above 0, got -2.5"),
    ({"max_send_rate": True}, "max_send_rate: must be a number of emails per second above 0, got True"),
    ({"max_send_rate": "14"}, "max_send_rate: must be int/float, got str"),
    ({"max_24_hour_send": 0}, "max_24_hour_send: must be a whole number of emails above 0, got 0"),
    ({"max_24_hour_send": 5e4}, "max_24_hour_send: must be int, got float"),
    ({"marketing_rate_share": 0}, "marketing_rate_share: must be above 0 and at most 1"),
    ({"marketing_rate_share": 1.5}, "marketing_rate_share: must be above 0 and at most 1"),
    ({"warmup": {"start": "2025-03-01"}}, 'warmup: needs ip_pools "standard"; with "none" mail goes out on '
                                          "SES's shared IPs and there is no dedicated IP to warm"),
    ({"ip_pools": "managed", "warmup": {"start": "2025-03-01"}},
     'warmup: needs ip_pools "standard"; with "managed" pools SES warms the dedicated IPs itself'),
    ({"ip_pools": "standard", "warmup": ["2025-03-01"]}, "warmup: must be dict, got list"),
    ({"ip_pools": "standard", "warmup": {}}, "warmup.start: required, the day the dedicated IPs began sending"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-02-30"}}, "warmup.start: '2025-02-30' is not a date as "
                                                                   "YYYY-MM-DD"),
    ({"ip_pools": "standard", "warmup": {"start": "20250301"}}, "warmup.start: '20250301' is not a date"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "days": 30}},
     "warmup.days: unknown key (known: curve, pools, start)"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "pools": ["critical"]}},
     "warmup.pools: unknown pools ['critical'] (pools: transactional, marketing)"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "pools": []}},
     "warmup.pools: must be a non-empty list of IP pool names (transactional, marketing)"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "pools": "marketing"}},
     "warmup.pools: must be a non-empty list of IP pool names"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "curve": []}},
     "warmup.curve: must be a non-empty list of [day, emails per day] pairs"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "curve": [[1, 100], [2, 0]]}},
     "warmup.curve[1]: must be [day, emails per day], two whole numbers above 0, got [2, 0]"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "curve": [[1, 100], [2, 150.5]]}},
     "warmup.curve[1]: must be [day, emails per day]"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "curve": [[1, 100, 5]]}},
     "warmup.curve[0]: must be [day, emails per day]"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "curve": [[1, 100], [5, 500], [5, 800]]}},
     "warmup.curve: days must increase strictly, day 5 follows day 5"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "curve": [[3, 100], [2, 500]]}},
     "warmup.curve: days must increase strictly, day 2 follows day 3"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "curve": [[1, 1000], [2, 500]]}},
     "warmup.curve: emails per day may not decrease, 500 on day 2 after 1000 on day 1"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "curve": [[d, d] for d in range(1, 22)]}},
     "warmup.curve: 21 points, at most 20"),
    # The plan travels in the send function's 4 KB environment: each number has a ceiling too.
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "curve": [[1, 100], [366, 500]]}},
     "warmup.curve[1]: [366, 500] is beyond day 365 or 100,000,000 emails per day"),
    ({"ip_pools": "standard", "warmup": {"start": "2025-03-01", "curve": [[1, 100_000_001]]}},
     "warmup.curve[0]: [1, 100000001] is beyond day 365 or 100,000,000 emails per day"),
])
def test_invalid_sending_rate_and_warmup_are_named(change, fragment):
    assert fragment in _problems({**MINIMAL, **change})


def test_the_longest_warmup_curve_is_accepted():
    curve = [[day, 100_000_000] for day in range(346, 366)]  # 20 points
    assert parse_config({**STANDARD, "warmup": {"start": "2025-03-01", "curve": curve}}).warmup.curve[-1] == (
        365, 100_000_000)


def test_the_stack_name_is_short_enough_for_every_queue_name():
    # It starts every queue's name (SQS: 80 characters) and the schedule group's (EventBridge Scheduler: 64).
    longest = "p" * config_module.MAX_STACK_NAME_LENGTH
    assert config_module.MAX_STACK_NAME_LENGTH == 55
    assert parse_config({**MINIMAL, "stack_name": longest}).stack_name == longest
    message = _problems({**MINIMAL, "stack_name": longest + "p"})
    assert "stack_name: 'pppp" in message and "has 56 characters, at most 55" in message
    assert "SQS limits to 80 characters (the longest: <stack name>-send-transactional-dlq)" in message
    assert "EventBridge Scheduler limits to 64 (<stack name>-postline)" in message


def test_every_warmup_problem_is_reported_at_once():
    message = _problems({**MINIMAL, "ip_pools": "managed", "warmup": {
        "start": "soon", "pools": ["bulk"], "curve": [[2, 10], [1, 5]], "ips": 2}})
    for fragment in ('needs ip_pools "standard"', "warmup.ips: unknown key", "warmup.start: 'soon'",
                     "unknown pools ['bulk']", "days must increase strictly", "emails per day may not decrease"):
        assert fragment in message


def test_sending_rate_overrides_are_parsed():
    config = parse_config({**MINIMAL, "max_send_rate": 14, "max_24_hour_send": 50_000, "marketing_rate_share": 1})
    assert (config.max_send_rate, config.max_24_hour_send, config.marketing_rate_share) == (14, 50_000, 1.0)
    assert parse_config({**MINIMAL, "max_send_rate": 0.5, "marketing_rate_share": 0.25}).max_send_rate == 0.5


def test_a_warmup_defaults_to_the_marketing_pool_and_the_librarys_curve():
    warmup = parse_config({**STANDARD, "warmup": {"start": "2025-03-01"}}).warmup
    assert (warmup.start, warmup.pools, warmup.curve) == ("2025-03-01", ("marketing",), None)
    # What the send function is given: each warmed pool with the streams that send through it; no curve of its own.
    assert warmup.plan() == {"start": "2025-03-01", "pools": {"marketing": ["marketing"]}}


def test_a_warmup_with_its_own_pools_and_curve():
    warmup = parse_config({**STANDARD, "warmup": {
        "start": "2025-03-01", "pools": ["transactional", "marketing", "marketing"],
        "curve": [[1, 500], [2, 500], [10, 20_000]]}}).warmup
    assert warmup.pools == ("transactional", "marketing")
    assert warmup.plan() == {"start": "2025-03-01",
                             "pools": {"transactional": ["critical", "transactional"], "marketing": ["marketing"]},
                             "curve": [[1, 500], [2, 500], [10, 20_000]]}


def test_optional_parts_are_parsed():
    config = parse_config({
        **MINIMAL, "hosted_zone": {"zone_id": "Z0123456789ABCDEFGHIJ", "zone_name": "Example.com."},
        "api_domain": {"domain_name": "links.example.com"}, "send_concurrency": {"critical": 30},
        "from_address": "news@news.mail.example.com",  # a subdomain of a verified domain may send too
    })
    assert config.hosted_zone.zone_name == "example.com"
    assert config.api_domain.certificate_arn is None
    assert config.send_concurrency == {"critical": 30, "transactional": 3, "marketing": 2}


def test_a_missing_or_broken_file_says_which(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(broken)
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([]))
    with pytest.raises(ConfigError, match="must be a JSON object"):
        load_config(listed)


def test_alert_thresholds_are_taken_as_given_and_left_to_the_functions_otherwise():
    assert parse_config(MINIMAL).alerts is None  # the functions' defaults: 5 %, 0.1 %, 100 emails, 24 hours
    alerts = parse_config({**MINIMAL, "alerts": {"bounce_rate": 0.03, "min_sample": 500}}).alerts
    assert (alerts.bounce_rate, alerts.complaint_rate, alerts.min_sample,
            alerts.window_hours) == (0.03, None, 500, None)
    assert load_config(EXAMPLE_CONFIG).alerts == config_module.Alerts(0.05, 0.001, 100, 24)


def test_the_alert_defaults_the_example_states_are_the_functions_own():
    from postline.settings import Settings

    functions = {f.name: f.default for f in dataclasses.fields(Settings)}
    example = load_config(EXAMPLE_CONFIG).alerts
    for key in ("bounce_rate", "complaint_rate", "min_sample", "window_hours"):
        assert getattr(example, key) == functions[f"alert_{key}"], key


def test_the_default_concurrency_fits_a_young_account_raised_a_little():
    # Each queue consumer at its ceiling (3 inbound and 3 send queues, the SES events, the campaigns' control queue,
    # the unsubscribe emails) and the tracking API's share: what the account's Lambda concurrency must allow.
    assert parse_config(MINIMAL).concurrency_needed() == (4 + 3 + 2) + (4 + 3 + 2) + 3 + 2 + 2 + 10 == 35
    eventbridge = parse_config({**MINIMAL, "ses_event_route": "eventbridge"})  # the held-back Send events' queue too
    assert eventbridge.concurrency_needed() == 38
    assert parse_config({**MINIMAL, "receive_unsubscribe_mail": False}).concurrency_needed() == 33
    assert parse_config(MINIMAL).lambda_concurrency_limit == 1000
    assert parse_config({**MINIMAL, "lambda_concurrency_limit": 50}).lambda_concurrency_limit == 50


def test_an_account_with_too_little_lambda_concurrency_is_told_to_raise_it():
    message = _problems({**MINIMAL, "lambda_concurrency_limit": 10})  # a new account's
    assert "lambda_concurrency_limit: the functions may run 35 at once" in message
    assert "29 with every concurrency at its lowest, 2), more than the account's 10" in message
    assert "Raise the account's Lambda concurrency first (docs/deploy.md, 'Lambda concurrency')" in message
    assert "may run 45 at once" in _problems({**MINIMAL, "lambda_concurrency_limit": 40,
                                               "send_concurrency": {"critical": 14}})
    assert "lambda_concurrency_limit: 5 is outside 10..1000000" in _problems({**MINIMAL, "lambda_concurrency_limit": 5})


def test_the_send_queue_age_alarm_may_not_fire_on_a_deliberate_wait():
    assert parse_config(MINIMAL).send_queue_age_alarm_seconds == 1800
    assert parse_config({**MINIMAL, "send_queue_age_alarm_seconds": 1260}).send_queue_age_alarm_seconds == 1260
    message = _problems({**MINIMAL, "send_queue_age_alarm_seconds": 300})  # the old default, which fired falsely
    assert "send_queue_age_alarm_seconds: 300 is outside 1260..86400" in message
    assert "delayed up to 15 minutes at a time" in message


def test_an_existing_identity_and_a_bootstrap_key_are_taken():
    config = parse_config({**MINIMAL, "adopt_existing_identity": True, "bootstrap_kms_key_arn":
                           "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"})
    assert config.adopt_existing_identity is True
    assert config.bootstrap_kms_key_arn.endswith(":key/1234abcd-12ab-34cd-56ef-1234567890ab")
    assert (parse_config(MINIMAL).adopt_existing_identity is False
            and parse_config(MINIMAL).bootstrap_kms_key_arn is None)
