"""Alarms on DLQs, send-queue age, function errors and throttles, SES reputation and quota; all to the alarm
topic, which CloudWatch may publish to. The dashboard, with each stream's emails from the functions' metrics."""
from __future__ import annotations

import json

import pytest

from stacks.constants import (
    EMAIL_ENGAGEMENT_METRICS,
    EMAIL_OUTCOME_METRICS,
    FUNCTIONS,
    QUOTA_ALARM_PERCENT,
    SQS_MAX_DELAY,
    STREAMS,
    VISIBILITY_TIMEOUT_FACTOR,
)


def _alarms(synth):
    return [a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values()]


def test_every_alarm_notifies_the_alarm_topic(synth):
    topic = {"Ref": synth.logical_id(synth.stack.monitoring.topic)}
    alarms = _alarms(synth)
    # 8 DLQs (the SNS route has no held-back Send queue; the campaigns' control queue has one), the schedules' and
    # the unsubscribe emails', 3 send queues, each function, reputation, quota, mail held for an unverified identity
    # per stream.
    assert len(alarms) == 8 + 1 + 1 + 3 + 2 * len(FUNCTIONS) + 2 + 1 + 3
    assert all(alarm["AlarmActions"] == [topic] for alarm in alarms)


def test_dlq_depth_alarms(synth):
    dlqs = {synth.logical_id(dlq) for _, _, dlq in synth.stack.queues.all_with_dlq}
    dlqs.add(synth.logical_id(synth.stack.scheduling.dead_letters))  # a retry or campaign start Scheduler lost
    dlqs.add(synth.logical_id(synth.stack.receiving.dead_letters))  # an unreadable unsubscribe email notification
    alarmed = {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in _alarms(synth)
               if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"}
    assert alarmed == dlqs


def test_send_queue_age_alarms_only_past_the_longest_wait_postline_makes_on_purpose(synth):
    send_queues = {synth.logical_id(q) for q in synth.stack.queues.send.values()}
    ages = [a for a in _alarms(synth) if a.get("MetricName") == "ApproximateAgeOfOldestMessage"]
    assert {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in ages} == send_queues
    # An email SES refuses for now (or its campaign's window holds) is put back delayed up to 15 minutes at a time;
    # a receive whose invocation died stays hidden for the visibility timeout. Only older means nobody handles it.
    send_queue = synth.resource(synth.stack.queues.send["critical"])["Properties"]
    send_function = synth.resource(synth.stack.functions.functions["send"])["Properties"]
    assert send_queue["VisibilityTimeout"] == VISIBILITY_TIMEOUT_FACTOR * send_function["Timeout"]
    longest_deliberate_wait = SQS_MAX_DELAY.to_seconds() + send_queue["VisibilityTimeout"]
    for alarm in ages:
        assert alarm["Threshold"] == 1800 > longest_deliberate_wait == 1260
        assert alarm["Statistic"] == "Maximum" and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_function_error_and_throttle_alarms(synth):
    for metric in ("Errors", "Throttles"):
        alarmed = {a["Dimensions"][0]["Value"]["Ref"] for a in _alarms(synth) if a.get("MetricName") == metric}
        assert alarmed == {synth.logical_id(f) for f in synth.stack.functions.functions.values()}


def test_ses_reputation_alarms(synth):
    reputation = {a["MetricName"]: a for a in _alarms(synth) if a.get("Namespace") == "AWS/SES"}
    assert reputation["Reputation.BounceRate"]["Threshold"] == 0.05
    assert reputation["Reputation.ComplaintRate"]["Threshold"] == 0.001
    for alarm in reputation.values():
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert "Dimensions" not in alarm  # account level


def test_ses_quota_alarm_watches_the_send_functions_metric(synth):
    quota = [a for a in _alarms(synth) if a.get("MetricName") == "SesQuotaUsedPercent"]
    assert len(quota) == 1
    alarm = quota[0]
    # Where Powertools publishes it: the functions' namespace, with its default dimension service=<service name>.
    env = synth.resource(synth.stack.functions.functions["send"])["Properties"]["Environment"]["Variables"]
    assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"] == "postline"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Maximum", 300, 1)
    assert alarm["Threshold"] == QUOTA_ALARM_PERCENT == 90  # where the limiter stops marketing
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert "marketing" in alarm["AlarmDescription"] and "quota increase" in alarm["AlarmDescription"]
    alarm_id = next(k for k, v in synth.resources("AWS::CloudWatch::Alarm").items() if v["Properties"] is alarm)
    assert "SesQuotaLow" in alarm_id


def test_mail_held_for_an_unverified_identity_alarms_per_stream_on_the_send_functions_metric(synth):
    from postline.send import HELD_UNVERIFIED_METRIC

    held = [a for a in _alarms(synth) if a.get("MetricName") == HELD_UNVERIFIED_METRIC == "HeldUnverified"]
    # Where the send function publishes it (EMF): the functions' namespace, dimensions service and stream.
    env = synth.resource(synth.stack.functions.functions["send"])["Properties"]["Environment"]["Variables"]
    assert {a["Namespace"] for a in held} == {"postline"} == {env["POWERTOOLS_METRICS_NAMESPACE"]}
    assert sorted(tuple(sorted((d["Name"], d["Value"]) for d in a["Dimensions"])) for a in held) == sorted(
        (("service", env["POWERTOOLS_SERVICE_NAME"]), ("stream", stream)) for stream in STREAMS)
    for alarm in held:  # the first email held in a 5-minute period is enough
        assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"],
                alarm["Threshold"]) == ("Sum", 300, 1, 1)
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert "SES has not verified" in alarm["AlarmDescription"] and "sandbox" in alarm["AlarmDescription"]


