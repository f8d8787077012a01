"""Alarms on DLQs, send-queue age, function errors and throttles, SES reputation and quota; all to the alarm
topic."""
from __future__ import annotations

from stacks.constants import FUNCTIONS, QUOTA_ALARM_PERCENT


def _alarms(synth):
    return [a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values()]


def test_every_alarm_notifies_the_alarm_topic(synth):
    topic = {"Ref": synth.logical_id(synth.stack.monitoring.topic)}
    alarms = _alarms(synth)
    # 8 DLQs (the SNS route has no held-back Send queue; the campaigns' control queue has one), 3 send queues, each
    # function, reputation, quota.
    assert len(alarms) == 8 + 3 + 2 * len(FUNCTIONS) + 2 + 1
    assert all(alarm["AlarmActions"] == [topic] for alarm in alarms)


def test_dlq_depth_alarms(synth):
    dlqs = {synth.logical_id(dlq) for _, _, dlq in synth.stack.queues.all_with_dlq}
    alarmed = {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in _alarms(synth)
               if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"}
    assert alarmed == dlqs


def test_send_queue_age_alarms(synth):
    send_queues = {synth.logical_id(q) for q in synth.stack.queues.send.values()}
    ages = [a for a in _alarms(synth) if a.get("MetricName") == "ApproximateAgeOfOldestMessage"]
    assert {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in ages} == send_queues
    assert all(a["Threshold"] == 300 for a in ages)


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


def test_alarm_topic_is_encrypted_and_cloudwatch_may_use_its_key(synth):
    topic = synth.resource(synth.stack.monitoring.topic)["Properties"]
    key = synth.template["Resources"][topic["KmsMasterKeyId"]["Fn::GetAtt"][0]]["Properties"]
    assert any(s["Principal"] == {"Service": "cloudwatch.amazonaws.com"} for s in key["KeyPolicy"]["Statement"])
    assert not synth.resources("AWS::SNS::Subscription").keys() - {
        k for k, v in synth.resources("AWS::SNS::Subscription").items() if v["Properties"]["Protocol"] == "sqs"}


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
