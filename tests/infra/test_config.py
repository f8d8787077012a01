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
    assert config.unsubscribe_mailto == "unsubscribe@mail.example.com"


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
    ({"send_concurrency": {"marketing": 50}}, "marketing (50) may not exceed critical (10)"),
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
])
def test_invalid_values_are_named(change, fragment):
    assert fragment in _problems({**MINIMAL, **change})


def test_optional_parts_are_parsed():
    config = parse_config({
        **MINIMAL, "hosted_zone": {"zone_id": "Z0123456789ABCDEFGHIJ", "zone_name": "Example.com."},
        "api_domain": {"domain_name": "links.example.com"}, "send_concurrency": {"critical": 30},
        "from_address": "news@news.mail.example.com",  # a subdomain of a verified domain may send too
    })
    assert config.hosted_zone.zone_name == "example.com"
    assert config.api_domain.certificate_arn is None
    assert config.send_concurrency == {"critical": 30, "transactional": 5, "marketing": 2}


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
