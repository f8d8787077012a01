"""Queues: every queue has a DLQ, SSE, TLS-only access, and a visibility timeout >= 6x its consumer's timeout."""
from __future__ import annotations

import pytest

from stacks.constants import MAX_RECEIVE_COUNT, SEND_EVENT_DELAY, SES_EVENTS, SES_SEND_EVENTS, STREAMS


@pytest.mark.parametrize("route, pipeline_queues", [("synth", 9), ("variant", 10)])
def test_every_queue_has_its_own_dlq(request, route, pipeline_queues):
    synth = request.getfixturevalue(route)
    queues = synth.resources("AWS::SQS::Queue")
    with_redrive = {k: v for k, v in queues.items() if "RedrivePolicy" in v["Properties"]}
    # 3 inbound, 3 send, the SES events (and, on the EventBridge route, the held-back Send events), the campaigns'
    # control queue, the unsubscribe mail's, their DLQs, and the schedules' DLQ
    assert len(queues) == 2 * pipeline_queues + 1 and len(with_redrive) == pipeline_queues
    dlqs = [v["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] for v in with_redrive.values()]
    assert len(set(dlqs)) == pipeline_queues
    assert set(dlqs) | set(with_redrive) | {synth.logical_id(synth.stack.scheduling.dead_letters)} == set(queues)
    for queue in with_redrive.values():
        assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVE_COUNT


def test_queues_are_encrypted_and_tls_only(synth):
    queues = synth.resources("AWS::SQS::Queue")
    assert all(q["Properties"].get("SqsManagedSseEnabled") is True for q in queues.values())
    guarded = set()
    for policy in synth.resources("AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                    "Bool": {"aws:SecureTransport": "false"}}:
                guarded |= {ref["Ref"] for ref in policy["Properties"]["Queues"]}
    assert guarded == set(queues)


def test_visibility_timeout_is_six_times_the_consumer_timeout(synth):
    resources = synth.template["Resources"]
    mappings = synth.resources("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 9  # the SNS route: no held-back Send events' queue; the unsubscribe mail's
    for mapping in mappings.values():
        queue = resources[mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]
        function = resources[mapping["Properties"]["FunctionName"]["Ref"]]
        assert queue["Properties"]["VisibilityTimeout"] >= 6 * function["Properties"]["Timeout"]


def test_only_send_events_are_held_back_and_for_as_long_as_the_send_stage_is_told(synth, variant):
    send_function = synth.resource(synth.stack.functions.functions["send"])
    assert send_function["Properties"]["Environment"]["Variables"]["POSTLINE_SEND_EVENT_DELAY_SECONDS"] == "0"
    synth = variant  # the EventBridge route publishes Send events, and holds them back
    resources = synth.template["Resources"]
    delays = {name: resources[synth.logical_id(queue)]["Properties"].get("DelaySeconds")
              for name, queue, _ in synth.stack.queues.all_with_dlq}
    assert delays.pop(SES_SEND_EVENTS) == SEND_EVENT_DELAY.to_seconds() == 60
    assert set(delays.values()) == {None}  # nothing else waits
    send_function = resources[synth.logical_id(synth.stack.functions.functions["send"])]
    assert send_function["Properties"]["Environment"]["Variables"]["POSTLINE_SEND_EVENT_DELAY_SECONDS"] == "60"
    consumers = {m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: m["Properties"]["FunctionName"]["Ref"]
                 for m in synth.resources("AWS::Lambda::EventSourceMapping").values()}
    ses_events = synth.logical_id(synth.stack.functions.functions["ses_events"])
    assert consumers[synth.logical_id(synth.stack.queues.ses_send_events)] == ses_events
    assert consumers[synth.logical_id(synth.stack.queues.ses_events)] == ses_events


@pytest.mark.parametrize("rule_name, queue_name, detail_type", [
    ("events_rule", SES_EVENTS, [{"anything-but": ["Email Sent"]}]),  # every type but Send, whatever SES adds
    ("send_events_rule", SES_SEND_EVENTS, ["Email Sent"]),
])
def test_ses_events_reach_their_queue_from_the_default_bus_only_for_postline_configuration_sets(
        variant, rule_name, queue_name, detail_type):
    synth = variant  # the EventBridge route
    ses, queues = synth.stack.ses, synth.stack.queues
    queue = {SES_EVENTS: queues.ses_events, SES_SEND_EVENTS: queues.ses_send_events}[queue_name]
    dlq = queues.dead_letter_queues[queue_name]
    rule_construct = getattr(ses, rule_name)
    rule = synth.resource(rule_construct)["Properties"]
    assert "EventBusName" not in rule  # the default bus, the only one SES publishes to
    assert rule["EventPattern"]["source"] == ["aws.ses"]
    assert rule["EventPattern"]["detail-type"] == detail_type
    assert rule["EventPattern"]["detail"]["mail"]["tags"]["ses:configuration-set"] == [
        {"Ref": synth.logical_id(ses.configuration_sets[s])} for s in STREAMS]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [synth.logical_id(queue), "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [synth.logical_id(dlq), "Arn"]}
    assert "InputTransformer" not in target and "Input" not in target  # the whole event, as ses_events parses it
    # EventBridge may send to the queue and its DLQ, and only on behalf of this rule.
    allowed = {}
    for policy in synth.resources("AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Principal") == {"Service": "events.amazonaws.com"}:
                for queue_ref in policy["Properties"]["Queues"]:
                    allowed.setdefault(queue_ref["Ref"], []).append(statement)
    rule_arn = {"Fn::GetAtt": [synth.logical_id(rule_construct), "Arn"]}
    for logical_id in (synth.logical_id(queue), synth.logical_id(dlq)):
        (statement,) = allowed.pop(logical_id)
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "sqs:SendMessage" in actions and not any("Delete" in a or "Receive" in a for a in actions)
        assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == rule_arn
    # The other rule's queue and DLQ are all EventBridge may send to besides.
    assert len(allowed) == 2
    unsubscribe_mail = {"Ref": synth.logical_id(synth.stack.receiving.topic)}
    assert all(s["Properties"]["Protocol"] == "email"  # the alarm topic's: no topic for SES's events in between
               for s in synth.resources("AWS::SNS::Subscription").values()
               if s["Properties"]["TopicArn"] != unsubscribe_mail)


def test_producer_policy_sends_to_inbound_queues_and_reads_a_templates_stream_only(synth):
    queues = synth.stack.queues
    policy = synth.resource(queues.producer_policy)["Properties"]["PolicyDocument"]["Statement"]
    assert policy == [{
        "Action": ["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"], "Effect": "Allow",
        "Resource": [{"Fn::GetAtt": [synth.logical_id(queues.inbound[s]), "Arn"]} for s in STREAMS],
    }, {  # the client's templates_table= (postline.client)
        "Action": "dynamodb:GetItem", "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [synth.logical_id(synth.stack.tables.templates), "Arn"]},
    }]
