"""Outputs with stable keys and exports, the signing key ring, the scheduler role, and the claim-check bucket."""
from __future__ import annotations

import base64
import re

from postline.tokens import KeyRing
from stacks.constants import STREAMS, TABLES, Outputs


def test_stable_outputs_and_exports(synth):
    outputs = synth.template["Outputs"]
    keys = [Outputs.inbound_queue_url(s) for s in STREAMS] + [Outputs.send_queue_url(s) for s in STREAMS]
    keys += [Outputs.inbound_dlq_url(s) for s in STREAMS] + [Outputs.configuration_set(s) for s in STREAMS]
    keys += [Outputs.table(name) for name in TABLES]
    keys += [Outputs.API_URL, Outputs.TRACKING_BASE_URL, Outputs.SES_EVENTS_TOPIC_ARN, Outputs.SES_EVENTS_QUEUE_URL,
             Outputs.EVENT_BUS_NAME, Outputs.EVENT_BUS_ARN,
             Outputs.CLAIM_CHECK_BUCKET, Outputs.SIGNING_KEYS_SECRET, Outputs.PRODUCER_POLICY,
             Outputs.SCHEDULER_ROLE, Outputs.SCHEDULE_GROUP, Outputs.ALARM_TOPIC, Outputs.DASHBOARD,
             Outputs.CAMPAIGN_QUEUE_URL, Outputs.CAMPAIGN_DLQ_URL, Outputs.SCHEDULE_DLQ_ARN, Outputs.SCHEDULE_DLQ_URL]
    for key in keys:
        assert outputs[key]["Export"] == {"Name": f"postline-{key}"}, key
    critical = synth.stack.queues.inbound["critical"]
    assert outputs["InboundQueueUrlCritical"]["Value"] == {"Ref": synth.logical_id(critical)}
    assert outputs["TableMessages"]["Value"] == {"Ref": synth.logical_id(synth.stack.tables.messages)}
    assert outputs["TableStats"]["Value"] == {"Ref": synth.logical_id(synth.stack.tables.stats)}
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": synth.logical_id(synth.stack.monitoring.topic)}


def test_signing_key_ring_has_the_shape_the_library_reads(synth):
    keys = synth.stack.signing_keys
    initial = synth.resource(keys.node.find_child("InitialKey"))["Properties"]
    assert initial["GenerateSecretString"] == {
        "ExcludePunctuation": True, "GenerateStringKey": "k1", "IncludeSpace": False, "PasswordLength": 64,
        "SecretStringTemplate": "{}"}
    erasure = synth.resource(keys.node.find_child("ErasureKey"))["Properties"]
    assert erasure["GenerateSecretString"]["GenerateStringKey"] == "erasure_key"
    # What CloudFormation will store once it resolves the two dynamic references: the library reads it.
    generated = {synth.logical_id(keys.node.find_child("InitialKey")): "A" * 64,
                 synth.logical_id(keys.node.find_child("ErasureKey")): "B" * 64}
    parts = synth.resource(keys.secret)["Properties"]["SecretString"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else f"<{part['Ref']}>" for part in parts)
    for logical_id, value in generated.items():
        text = re.sub(r"\{\{resolve:secretsmanager:<" + logical_id + r">:SecretString:[a-z_0-9]+::\}\}", value, text)
    ring = KeyRing.from_secret(text)
    assert ring.active_key_id == "k1" and ring.erasure_key == base64.b64decode("B" * 64)


def test_scheduler_role_may_only_put_messages_on_the_inbound_queues_the_control_queue_and_the_schedules_dlq(synth):
    scheduling = synth.stack.scheduling
    role = synth.resource(scheduling.role)["Properties"]
    statement = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]
    synth.assertions.has_resource_properties("AWS::Scheduler::ScheduleGroup", {"Name": "postline-postline"})
    policies = [p["Properties"]["PolicyDocument"]["Statement"] for p in synth.resources("AWS::IAM::Policy").values()
                if {"Ref": synth.logical_id(scheduling.role)} in p["Properties"]["Roles"]]
    # Soft-bounce retries go back through the inbound queues; a campaign starts (and resumes in its next window)
    # through a control message; what Scheduler cannot deliver goes, as this role, to the schedules' DLQ.
    queues = [*(synth.stack.queues.inbound[stream] for stream in STREAMS), synth.stack.queues.campaigns,
              scheduling.dead_letters]
    assert policies == [[{
        "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"], "Effect": "Allow",
        "Resource": {"Fn::GetAtt": [synth.logical_id(queue), "Arn"]}} for queue in queues]]


def test_schedules_dead_letter_to_their_own_queue_which_the_schedule_makers_name(synth, largest):
    dlq = synth.stack.scheduling.dead_letters
    properties = synth.resource(dlq)["Properties"]
    assert properties["QueueName"] == "postline-schedules-dlq"
    assert properties["MessageRetentionPeriod"] == 14 * 86400  # the most SQS keeps: time to send them by hand
    assert len(largest.resource(largest.stack.scheduling.dead_letters)["Properties"]["QueueName"]) <= 80
    # The functions that create schedules give each one this queue (postline.retries.schedule_target).
    for name, function in synth.stack.functions.functions.items():
        variables = synth.resource(function)["Properties"]["Environment"]["Variables"]
        expected = {"Fn::GetAtt": [synth.logical_id(dlq), "Arn"]} if name in ("ses_events", "campaign") else None
        assert variables.get("POSTLINE_SCHEDULE_DLQ_ARN") == expected, name


def test_claim_check_bucket(synth):
    bucket = synth.resource(synth.stack.storage.bucket)["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    rule = bucket["LifecycleConfiguration"]["Rules"][0]
    assert rule["ExpirationInDays"] == 14 and rule["Status"] == "Enabled"
    policy = next(iter(synth.resources("AWS::S3::BucketPolicy").values()))["Properties"]["PolicyDocument"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in policy["Statement"])


def test_the_cli_finds_every_output_it_reads(synth):
    """`postline` against AWS reads the stack's outputs; each one it needs is there."""
    from postline_cli.target import STACK_OUTPUTS

    assert set(STACK_OUTPUTS) <= set(synth.template["Outputs"])


def test_the_application_event_bus_and_who_may_publish_on_it(synth):
    buses = synth.resources("AWS::Events::EventBus")
    assert len(buses) == 1
    (bus_id,) = buses
    publishers = set()
    for function in synth.stack.functions.functions:
        for statement in synth.policy_statements(function):
            if "events:PutEvents" in str(statement["Action"]):
                assert bus_id in str(statement["Resource"])
                publishers.add(function)
    assert publishers == {"send", "ses_events", "track_open", "track_click", "unsubscribe", "campaign",
                          "unsubscribe_mail"}
    for name, function in synth.stack.functions.functions.items():  # the bus's name goes where it is published on
        variables = synth.resource(function)["Properties"]["Environment"]["Variables"]
        assert variables.get("POSTLINE_EVENT_BUS") == ({"Ref": bus_id} if name in publishers else None), name
