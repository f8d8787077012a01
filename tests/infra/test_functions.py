"""Functions: one runtime and architecture, the shared layer, tracing, JSON logs, one role each, the settings
the library requires, and event source mappings with partial batch failures and per-queue ceilings."""
from __future__ import annotations

import dataclasses
import json

import pytest

from postline.settings import (
    APP_EVENT_NAMES,
    ENVIRONMENT,
    PER_STREAM,
    STREAMS,
    USED_BY,
    ConfigurationError,
    Settings,
    settings_from_environ,
)
from postline_cli.local.worker import consumers, queues_of
from stacks.config import MAX_WARMUP_CURVE_POINTS, parse_config
from stacks.constants import API_CONCURRENCY_ALLOWANCE, FUNCTIONS, MAX_STACK_NAME_LENGTH
from stacks.functions import ANNOUNCERS, READ_BY

from .conftest import LARGEST_CONFIG, _synthesize
from .environment_size import ENVIRONMENT_BUDGET, LAMBDA_ENVIRONMENT_LIMIT, environment_sizes, largest_values


def test_eight_functions_on_one_runtime_with_the_layer(synth):
    functions = synth.postline_functions()
    assert len(functions) == len(FUNCTIONS) == 8
    published = synth.logical_id(synth.stack.functions.node.find_child("CommonLayer").node.find_child("Published"))
    for function in functions.values():
        properties = function["Properties"]
        assert properties["Runtime"] == "python3.13"
        assert properties["Architectures"] == ["arm64"]
        assert properties["Handler"] == "app.handler"
        assert properties["Layers"] == [{"Fn::GetAtt": [published, "LayerVersionArn"]}]
        assert "TracingConfig" not in properties  # X-Ray is opt-in: it would be a sixth of the cost per email
        assert properties["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "true"
        assert properties["LoggingConfig"]["LogFormat"] == "JSON"


def _variables(synth, name):
    return synth.resource(synth.stack.functions.functions[name])["Properties"]["Environment"]["Variables"]


def test_tracing_and_every_application_event_when_the_config_asks(variant):
    for function in variant.postline_functions().values():
        properties = function["Properties"]
        assert properties["TracingConfig"] == {"Mode": "Active"}
        assert properties["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "false"
    for name in ANNOUNCERS:
        # "all", which the library reads as every event (their names would take a hundred bytes more).
        assert _variables(variant, name)["POSTLINE_APP_EVENTS"] == "all"
        assert settings_from_environ({**_placeholders(variant, name), "POSTLINE_APP_EVENTS": "all"},
                                     name).app_events == APP_EVENT_NAMES
    assert _variables(variant, "render")["POSTLINE_MESSAGE_TTL_DAYS"] == "90"
    assert _variables(variant, "ses_events")["POSTLINE_EVENT_TTL_DAYS"] == "90"


def test_by_default_only_the_events_an_application_must_act_on(synth):
    for name in ANNOUNCERS:
        variables = _variables(synth, name)
        assert variables["POSTLINE_APP_EVENTS"] == "email.bounced,email.complained,email.unsubscribed,email.failed"
    assert _variables(synth, "render")["POSTLINE_MESSAGE_TTL_DAYS"] == "30"
    assert _variables(synth, "track_open")["POSTLINE_EVENT_TTL_DAYS"] == "30"


def test_each_function_has_its_own_role_and_log_group_with_retention(synth):
    functions = synth.postline_functions().values()
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions]
    log_groups = [f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in functions]
    assert len(set(roles)) == len(set(log_groups)) == len(FUNCTIONS)
    for log_group in log_groups:
        assert synth.template["Resources"][log_group]["Properties"]["RetentionInDays"] == 30
    for role in roles:
        trust = synth.template["Resources"][role]["Properties"]
        assert trust["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert "ManagedPolicyArns" not in trust


REQUIRED = {v for v, f in ENVIRONMENT.items()
            if f in {field.name for field in dataclasses.fields(Settings) if field.default is dataclasses.MISSING}}


def _used_by(name: str) -> set[str]:
    """The variables of the resources only some functions read, that function ``name`` reads."""
    return ({v for v, f in ENVIRONMENT.items() if name in USED_BY.get(f, ())}
            | {p + s.upper() for p, f in PER_STREAM.items() if name in USED_BY[f] for s in STREAMS})


@pytest.mark.parametrize("fixture", ["synth", "variant", "warmed", "largest"])
def test_every_function_gets_the_settings_it_requires_and_only_the_others_it_reads(request, fixture):
    synth = request.getfixturevalue(fixture)
    for name in FUNCTIONS:
        variables = set(_variables(synth, name))
        assert REQUIRED | _used_by(name) <= variables, (name, REQUIRED | _used_by(name) - variables)
        others = {v for v in variables - REQUIRED if v.startswith("POSTLINE_")}
        assert all(name in READ_BY[v] for v in others), (name, {v for v in others if name not in READ_BY[v]})
        assert all(v in ENVIRONMENT or v.startswith(tuple(PER_STREAM)) for v in others), others  # the library's
        # The settings the function builds at cold start, from its own environment, validate.
        settings_from_environ(_placeholders(synth, name), name)


def test_a_function_started_without_a_resource_it_reads_fails_at_cold_start_naming_it(synth):
    environment = _placeholders(synth, "send")
    del environment["POSTLINE_RATE_LIMITS_TABLE"]
    settings_from_environ(_placeholders(synth, "render"), "render")  # render reads no limiter
    with pytest.raises(ConfigurationError, match="POSTLINE_RATE_LIMITS_TABLE: Field required"):
        settings_from_environ(environment, "send")
    assert "POSTLINE_RATE_LIMITS_TABLE" not in _variables(synth, "render")


def test_the_library_names_only_functions_the_stack_has():
    assert {name for readers in USED_BY.values() for name in readers} <= set(FUNCTIONS)


def test_the_sender_goes_to_the_function_that_renders(synth):
    assert _variables(synth, "track_open")["POWERTOOLS_SERVICE_NAME"] == "postline"
    assert _variables(synth, "render")["POSTLINE_DEFAULT_FROM"] == synth.config.from_address
    assert "POSTLINE_DEFAULT_FROM" not in _variables(synth, "track_open")


def test_optional_settings_go_where_they_are_read(synth):
    expected = {
        "render": {"POSTLINE_MESSAGE_TTL_DAYS", "POSTLINE_MAX_RECEIVE_COUNT", "POSTLINE_DOMAIN_CHECK_STREAMS"},
        "send": {"POSTLINE_APP_EVENTS", "POSTLINE_MAX_RECEIVE_COUNT", "POSTLINE_SEND_EVENT_DELAY_SECONDS",
                 "POSTLINE_MARKETING_RATE_SHARE"},
        "ses_events": {"POSTLINE_APP_EVENTS", "POSTLINE_MAX_RECEIVE_COUNT", "POSTLINE_EVENT_TTL_DAYS",
                       "POSTLINE_MIRROR_SES_SUPPRESSIONS", "POSTLINE_SCHEDULE_DLQ_ARN", "POSTLINE_ALERT_BOUNCE_RATE",
                       "POSTLINE_ALERT_COMPLAINT_RATE", "POSTLINE_ALERT_MIN_SAMPLE", "POSTLINE_ALERT_WINDOW_HOURS",
                       "POSTLINE_SES_EVENTS_TOPIC_ARN"},
        "campaign": {"POSTLINE_APP_EVENTS", "POSTLINE_MAX_RECEIVE_COUNT", "POSTLINE_MARKETING_RATE_SHARE",
                     "POSTLINE_SCHEDULE_DLQ_ARN"},
        **{name: {"POSTLINE_APP_EVENTS", "POSTLINE_EVENT_TTL_DAYS"}
           for name in ("track_open", "track_click", "unsubscribe")},
    }
    for name, variables in expected.items():
        given = {v for v in _variables(synth, name) if v.startswith("POSTLINE_")} - REQUIRED - _used_by(name)
        assert given == variables, name


def test_the_alert_thresholds_go_to_the_function_that_checks_them_when_the_config_gives_them(synth, largest):
    alerts = {"POSTLINE_ALERT_BOUNCE_RATE", "POSTLINE_ALERT_COMPLAINT_RATE", "POSTLINE_ALERT_MIN_SAMPLE",
              "POSTLINE_ALERT_WINDOW_HOURS"}
    for name in FUNCTIONS:  # the example config states the functions' own defaults
        assert set(_variables(synth, name)) & alerts == (alerts if name == "ses_events" else set()), name
    settings = settings_from_environ(_placeholders(largest, "ses_events"), "ses_events")
    assert (settings.alert_bounce_rate, settings.alert_complaint_rate, settings.alert_min_sample,
            settings.alert_window_hours) == (0.0123456789012345, 0.0009876543210987, 1_000_000_000, 336)
    assert _variables(synth, "ses_events")["POSTLINE_ALARM_TOPIC_ARN"] == {
        "Ref": synth.logical_id(synth.stack.monitoring.topic)}
    assert _variables(synth, "send")["POSTLINE_STATS_TABLE"] == {"Ref": synth.logical_id(synth.stack.tables.stats)}
    assert "POSTLINE_ALARM_TOPIC_ARN" not in _variables(synth, "send")


LIMITER_VARIABLES = {"POSTLINE_MARKETING_RATE_SHARE", "POSTLINE_MAX_SEND_RATE", "POSTLINE_MAX_24_HOUR_SEND",
                     "POSTLINE_WARMUP_PLAN"}


def _send_environment(synth):
    send = synth.resource(synth.stack.functions.functions["send"])
    return send["Properties"]["Environment"]["Variables"]


def test_the_rate_limiter_uses_ses_figures_and_a_marketing_share_by_default(synth):
    env = _send_environment(synth)
    assert env["POSTLINE_MARKETING_RATE_SHARE"] == "0.7"
    assert env["POSTLINE_RATE_LIMITS_TABLE"] == {"Ref": synth.logical_id(synth.stack.tables.rate_limits)}
    # No overrides: the limiter reads the rate and the 24-hour quota from SES (GetAccount). No warm-up.
    for variable in ("POSTLINE_MAX_SEND_RATE", "POSTLINE_MAX_24_HOUR_SEND", "POSTLINE_WARMUP_PLAN"):
        assert variable not in env


def test_the_rate_limiter_gets_the_configured_overrides_and_warmup_plan(warmed):
    env = _send_environment(warmed)
    assert (env["POSTLINE_MAX_SEND_RATE"], env["POSTLINE_MAX_24_HOUR_SEND"],
            env["POSTLINE_MARKETING_RATE_SHARE"]) == ("14.5", "50000", "0.5")
    # Each warmed pool with the streams that send through it (critical and transactional share a pool).
    assert json.loads(env["POSTLINE_WARMUP_PLAN"]) == {
        "start": "2025-03-01",
        "pools": {"transactional": ["critical", "transactional"], "marketing": ["marketing"]},
        "curve": [[1, 200], [3, 1000], [7, 10000], [14, 50000]],
    }


def test_only_the_send_function_carries_the_limiters_settings_and_the_campaign_function_its_rate(warmed):
    # The fan-out keeps the marketing backlog to a couple of minutes at the marketing rate: the rate, not the plan.
    rate = LIMITER_VARIABLES - {"POSTLINE_WARMUP_PLAN"}
    expected = {"send": LIMITER_VARIABLES, "campaign": rate}
    for name, function in warmed.stack.functions.functions.items():
        variables = set(warmed.resource(function)["Properties"]["Environment"]["Variables"])
        assert variables & LIMITER_VARIABLES == expected.get(name, set()), name
    campaign = warmed.resource(warmed.stack.functions.functions["campaign"])["Properties"]["Environment"]["Variables"]
    assert (campaign["POSTLINE_MAX_SEND_RATE"], campaign["POSTLINE_MARKETING_RATE_SHARE"]) == ("14.5", "0.5")


@pytest.mark.parametrize("fixture", ["synth", "warmed", "largest"])
def test_every_environment_fits_postlines_3_kb_budget_of_lambdas_4_kb(request, fixture):
    # Lambda refuses a function whose variables, names and values together, pass 4 KB; most values are references
    # resolved only at deploy, each counted at the longest its resource type's naming rules allow. ``largest``
    # has the longest stack name, warm-up plan and every override the config accepts. (The synth itself checks it.)
    synth = request.getfixturevalue(fixture)
    sizes = environment_sizes(synth)
    assert set(sizes) == set(FUNCTIONS)
    assert ENVIRONMENT_BUDGET == 3072 and LAMBDA_ENVIRONMENT_LIMIT == 4096
    for name, size in sizes.items():
        assert size <= ENVIRONMENT_BUDGET, (name, size, "largest value:", largest_values(synth)[name])


def test_the_largest_environment_is_the_send_functions_with_the_longest_plan(largest):
    assert len(largest.stack.stack_name) == MAX_STACK_NAME_LENGTH
    env = _send_environment(largest)
    assert len(json.loads(env["POSTLINE_WARMUP_PLAN"])["curve"]) == MAX_WARMUP_CURVE_POINTS == 20
    sizes = environment_sizes(largest)
    assert max(sizes, key=sizes.__getitem__) == "send"


def test_the_synth_fails_on_an_environment_over_the_budget(tmp_path):
    # The sender's name is free in length: with the longest stack name, one of 2,000 characters is too much for
    # the function that renders (the only one given the sender).
    too_long = {**LARGEST_CONFIG, "from_address": "N" * 2000 + " <news@notifications.mail.example-company.com>"}
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        _synthesize(parse_config(too_long, "too long"), tmp_path, context={"aws:cdk:bundling-stacks": []})
    report = json.loads((tmp_path / "validation-report.json").read_text())
    (plugin,) = [p for p in report["pluginReports"] if p["pluginName"] == "postline-lambda-environment-size"]
    assert plugin["conclusion"] == "failure"
    by_function = {construct["constructPath"].split("/")[-2]: violation["description"]
                   for violation in plugin["violations"] for construct in violation["violatingConstructs"]}
    assert set(by_function) == {"Render"}
    assert "over the 3072 postline allows itself under Lambda's 4096" in by_function["Render"]


# Where the stack is deployed, as CloudFormation resolves the pseudo parameters in the queue URL prefix.
DEPLOYED = {"AWS::Region": "ap-southeast-1", "AWS::URLSuffix": "amazonaws.com", "AWS::AccountId": "123456789012"}


def _deployed(value) -> str:
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_deployed(part) for part in parts)
    return DEPLOYED[value["Ref"]]


@pytest.mark.parametrize("fixture", ["synth", "variant", "largest"])
def test_the_library_derives_every_queue_url_from_the_prefix_as_the_stack_names_them(request, fixture):
    synth = request.getfixturevalue(fixture)
    env = _variables(synth, "render")
    for gone in ("POSTLINE_INBOUND_DLQ_URLS", "POSTLINE_SEND_DLQ_URLS", "POSTLINE_SES_EVENTS_DLQ_URL",
                 *(f"POSTLINE_{kind}_QUEUE_URL_{s.upper()}" for kind in ("INBOUND", "SEND") for s in STREAMS)):
        assert gone not in env
    settings = settings_from_environ(_placeholders(synth, "render"), "render")
    queues = synth.stack.queues

    def url(queue) -> str:  # what the queue's Ref resolves to
        name = synth.resource(queue)["Properties"]["QueueName"]
        assert len(name) <= 80 and not name.endswith(".fifo")
        return f"https://sqs.ap-southeast-1.amazonaws.com/123456789012/{name}"

    def name(queue) -> str:
        return synth.resource(queue)["Properties"]["QueueName"]

    assert settings.inbound_queue_urls == {s: url(queues.inbound[s]) for s in STREAMS}
    assert settings.send_queue_urls == {s: url(queues.send[s]) for s in STREAMS}
    # Keyed by the queue's name, which is what a record's eventSourceARN ends with.
    assert settings.inbound_dlq_urls == {name(queues.inbound[s]): url(queues.dead_letter_queues[f"postline-{s}"])
                                         for s in STREAMS}
    assert settings.send_dlq_urls == {name(queues.send[s]): url(queues.dead_letter_queues[f"postline-send-{s}"])
                                      for s in STREAMS}
    assert settings.ses_events_dlq_url == url(queues.dead_letter_queues["postline-ses-events"])
    # Every queue, the held-back Send events' too, is named <stack name>-<suffix>.
    stack_name = synth.stack.stack_name
    for _, queue, dlq in queues.all_with_dlq:
        assert name(queue).startswith(f"{stack_name}-") and name(dlq) == f"{name(queue)}-dlq"


def _resolvable(value) -> bool:
    return isinstance(value, str) or ("Fn::Join" in value and all(
        _resolvable(part) for part in value["Fn::Join"][1])) or value.get("Ref") in DEPLOYED


def _placeholders(synth, name: str) -> dict[str, str]:
    """The function's environment as deployed: the queue URL prefix resolved, the other references (tables, the
    API's URL, ...), which only need to be there, by a placeholder."""
    return {variable: _deployed(value) if _resolvable(value) else "https://resolved.at.deploy/x"
            for variable, value in _variables(synth, name).items()}


def test_tracking_base_url_is_the_api_endpoint(synth):
    env = _variables(synth, "render")
    assert env["POSTLINE_TRACKING_BASE_URL"] == {"Fn::GetAtt": [synth.logical_id(synth.stack.api.api), "ApiEndpoint"]}


def test_tracking_base_url_is_the_custom_domain_when_configured(variant):
    assert _variables(variant, "render")["POSTLINE_TRACKING_BASE_URL"] == "https://links.example.org"


def _mappings(synth, function_name):
    """The function's event source mappings by queue: "critical", ... for inbound, "send-critical", ... for send."""
    queues = synth.stack.queues
    label = {synth.logical_id(queue): stream for stream, queue in queues.inbound.items()}
    label |= {synth.logical_id(queue): f"send-{stream}" for stream, queue in queues.send.items()}
    label[synth.logical_id(queues.ses_events)] = "ses-events"
    label[synth.logical_id(queues.campaigns)] = "campaigns"
    if synth.stack.receiving is not None:  # unsubscribe by email (stacks/receiving.py)
        label[synth.logical_id(synth.stack.receiving.queue)] = "unsubscribe-mail"
    if queues.ses_send_events is not None:  # the EventBridge route only
        label[synth.logical_id(queues.ses_send_events)] = "ses-send-events"
    function = {"Ref": synth.logical_id(synth.stack.functions.functions[function_name])}
    return {label[m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]: m["Properties"]
            for m in synth.resources("AWS::Lambda::EventSourceMapping").values()
            if m["Properties"]["FunctionName"] == function}


def test_event_source_mappings_batch_ten_with_partial_failures_but_campaign_runs_one_at_a_time(synth):
    control_queue = synth.logical_id(synth.stack.queues.campaigns)
    events_queue = synth.logical_id(synth.stack.queues.ses_events)
    for mapping in synth.resources("AWS::Lambda::EventSourceMapping").values():
        queue = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        assert mapping["Properties"]["BatchSize"] == {control_queue: 1, events_queue: 100}.get(queue, 10)
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert 2 <= mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= 1000


def test_ses_events_are_gathered_for_a_second_up_to_100_and_the_local_stack_gathers_them_alike(synth, variant):
    """Fewer, fuller invocations of ses_events: its receives, record reads, counter writes and application events
    are paid per batch. The local stack's pollers gather with the same numbers, so what it measures is this."""
    sns_route = _mappings(synth, "ses_events")
    eventbridge_route = _mappings(variant, "ses_events")  # the held-back Send events too
    assert (set(sns_route), set(eventbridge_route)) == ({"ses-events"}, {"ses-events", "ses-send-events"})
    for mapping in [*sns_route.values(), *eventbridge_route.values()]:
        assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (100, 1)
    for consumer in consumers("ses_events", dict.fromkeys(queues_of("ses_events"), 1)):
        assert (consumer.batch_size, consumer.batching_window_seconds) == (100, 1.0)
    for name, mapping in _mappings(synth, "send").items():
        assert "MaximumBatchingWindowInSeconds" not in mapping, name  # a password reset never waits to be gathered


def test_the_campaign_function_consumes_the_control_queue_two_runs_at_most(synth):
    (mapping,) = _mappings(synth, "campaign").items()
    assert mapping[0] == "campaigns"
    assert (mapping[1]["BatchSize"], mapping[1]["ScalingConfig"]["MaximumConcurrency"]) == (1, 2)
    function = synth.resource(synth.stack.functions.functions["campaign"])["Properties"]
    assert (function["Timeout"], function["MemorySize"]) == (120, 512)
    # A run is never seen twice while it lasts: the message stays hidden six times the function's timeout.
    queue = synth.resource(synth.stack.queues.campaigns)["Properties"]
    assert queue["QueueName"] == "postline-campaigns" and queue["VisibilityTimeout"] == 720
    dlq = synth.resource(synth.stack.queues.dead_letter_queues["postline-campaigns"])["Properties"]
    assert dlq["QueueName"] == "postline-campaigns-dlq"
    assert [name for name in FUNCTIONS if "campaigns" in _mappings(synth, name)] == ["campaign"]


def test_marketing_is_capped_below_critical(synth, variant):
    render = _mappings(synth, "render")
    send = _mappings(synth, "send")
    assert set(render) == set(STREAMS)
    assert set(send) == {f"send-{s}" for s in STREAMS}
    assert set(_mappings(synth, "ses_events")) == {"ses-events"}  # the SNS route: Send events are not published
    assert set(_mappings(variant, "ses_events")) == {"ses-events", "ses-send-events"}  # EventBridge: held back

    def ceiling(mappings, key):
        return mappings[key]["ScalingConfig"]["MaximumConcurrency"]

    assert ceiling(render, "marketing") < ceiling(render, "critical")
    assert ceiling(send, "send-marketing") < ceiling(send, "send-critical")
    configured = _mappings(variant, "send")
    assert [ceiling(configured, f"send-{s}") for s in STREAMS] == [20, 10, 3]


@pytest.mark.parametrize("fixture", ["synth", "variant"])
def test_the_queue_consumers_ceilings_and_the_api_fit_the_accounts_lambda_concurrency(request, fixture):
    # A throttled SQS invocation counts as a receive: ceilings past the account's concurrency send mail to the DLQs.
    synth = request.getfixturevalue(fixture)
    ceilings = sum(m["Properties"]["ScalingConfig"]["MaximumConcurrency"]
                   for m in synth.resources("AWS::Lambda::EventSourceMapping").values())
    assert ceilings + API_CONCURRENCY_ALLOWANCE == synth.config.concurrency_needed()
    assert synth.config.concurrency_needed() <= synth.config.lambda_concurrency_limit
    if fixture == "synth":  # the defaults: 35, for an account raised from a new one's 10 (docs/deploy.md)
        assert ceilings + API_CONCURRENCY_ALLOWANCE == 35
    # No function reserves concurrency: Lambda keeps 10 unreserved, all a new account has.
    assert not any("ReservedConcurrentExecutions" in f["Properties"] for f in synth.postline_functions().values())
