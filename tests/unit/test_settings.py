"""Settings come from the environment once, at cold start; anything missing fails loudly, naming the variable."""
from __future__ import annotations

import json

import pytest

from postline.settings import STREAMS, ConfigurationError, Settings, settings_from_environ


def environment(**overrides: str | None) -> dict[str, str]:
    env = {
        "POSTLINE_MESSAGES_TABLE": "pl-messages",
        "POSTLINE_EVENTS_TABLE": "pl-events",
        "POSTLINE_SUPPRESSIONS_TABLE": "pl-suppressions",
        "POSTLINE_TEMPLATES_TABLE": "pl-templates",
        "POSTLINE_INBOUND_DLQ_URLS": json.dumps({f"postline-{s}": f"https://sqs.example/1/postline-{s}-dlq"
                                                 for s in STREAMS}),
        "POSTLINE_SEND_DLQ_URLS": json.dumps({f"postline-send-{s}": f"https://sqs.example/1/postline-send-{s}-dlq"
                                              for s in STREAMS}),
        "POSTLINE_DEFAULT_FROM": "Lumen <hello@mail.example.com>",
        "POSTLINE_TRACKING_BASE_URL": "https://links.example.com",
        "POSTLINE_UNSUBSCRIBE_MAILTO": "unsubscribe@mail.example.com",
        "POSTLINE_SIGNING_KEYS_SECRET": "postline/signing-keys",
        "POSTLINE_CLAIM_CHECK_BUCKET": "pl-claim-check",
        "POSTLINE_EVENT_BUS": "pl-events",
        "POSTLINE_SES_EVENTS_DLQ_URL": "https://sqs.example/1/postline-ses-events-dlq",
        "POSTLINE_INBOUND_QUEUE_URL_CRITICAL": "https://sqs.example/1/postline-critical",
        "POSTLINE_INBOUND_QUEUE_URL_TRANSACTIONAL": "https://sqs.example/1/postline-transactional",
        "POSTLINE_INBOUND_QUEUE_URL_MARKETING": "https://sqs.example/1/postline-marketing",
        "POSTLINE_SCHEDULE_GROUP": "pl-retries",
        "POSTLINE_SCHEDULER_ROLE_ARN": "arn:aws:iam::1:role/pl-scheduler",
        "POSTLINE_RATE_LIMITS_TABLE": "pl-rate-limits",
        **{f"POSTLINE_SEND_QUEUE_URL_{s.upper()}": f"https://sqs.example/1/postline-send-{s}" for s in STREAMS},
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
                                      "POSTLINE_TEMPLATES_TABLE", "POSTLINE_INBOUND_DLQ_URLS", "POSTLINE_SEND_DLQ_URLS",
                                      "POSTLINE_DEFAULT_FROM",
                                      "POSTLINE_TRACKING_BASE_URL", "POSTLINE_SIGNING_KEYS_SECRET",
                                      "POSTLINE_CLAIM_CHECK_BUCKET", "POSTLINE_UNSUBSCRIBE_MAILTO"])
def test_missing_resource_setting_is_an_error_naming_the_variable(variable):
    message = misconfiguration(**{variable: None})
    assert variable in message
    assert "misconfigured" in message


@pytest.mark.parametrize("prefix", ["POSTLINE_SEND_QUEUE_URL_", "POSTLINE_CONFIGURATION_SET_"])
@pytest.mark.parametrize("stream", STREAMS)
def test_missing_per_stream_setting_names_the_variable_and_the_stream(prefix, stream):
    message = misconfiguration(**{prefix + stream.upper(): None})
    assert prefix in message
    assert stream in message
    assert [s for s in STREAMS if s in message.split(prefix, 1)[1]] == [stream]


def test_empty_per_stream_setting_counts_as_missing():
    assert "marketing" in misconfiguration(POSTLINE_SEND_QUEUE_URL_MARKETING="")


def test_every_problem_is_reported_at_once():
    message = misconfiguration(POSTLINE_MESSAGES_TABLE=None, POSTLINE_CLAIM_CHECK_BUCKET=None,
                               POSTLINE_CONFIGURATION_SET_CRITICAL=None)
    for name in ("POSTLINE_MESSAGES_TABLE", "POSTLINE_CLAIM_CHECK_BUCKET", "POSTLINE_CONFIGURATION_SET_"):
        assert name in message


def test_empty_environment_lists_everything_missing():
    with pytest.raises(ConfigurationError) as caught:
        settings_from_environ({})
    assert "POSTLINE_MESSAGES_TABLE" in str(caught.value) and "POSTLINE_SEND_QUEUE_URL_" in str(caught.value)


def test_invalid_json_in_dlq_urls_is_a_clear_error():
    message = misconfiguration(POSTLINE_INBOUND_DLQ_URLS="{postline-critical: nope}")
    assert message.startswith("POSTLINE_INBOUND_DLQ_URLS is not valid JSON")


def test_dlq_urls_must_be_a_json_object():
    message = misconfiguration(POSTLINE_INBOUND_DLQ_URLS='["https://sqs.example/1/dlq"]')
    assert "POSTLINE_INBOUND_DLQ_URLS" in message


@pytest.mark.parametrize("value", ["links.example.com", "ftp://links.example.com", "//links.example.com", ""])
def test_tracking_base_url_must_be_http_or_https(value):
    message = misconfiguration(POSTLINE_TRACKING_BASE_URL=value)
    assert "POSTLINE_TRACKING_BASE_URL" in message and "http(s)" in message


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