def test_alarm_topic_is_encrypted_and_cloudwatch_may_use_its_key(synth):
    topic = synth.resource(synth.stack.monitoring.topic)["Properties"]
    key = synth.template["Resources"][topic["KmsMasterKeyId"]["Fn::GetAtt"][0]]["Properties"]
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"} for s in key["KeyPolicy"]["Statement"])
    assert not synth.resources("AWS::SNS::Subscription").keys() - {
        k for k, v in synth.resources("AWS::SNS::Subscription").items() if v["Properties"]["Protocol"] == "sqs"}


def test_cloudwatch_alarms_of_this_account_may_publish_to_the_alarm_topic(synth):
    topic = synth.logical_id(synth.stack.monitoring.topic)
    (policy,) = [p["Properties"]["PolicyDocument"]["Statement"]
                 for p in synth.resources("AWS::SNS::TopicPolicy").values()
                 if p["Properties"]["Topics"] == [{"Ref": topic}]]
    # The topic's policy replaces SNS's default one: without an Allow, no alarm action could publish.
    (deny,) = [s for s in policy if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (allow,) = [s for s in policy if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish" and allow["Resource"] == {"Ref": topic}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    source = allow["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1]
    assert source == ["arn:", {"Ref": "AWS::Partition"}, ":cloudwatch:", {"Ref": "AWS::Region"}, ":",
                      {"Ref": "AWS::AccountId"}, ":alarm:*"]


def test_email_subscription_when_configured(variant):
    variant.assertions.has_resource_properties("AWS::SNS::Subscription", {
        "Protocol": "email", "Endpoint": "ops@example.org",
        "TopicArn": {"Ref": variant.logical_id(variant.stack.monitoring.topic)}})


def test_dashboard_shows_flow_backlog_and_latency(synth):
    dashboard = next(iter(synth.resources("AWS::CloudWatch::Dashboard").values()))
    body = str(dashboard["Properties"]["DashboardBody"])
    for title in ("Flow: critical", "Flow: transactional", "Flow: marketing", "Backlog: send queues",
                  "Latency: oldest message waiting to be sent", "SES reputation"):
        assert title in body
    for metric in ("NumberOfMessagesSent", "Delivery", "Bounce", "Complaint", "ses:configuration-set"):
        assert metric in body


def test_dashboard_shows_the_sending_rate(synth):
    dashboard = next(iter(synth.resources("AWS::CloudWatch::Dashboard").values()))
    body = "".join(part if isinstance(part, str) else "" for part in dashboard["Properties"]["DashboardBody"][
        "Fn::Join"][1])
    assert body.count("Sending rate: ") == 3
    for metric in ("SesQuotaUsedPercent", "SesThrottledSends", "RateLimiterWaits"):
        assert f'["postline","{metric}","service","postline"' in body


def _dashboard_metrics(synth) -> list[list]:
    """Every metric the dashboard draws, as CloudWatch reads them: [namespace, name, dimension, value, ...]."""
    dashboard = next(iter(synth.resources("AWS::CloudWatch::Dashboard").values()))
    # References (queue names, the region) are resolved at deploy, always inside a JSON string.
    body = "".join(part if isinstance(part, str) else "TOKEN" for part in dashboard["Properties"]["DashboardBody"][
        "Fn::Join"][1])
    return [[value for value in metric if not isinstance(value, dict)]  # the last item: the metric's options
            for widget in json.loads(body)["widgets"] for metric in widget["properties"].get("metrics", [])]


@pytest.mark.parametrize("stream", STREAMS)
def test_the_dashboard_shows_each_streams_emails_from_the_functions_metrics(synth, stream):
    # What postline.analytics publishes (EMF): namespace postline, dimensions service=postline and stream.
    drawn = _dashboard_metrics(synth)
    for name in (*EMAIL_OUTCOME_METRICS, *EMAIL_ENGAGEMENT_METRICS):
        assert ["postline", name, "service", "postline", "stream", stream] in drawn, name
    assert {"Sent", "Delivered", "HardBounced", "Complained", "Opened", "Clicked"} <= {
        *EMAIL_OUTCOME_METRICS, *EMAIL_ENGAGEMENT_METRICS}


def test_the_dashboards_email_metrics_are_the_ones_the_functions_publish(synth):
    from postline.analytics import METRIC_NAMES, METRICS_NAMESPACE

    published = set(METRIC_NAMES.values())
    drawn = {metric[1] for metric in _dashboard_metrics(synth) if metric[:1] == [METRICS_NAMESPACE]
             and "stream" in metric}
    assert drawn == set(EMAIL_OUTCOME_METRICS) | set(EMAIL_ENGAGEMENT_METRICS)
    assert drawn <= published, drawn - published  # a name the functions never publish would draw nothing
