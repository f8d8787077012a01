"""Functions: one runtime and architecture, the shared layer, tracing, JSON logs, one role each, the settings
the library requires, and event source mappings with partial batch failures and per-queue ceilings."""
from __future__ import annotations

import dataclasses
import json

from postline.settings import APP_EVENT_NAMES, ENVIRONMENT, PER_STREAM, STREAMS, Settings
from stacks.constants import FUNCTIONS


def test_six_functions_on_one_runtime_with_the_layer(synth):
    functions = synth.postline_functions()
    assert len(functions) == len(FUNCTIONS) == 6
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
    assert len(set(roles)) == len(set(log_groups)) == 6
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
    environments = [f["Properties"]["Environment"]["Variables"]
                    for f in synth.postline_functions().values()]
    assert all(env == environments[0] for env in environments)
    assert variables <= set(environments[0]), variables - set(environments[0])
    assert environments[0]["POWERTOOLS_SERVICE_NAME"] == "postline"
    assert environments[0]["POSTLINE_DEFAULT_FROM"] == "Example <hello@mail.example.com>"


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


def test_inbound_dlq_urls_are_keyed_by_inbound_queue_name(synth):
    queues = synth.stack.queues
    value = next(iter(synth.postline_functions().values()))["Properties"]["Environment"][
        "Variables"]["POSTLINE_INBOUND_DLQ_URLS"]
    parts = value["Fn::Join"][1]
    for stream in STREAMS:
        name = {"Fn::GetAtt": [synth.logical_id(queues.inbound[stream]), "QueueName"]}
        dlq = {"Ref": synth.logical_id(queues.dead_letter_queues[f"postline-{stream}"])}
        assert parts[parts.index(name) + 2] == dlq


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
    if queues.ses_send_events is not None:  # the EventBridge route only
        label[synth.logical_id(queues.ses_send_events)] = "ses-send-events"
    function = {"Ref": synth.logical_id(synth.stack.functions.functions[function_name])}
    return {label[m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]: m["Properties"]
            for m in synth.resources("AWS::Lambda::EventSourceMapping").values()
            if m["Properties"]["FunctionName"] == function}


def test_event_source_mappings_batch_ten_with_partial_failures(synth):
    for mapping in synth.resources("AWS::Lambda::EventSourceMapping").values():
        assert mapping["Properties"]["BatchSize"] == 10
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert 2 <= mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= 1000


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
