"""The optional app-events queue (config app_events_queue): every postline event on the stack's bus reaches
<stack name>-app-events, encrypted, TLS-only, with a DLQ, readable through a policy of its own; off by default."""
from __future__ import annotations

import pytest

from postline_cli.events import QUEUE_OUTPUT
from stacks.config import parse_config
from stacks.constants import MAX_RECEIVE_COUNT, Outputs

from .conftest import _synthesize

CONFIG = {"stack_name": "postline-events", "domain": "mail.example.com", "from_address": "news@mail.example.com",
          "app_events_queue": True}


@pytest.fixture(scope="module")
def with_queue(tmp_path_factory):
    return _synthesize(parse_config(CONFIG, "app-events-queue"), tmp_path_factory.mktemp("cdk.out.app-events"),
                       context={"aws:cdk:bundling-stacks": []})  # cdk-nag still checks it at synth


def test_off_by_default(synth):
    assert synth.stack.app_events.queue is None
    assert Outputs.APP_EVENTS_QUEUE_URL not in synth.template["Outputs"]
    assert not [name for name in synth.template["Outputs"] if name.startswith("AppEvents")]


def test_the_queue_is_named_after_the_stack_encrypted_and_has_a_dlq(with_queue):
    queue = with_queue.resource(with_queue.stack.app_events.queue)["Properties"]
    dlq_id = with_queue.logical_id(with_queue.stack.app_events.dead_letters)
    dlq = with_queue.template["Resources"][dlq_id]["Properties"]
    assert queue["QueueName"] == "postline-events-app-events" and dlq["QueueName"] == "postline-events-app-events-dlq"
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
                                      "maxReceiveCount": MAX_RECEIVE_COUNT}


def test_a_rule_on_the_bus_sends_every_postline_event_to_it_and_failures_to_the_dlq(with_queue):
    bus = with_queue.logical_id(with_queue.stack.app_events.bus)
    queue = with_queue.logical_id(with_queue.stack.app_events.queue)
    dlq = with_queue.logical_id(with_queue.stack.app_events.dead_letters)
    [rule] = [r["Properties"] for r in with_queue.resources("AWS::Events::Rule").values()
              if r["Properties"].get("EventBusName") == {"Ref": bus}]
    assert rule["EventPattern"] == {"source": ["postline"]}
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq, "Arn"]}}


def test_only_the_rule_may_send_to_it_and_only_over_tls(with_queue):
    queue = with_queue.logical_id(with_queue.stack.app_events.queue)
    statements = [s for p in with_queue.resources("AWS::SQS::QueuePolicy").values()
                  if {"Ref": queue} in p["Properties"]["Queues"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    allowed = [s for s in statements if s["Effect"] == "Allow"]
    [allow] = allowed
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert "sqs:SendMessage" in allow["Action"] and not [a for a in allow["Action"] if "Receive" in a or "Delete" in a]
    assert "aws:SourceArn" in allow["Condition"]["ArnEquals"]
    assert any(s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements)


def test_the_reader_policy_reads_and_deletes_on_that_queue_only(with_queue):
    policy = with_queue.resource(with_queue.stack.app_events.reader_policy)["Properties"]["PolicyDocument"]
    [statement] = policy["Statement"]
    queue = with_queue.logical_id(with_queue.stack.app_events.queue)
    assert statement["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert sorted(statement["Action"]) == ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                           "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
    outputs = with_queue.template["Outputs"]
    assert outputs[Outputs.APP_EVENTS_QUEUE_URL]["Value"] == {"Ref": queue}
    assert outputs[Outputs.APP_EVENTS_QUEUE_URL]["Export"]["Name"] == "postline-events-AppEventsQueueUrl"
    assert {Outputs.APP_EVENTS_DLQ_URL, Outputs.APP_EVENTS_READER_POLICY} <= set(outputs)
    assert QUEUE_OUTPUT == Outputs.APP_EVENTS_QUEUE_URL  # the output `postline events` reads


def test_its_dlq_alarms_to_the_alarm_topic_as_every_other_dlq_does(with_queue):
    dlq = with_queue.logical_id(with_queue.stack.app_events.dead_letters)
    topic = {"Ref": with_queue.logical_id(with_queue.stack.monitoring.topic)}
    [alarm] = [a["Properties"] for a in with_queue.resources("AWS::CloudWatch::Alarm").values()
               if a["Properties"].get("Dimensions") == [{"Name": "QueueName",
                                                         "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]]
    assert (alarm["MetricName"], alarm["Statistic"], alarm["Threshold"]) == (
        "ApproximateNumberOfMessagesVisible", "Maximum", 1)
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["AlarmActions"] == [topic]
    assert alarm["AlarmDescription"].startswith("app-events: ")


def test_without_the_queue_there_is_no_app_events_alarm(synth):
    assert not [a for a in synth.resources("AWS::CloudWatch::Alarm").values()
                if a["Properties"]["AlarmDescription"].startswith("app-events")]


def test_the_config_key_must_be_a_boolean():
    with pytest.raises(ValueError, match="app_events_queue"):
        parse_config({**CONFIG, "app_events_queue": "yes"}, "bad")
