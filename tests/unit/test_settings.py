"""Settings come from the environment once, at cold start; anything missing fails loudly, naming the variable."""
from __future__ import annotations

import pytest

from postline.settings import STREAMS, ConfigurationError, Settings, settings_from_environ


def environment(**overrides: str | None) -> dict[str, str]:
    env = {
        "POSTLINE_MESSAGES_TABLE": "pl-messages",
        "POSTLINE_EVENTS_TABLE": "pl-events",
        "POSTLINE_SUPPRESSIONS_TABLE": "pl-suppressions",
        "POSTLINE_TEMPLATES_TABLE": "pl-templates",
        "POSTLINE_QUEUE_URL_PREFIX": "https://sqs.example/1/postline-",
        "POSTLINE_DEFAULT_FROM": "Lumen <hello@mail.example.com>",
        "POSTLINE_TRACKING_BASE_URL": "https://links.example.com",
        "POSTLINE_UNSUBSCRIBE_MAILTO": "unsubscribe@mail.example.com",
        "POSTLINE_SIGNING_KEYS_SECRET": "postline/signing-keys",
        "POSTLINE_CLAIM_CHECK_BUCKET": "pl-claim-check",
        "POSTLINE_EVENT_BUS": "pl-events",
        "POSTLINE_SCHEDULE_GROUP": "pl-retries",
        "POSTLINE_SCHEDULER_ROLE_ARN": "arn:aws:iam::1:role/pl-scheduler",
        "POSTLINE_RATE_LIMITS_TABLE": "pl-rate-limits",
        "POSTLINE_CAMPAIGNS_TABLE": "pl-campaigns",
        "POSTLINE_STATS_TABLE": "pl-stats",
        "POSTLINE_ALARM_TOPIC_ARN": "arn:aws:sns:us-east-1:1:pl-alarms",
        "POSTLINE_UNSUBSCRIBE_MAIL_TOPIC_ARN": "arn:aws:sns:us-east-1:1:pl-unsubscribe-mail",
        **{f"POSTLINE_CONFIGURATION_SET_{s.upper()}": f"postline-{s}" for s in STREAMS},
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def misconfiguration(**overrides: str | None) -> str:
    with pytest.raises(ConfigurationError) as caught:
        settings_from_environ(environment(**overrides))
    return str(caught.value)


def test_complete_environment_builds_settings():
    settings = settings_from_environ(environment())
    assert isinstance(settings, Settings)
    assert settings.messages_table == "pl-messages"
    assert settings.templates_table == "pl-templates"
    assert settings.send_queue_urls == {s: f"https://sqs.example/1/postline-send-{s}" for s in STREAMS}
    assert settings.configuration_sets == {s: f"postline-{s}" for s in STREAMS}
    assert settings.inbound_dlq_urls["postline-marketing"] == "https://sqs.example/1/postline-marketing-dlq"
    assert settings.queue_url_prefix == "https://sqs.example/1/postline-"
    assert settings.default_from == "Lumen <hello@mail.example.com>"
    assert settings.claim_check_bucket == "pl-claim-check"


def test_tunables_have_documented_defaults_and_can_be_set():
    defaults = settings_from_environ(environment())
    assert defaults.stale_claim_seconds == 900 and defaults.max_message_bytes == 64_000
    assert defaults.send_event_delay_seconds == 60
    tuned = settings_from_environ(environment(POSTLINE_STALE_CLAIM_SECONDS="180", POSTLINE_SEND_CONCURRENCY="4",
                                              POSTLINE_TEMPLATE_POINTER_TTL_SECONDS="0",
                                              POSTLINE_SEND_EVENT_DELAY_SECONDS="5"))
    assert (tuned.stale_claim_seconds, tuned.send_concurrency, tuned.template_pointer_ttl_seconds,
            tuned.send_event_delay_seconds) == (180, 4, 0, 5)


def test_history_is_kept_30_days_unless_the_environment_says_otherwise():
    defaults = settings_from_environ(environment())
    assert (defaults.message_ttl_days, defaults.event_ttl_days) == (30, 30)
    kept_longer = settings_from_environ(environment(POSTLINE_MESSAGE_TTL_DAYS="90", POSTLINE_EVENT_TTL_DAYS="90"))
    assert (kept_longer.message_ttl_days, kept_longer.event_ttl_days) == (90, 90)
    assert "POSTLINE_MESSAGE_TTL_DAYS" in misconfiguration(POSTLINE_MESSAGE_TTL_DAYS="0")


@pytest.mark.parametrize("stale, delay", [("120", None), ("600", "600"), ("60", "0")])
def test_a_claim_may_not_go_stale_before_its_send_event_is_applied(stale, delay):
    # Taking over a claim whose email SES accepted, before its Send event could settle it, would send it twice.
    message = misconfiguration(POSTLINE_STALE_CLAIM_SECONDS=stale, POSTLINE_SEND_EVENT_DELAY_SECONDS=delay)
    assert "POSTLINE_STALE_CLAIM_SECONDS" in message and "send_event_delay_seconds" in message


@pytest.mark.parametrize("variable", ["POSTLINE_MESSAGES_TABLE", "POSTLINE_EVENTS_TABLE", "POSTLINE_SUPPRESSIONS_TABLE",
                                      "POSTLINE_TEMPLATES_TABLE", "POSTLINE_QUEUE_URL_PREFIX",
                                      "POSTLINE_DEFAULT_FROM",
                                      "POSTLINE_TRACKING_BASE_URL", "POSTLINE_SIGNING_KEYS_SECRET",
                                      "POSTLINE_CLAIM_CHECK_BUCKET", "POSTLINE_UNSUBSCRIBE_MAILTO",
                                      "POSTLINE_CAMPAIGNS_TABLE", "POSTLINE_STATS_TABLE", "POSTLINE_ALARM_TOPIC_ARN"])
def test_missing_resource_setting_is_an_error_naming_the_variable(variable):
    message = misconfiguration(**{variable: None})
    assert variable in message
    assert "misconfigured" in message


@pytest.mark.parametrize("stream", STREAMS)
def test_missing_per_stream_setting_names_the_variable_and_the_stream(stream):
    prefix = "POSTLINE_CONFIGURATION_SET_"
    message = misconfiguration(**{prefix + stream.upper(): None})
    assert prefix in message
    assert stream in message
    assert [s for s in STREAMS if s in message.split(prefix, 1)[1]] == [stream]


def test_empty_per_stream_setting_counts_as_missing():
    assert "marketing" in misconfiguration(POSTLINE_CONFIGURATION_SET_MARKETING="")


def test_every_problem_is_reported_at_once():
    message = misconfiguration(POSTLINE_MESSAGES_TABLE=None, POSTLINE_CLAIM_CHECK_BUCKET=None,
                               POSTLINE_CONFIGURATION_SET_CRITICAL=None)
    for name in ("POSTLINE_MESSAGES_TABLE", "POSTLINE_CLAIM_CHECK_BUCKET", "POSTLINE_CONFIGURATION_SET_"):
        assert name in message


def test_empty_environment_lists_everything_missing():
    with pytest.raises(ConfigurationError) as caught:
        settings_from_environ({})
    message = str(caught.value)
    assert "POSTLINE_MESSAGES_TABLE" in message and "POSTLINE_CONFIGURATION_SET_" in message
    assert message.count("POSTLINE_QUEUE_URL_PREFIX: Field required") == 1  # not once per queue it gives


PREFIX = "https://sqs.ap-southeast-1.amazonaws.com/123456789012/postline-prod-"


def test_every_queue_url_is_derived_from_the_prefix_as_the_stack_names_the_queues():
    settings = settings_from_environ(environment(POSTLINE_QUEUE_URL_PREFIX=PREFIX))
    assert settings.inbound_queue_urls == {s: f"{PREFIX}{s}" for s in STREAMS}
    assert settings.send_queue_urls == {s: f"{PREFIX}send-{s}" for s in STREAMS}
    # Keyed by the queue's name, which is what a record's eventSourceARN ends with.
    assert settings.inbound_dlq_urls == {f"postline-prod-{s}": f"{PREFIX}{s}-dlq" for s in STREAMS}
    assert settings.send_dlq_urls == {f"postline-prod-send-{s}": f"{PREFIX}send-{s}-dlq" for s in STREAMS}
    assert settings.ses_events_dlq_url == f"{PREFIX}ses-events-dlq"
    assert settings.campaign_queue_url == f"{PREFIX}campaigns"


def test_the_local_stacks_prefix_gives_its_queues():
    local = "http://127.0.0.1:4566/123456789012/postline-"
    settings = settings_from_environ(environment(POSTLINE_QUEUE_URL_PREFIX=local))
    assert settings.send_queue_urls["critical"] == f"{local}send-critical"
    assert settings.inbound_dlq_urls["postline-critical"] == f"{local}critical-dlq"


@pytest.mark.parametrize("value", ["postline-", "sqs.example/1/postline-", "https://sqs.example", "ftp://x/1/p-"])
def test_queue_url_prefix_must_be_a_url_with_a_path(value):
    message = misconfiguration(POSTLINE_QUEUE_URL_PREFIX=value)
    assert "POSTLINE_QUEUE_URL_PREFIX" in message and "http(s) URL" in message


def test_the_queue_url_variables_of_before_are_gone():
    # One prefix replaced them (4 KB of environment); a leftover one would be ignored, so none is read.
    settings = settings_from_environ(environment(POSTLINE_SEND_QUEUE_URL_CRITICAL="https://sqs.example/1/other"))
    assert settings.send_queue_urls["critical"] == "https://sqs.example/1/postline-send-critical"


@pytest.mark.parametrize("value", ["links.example.com", "ftp://links.example.com", "//links.example.com"])
def test_tracking_base_url_must_be_http_or_https(value):
    message = misconfiguration(POSTLINE_TRACKING_BASE_URL=value)
    assert "POSTLINE_TRACKING_BASE_URL" in message and "http(s)" in message


def test_an_empty_tracking_base_url_is_a_missing_one():
    assert "POSTLINE_TRACKING_BASE_URL: Field required" in misconfiguration(POSTLINE_TRACKING_BASE_URL="")


def test_a_function_checks_only_the_resources_it_reads():
    without_limiter = {k: v for k, v in environment().items() if k != "POSTLINE_RATE_LIMITS_TABLE"}
    assert settings_from_environ(without_limiter, "render").rate_limits_table is None
    with pytest.raises(ConfigurationError, match="^postline is misconfigured: POSTLINE_RATE_LIMITS_TABLE: Field "
                                                 "required$"):
        settings_from_environ(without_limiter, "send")
    with pytest.raises(ConfigurationError, match="POSTLINE_RATE_LIMITS_TABLE"):
        settings_from_environ(without_limiter)  # the CLI and the local stack serve every function


@pytest.mark.parametrize("value, expected", [
    ("https://links.example.com/", "https://links.example.com"),
    ("https://links.example.com//", "https://links.example.com"),
    ("http://127.0.0.1:3000/", "http://127.0.0.1:3000"),
    ("https://example.com/t/", "https://example.com/t"),
])
def test_tracking_base_url_loses_its_trailing_slash(value, expected):
    assert settings_from_environ(environment(POSTLINE_TRACKING_BASE_URL=value)).tracking_base_url == expected


@pytest.mark.parametrize("variable, value", [("POSTLINE_MAX_MESSAGE_BYTES", "lots"),
                                             ("POSTLINE_MAX_MESSAGE_BYTES", "0"),
                                             ("POSTLINE_SEND_CONCURRENCY", "-1"),
                                             ("POSTLINE_STALE_CLAIM_SECONDS", "1.5"),
                                             ("POSTLINE_SEND_EVENT_DELAY_SECONDS", "901"),  # SQS's longest delay
                                             ("POSTLINE_SEND_EVENT_DELAY_SECONDS", "-1")])
def test_invalid_tunable_is_an_error_naming_the_variable(variable, value):
    assert variable in misconfiguration(**{variable: value})


@pytest.mark.parametrize("variable", ["POSTLINE_MESSAGES_TABLE", "POSTLINE_CLAIM_CHECK_BUCKET"])
def test_empty_resource_name_counts_as_missing(variable):
    assert variable in misconfiguration(**{variable: ""})


def test_campaigns_keep_two_minutes_of_backlog_unless_told_otherwise():
    settings = settings_from_environ(environment())
    assert settings.campaigns_table == "pl-campaigns" and settings.campaign_backlog_seconds == 120
    assert settings_from_environ(environment(POSTLINE_CAMPAIGN_BACKLOG_SECONDS="300")).campaign_backlog_seconds == 300
    assert "POSTLINE_CAMPAIGN_BACKLOG_SECONDS" in misconfiguration(POSTLINE_CAMPAIGN_BACKLOG_SECONDS="0")


def test_the_campaign_control_queue_and_its_dlq_are_among_every_deployments_queues():
    from postline import queue_names

    assert {"campaigns", "campaigns-dlq"} <= set(queue_names.suffixes(STREAMS))
