"""Functions: one runtime and architecture, the shared layer, tracing, JSON logs, one role each, the settings
the library requires, and event source mappings with partial batch failures and per-queue ceilings."""
from __future__ import annotations

import dataclasses
import json

import pytest

from postline.settings import APP_EVENT_NAMES, ENVIRONMENT, PER_STREAM, STREAMS, Settings, settings_from_environ
from stacks.constants import FUNCTIONS, MAX_STACK_NAME_LENGTH

from .environment_size import LAMBDA_ENVIRONMENT_LIMIT, environment_sizes, largest_values


def test_seven_functions_on_one_runtime_with_the_layer(synth):
    functions = synth.postline_functions()
    assert len(functions) == len(FUNCTIONS) == 7
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


def test_tracing_and_every_application_event_when_the_config_asks(variant):
    for function in variant.postline_functions().values():
        properties = function["Properties"]
        assert properties["TracingConfig"] == {"Mode": "Active"}
        variables = properties["Environment"]["Variables"]
        assert variables["POWERTOOLS_TRACE_DISABLED"] == "false"
        assert variables["POSTLINE_APP_EVENTS"].split(",") == list(APP_EVENT_NAMES)
        assert (variables["POSTLINE_EVENT_TTL_DAYS"], variables["POSTLINE_MESSAGE_TTL_DAYS"]) == ("90", "90")


def test_by_default_only_the_events_an_application_must_act_on(synth):
    for function in synth.postline_functions().values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["POSTLINE_APP_EVENTS"] == "email.bounced,email.complained,email.unsubscribed,email.failed"
        assert (variables["POSTLINE_EVENT_TTL_DAYS"], variables["POSTLINE_MESSAGE_TTL_DAYS"]) == ("30", "30")


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


def test_every_function_gets_every_setting_the_library_requires(synth):
    required = {field.name for field in dataclasses.fields(Settings) if field.default is dataclasses.MISSING}
    variables = {v for v, f in ENVIRONMENT.items() if f in required}
    variables |= {prefix + s.upper() for prefix in PER_STREAM for s in STREAMS}
    environments = [{v: value for v, value in f["Properties"]["Environment"]["Variables"].items()
                     if v not in LIMITER_VARIABLES} for f in synth.postline_functions().values()]
    assert all(env == environments[0] for env in environments)
    assert variables <= set(environments[0]), variables - set(environments[0])
    assert environments[0]["POWERTOOLS_SERVICE_NAME"] == "postline"
    assert environments[0]["POSTLINE_DEFAULT_FROM"] == "Example <hello@mail.example.com>"


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


# What every function's environment must leave of Lambda's 4 KB once CloudFormation has resolved it: room for what
# the next feature adds, and for names a little longer than the estimate's (tests/infra/environment_size.py).
MARGIN = 600


@pytest.mark.parametrize("fixture", ["synth", "warmed", "largest"])
def test_every_environment_fits_lambdas_4_kb_with_a_clear_margin(request, fixture):
    # Lambda refuses a function whose variables, names and values together, pass 4 KB; most values are references
    # resolved only at deploy, each counted at the longest its resource type's naming rules allow. ``largest``
    # has the longest stack name and warm-up plan the config accepts.
    synth = request.getfixturevalue(fixture)
    sizes = environment_sizes(synth)
    assert set(sizes) == set(FUNCTIONS)
    for name, size in sizes.items():
        assert size <= LAMBDA_ENVIRONMENT_LIMIT - MARGIN, (name, size, "largest value:", largest_values(synth)[name])


def test_the_largest_environment_is_the_send_functions_with_the_longest_plan(largest):
    assert len(largest.stack.stack_name) == MAX_STACK_NAME_LENGTH
    env = _send_environment(largest)
    assert len(json.loads(env["POSTLINE_WARMUP_PLAN"])["curve"]) == 30
    sizes = environment_sizes(largest)
    assert max(sizes, key=sizes.__getitem__) == "send"


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
    env = next(iter(synth.postline_functions().values()))["Properties"]["Environment"]["Variables"]
    for gone in ("POSTLINE_INBOUND_DLQ_URLS", "POSTLINE_SEND_DLQ_URLS", "POSTLINE_SES_EVENTS_DLQ_URL",
                 *(f"POSTLINE_{kind}_QUEUE_URL_{s.upper()}" for kind in ("INBOUND", "SEND") for s in STREAMS)):
        assert gone not in env
    # The other references (tables, the API's URL, ...) only need to be there.
    deployed = {variable: _deployed(value) if _resolvable(value) else "https://resolved.at.deploy/x"
                for variable, value in env.items()}
    settings = settings_from_environ(deployed)
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


def test_tracking_base_url_is_the_api_endpoint(synth):
    env = next(iter(synth.postline_functions().values()))["Properties"]["Environment"]["Variables"]
    assert env["POSTLINE_TRACKING_BASE_URL"] == {"Fn::GetAtt": [synth.logical_id(synth.stack.api.api), "ApiEndpoint"]}


def test_tracking_base_url_is_the_custom_domain_when_configured(variant):
    env = next(iter(variant.postline_functions().values()))["Properties"]["Environment"]["Variables"]
    assert env["POSTLINE_TRACKING_BASE_URL"] == "https://links.example.org"


def _mappings(synth, function_name):
    """The function's event source mappings by queue: "critical", ... for inbound, "send-critical", ... for send."""
    queues = synth.stack.queues
    label = {synth.logical_id(queue): stream for stream, queue in queues.inbound.items()}
    label |= {synth.logical_id(queue): f"send-{stream}" for stream, queue in queues.send.items()}
    label[synth.logical_id(queues.ses_events)] = "ses-events"
    label[synth.logical_id(queues.campaigns)] = "campaigns"
    if queues.ses_send_events is not None:  # the EventBridge route only
        label[synth.logical_id(queues.ses_send_events)] = "ses-send-events"
    function = {"Ref": synth.logical_id(synth.stack.functions.functions[function_name])}
    return {label[m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]: m["Properties"]
            for m in synth.resources("AWS::Lambda::EventSourceMapping").values()
            if m["Properties"]["FunctionName"] == function}


def test_event_source_mappings_batch_ten_with_partial_failures_but_campaign_runs_one_at_a_time(synth):
    control_queue = synth.logical_id(synth.stack.queues.campaigns)
    for mapping in synth.resources("AWS::Lambda::EventSourceMapping").values():
        one_run = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0] == control_queue
        assert mapping["Properties"]["BatchSize"] == (1 if one_run else 10)
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert 2 <= mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= 1000


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
