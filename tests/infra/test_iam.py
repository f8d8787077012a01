"""Least privilege: named actions on named resources; '*' only where AWS offers nothing narrower (X-Ray, and
SES's GetAccount for the sending rate: the send function's limiter, the campaign function's backlog bound)."""
from __future__ import annotations

import json

import pytest

from stacks.constants import CAMPAIGN_QUEUE, FUNCTIONS, SEND_QUEUES, STREAMS

XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
RATE_READERS = ("send", "campaign")  # they read the account's sending rate from SES


def _actions(statement):
    actions = statement["Action"]
    return {actions} if isinstance(actions, str) else set(actions)


def _resources(statement):
    resources = statement["Resource"]
    return resources if isinstance(resources, list) else [resources]


def _granted(synth, function, logical_id):
    """Actions the function may take on a resource (given by logical id, matched by Ref or GetAtt)."""
    actions = set()
    for statement in synth.policy_statements(function):
        for resource in _resources(statement):
            if logical_id in str(resource):
                actions |= _actions(statement)
    return actions


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_wildcards_but_xray(synth, function):
    statements = synth.policy_statements(function)
    assert statements
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert not any("*" in action for action in _actions(statement)), statement
        if "*" in _resources(statement):
            # ses:GetAccount: the account's rate and quota; it has no resource-level permissions.
            assert _actions(statement) == XRAY or (function in RATE_READERS
                                                   and _actions(statement) == {"ses:GetAccount"})
        forbidden = {"Scan", "DeleteItem", "DeleteTable"}
        if function == "unsubscribe" and "TablesEmailSuppressions" in str(_resources(statement)):
            forbidden.discard("DeleteItem")  # the resubscribe button removes the unsubscribe it made
        if function == "send" and "TablesEmailEvents" in str(_resources(statement)):
            forbidden.discard("DeleteItem")  # the retry request kept for an erased recipient
        assert not any(a.startswith("dynamodb:") and a.split(":")[1] in forbidden
                       for a in _actions(statement)), statement


def test_only_unsubscribe_deletes_suppressions_and_only_send_deletes_events(synth):
    deleters = {}
    for function in FUNCTIONS:
        for statement in synth.policy_statements(function):
            if "dynamodb:DeleteItem" in _actions(statement):
                deleters[function] = _resources(statement)
    assert sorted(deleters) == ["send", "unsubscribe"]
    assert all("TablesEmailSuppressions" in str(r) for r in deleters["unsubscribe"])
    assert all("TablesEmailEvents" in str(r) for r in deleters["send"])  # an erased recipient's kept request


def test_send_policy(synth):
    stack = synth.stack
    statements = synth.policy_statements("send")
    ses_statements = [s for s in statements if any(a.startswith("ses:") for a in _actions(s))
                      and _actions(s) != {"ses:GetAccount"}]
    assert len(ses_statements) == 1
    assert _actions(ses_statements[0]) == {"ses:SendEmail", "ses:SendRawEmail"}
    resources = str(_resources(ses_statements[0]))
    assert ":identity/mail.example.com" in resources
    for stream in STREAMS:
        assert synth.logical_id(stack.ses.configuration_sets[stream]) in resources
    assert len(_resources(ses_statements[0])) == 1 + len(STREAMS)

    tables = stack.tables
    # PartiQLInsert: marketing's first claims (a BatchExecuteStatement of INSERTs); no other PartiQL verb.
    assert _granted(synth, "send", synth.logical_id(tables.messages)) == {
        "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem", "dynamodb:PartiQLInsert"}
    # The check before the claim: a batched read, or ConditionChecks in the claim's transaction (critical mail).
    assert _granted(synth, "send", synth.logical_id(tables.suppressions)) == {
        "dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem"}
    assert _granted(synth, "send", synth.logical_id(tables.events)) == {
        "dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:DeleteItem"}
    assert not _granted(synth, "send", synth.logical_id(tables.templates))
    # A campaign's state before its emails are claimed; the jobs a cancel drops counted in it. No other write.
    assert _granted(synth, "send", synth.logical_id(tables.campaigns)) == {
        "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"}
    # The shared rate limiter: tokens by conditional update, its state read and written; no batch, no delete.
    assert _granted(synth, "send", synth.logical_id(tables.rate_limits)) == {
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    for stream in STREAMS:
        # Its own queue: a job waits out SES's refusal there; what it gives up on goes to the DLQ with why.
        assert {"sqs:ChangeMessageVisibility", "sqs:SendMessage"} <= _granted(
            synth, "send", synth.logical_id(stack.queues.send[stream]))
        assert "sqs:SendMessage" in _granted(
            synth, "send", synth.logical_id(stack.queues.dead_letter_queues[SEND_QUEUES[stream]]))
        assert not _granted(synth, "send", synth.logical_id(stack.queues.inbound[stream]))
    assert _granted(synth, "send", synth.logical_id(stack.storage.bucket)) == {"s3:GetObject"}
    assert not _granted(synth, "send", synth.logical_id(stack.signing_keys.secret))


@pytest.mark.parametrize("which", ["synth", "variant"])
def test_only_send_and_campaign_read_the_ses_account_and_only_send_uses_the_rate_limits_table(which, request):
    result = request.getfixturevalue(which)
    rate_limits = result.logical_id(result.stack.tables.rate_limits)
    for function in FUNCTIONS:
        statements = result.policy_statements(function)
        get_account = [s for s in statements if "ses:GetAccount" in _actions(s)]
        if function in RATE_READERS:
            # Alone in its statement, on '*' (SES offers nothing narrower), even when X-Ray also needs '*'.
            assert [(_actions(s), s["Resource"]) for s in get_account] == [({"ses:GetAccount"}, "*")]
        else:
            assert not get_account
        if function == "send":
            assert all(rate_limits in str(s["Resource"]) and "/index/" not in str(s["Resource"])
                       for s in statements if "dynamodb:PutItem" in _actions(s) and rate_limits in str(s["Resource"]))
        else:
            assert not _granted(result, function, rate_limits)


def test_send_policy_adds_sandbox_recipients_when_configured(variant):
    ses_statement = next(s for s in variant.policy_statements("send") if "ses:SendEmail" in _actions(s))
    resources = str(_resources(ses_statement))
    assert ":identity/mail.example.org" in resources and ":identity/tester@example.net" in resources


def test_ses_events_policy(synth):
    stack = synth.stack
    statements = synth.policy_statements("ses_events")
    assert not any(a.startswith(("ses:", "s3:")) for s in statements for a in _actions(s))
    # The signing secret, read only: its erasure key tells whether a bounced address was erased.
    assert {a for s in statements for a in _actions(s) if a.startswith("secretsmanager:")} <= {
        "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    messages = synth.logical_id(stack.tables.messages)
    assert not any("/index/" in str(s["Resource"]) for s in statements)
    table_only = [s for s in statements if s["Resource"] == {"Fn::GetAtt": [messages, "Arn"]}]
    # BatchGetItem: a held-back Send event reads whether its email's Delivery has settled the claim already.
    assert {a for s in table_only for a in _actions(s)} == {
        "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"}
    assert "dynamodb:PutItem" in _granted(synth, "ses_events", synth.logical_id(stack.tables.suppressions))
    # GetItem: the send message kept for soft-bounce retries.
    assert _granted(synth, "ses_events", synth.logical_id(stack.tables.events)) == {
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem"}
    assert _granted(synth, "ses_events", synth.logical_id(stack.queues.ses_events)) >= {
        "sqs:ReceiveMessage", "sqs:DeleteMessage"}
    for stream in STREAMS:
        # Soft-bounce retries go back through the inbound queue; nothing is put on the send queues directly.
        assert _granted(synth, "ses_events", synth.logical_id(stack.queues.inbound[stream])) == {
            "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
        assert not _granted(synth, "ses_events", synth.logical_id(stack.queues.send[stream]))
    scheduler = [s for s in statements if "scheduler:CreateSchedule" in _actions(s)]
    assert len(scheduler) == 1 and "schedule/postline-postline/*" in json.dumps(scheduler[0]["Resource"])
    pass_role = [s for s in statements if "iam:PassRole" in _actions(s)]
    assert len(pass_role) == 1 and synth.logical_id(stack.scheduling.role) in str(pass_role[0]["Resource"])


def test_render_policy(synth):
    stack = synth.stack
    assert _granted(synth, "render", synth.logical_id(stack.storage.bucket)) == {"s3:PutObject"}
    assert "secretsmanager:GetSecretValue" in _granted(synth, "render", synth.logical_id(stack.signing_keys.secret))
    assert _granted(synth, "render", synth.logical_id(stack.tables.templates)) == {
        "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}
    # No suppression reads: critical mail's checks ride in the record transaction, the rest are checked by send.
    assert _granted(synth, "render", synth.logical_id(stack.tables.suppressions)) == {"dynamodb:ConditionCheckItem"}
    for stream in STREAMS:
        dlq = stack.queues.dead_letter_queues[f"postline-{stream}"]
        assert "sqs:SendMessage" in _granted(synth, "render", synth.logical_id(dlq))
    assert not any(a.startswith("ses:") for s in synth.policy_statements("render") for a in _actions(s))


def test_campaign_policy(synth):
    stack = synth.stack
    tables, queues = stack.tables, stack.queues
    # Its campaign read, moved from state to state and checkpointed; never created (the CLI does), deleted, scanned.
    assert _granted(synth, "campaign", synth.logical_id(tables.campaigns)) == {
        "dynamodb:GetItem", "dynamodb:UpdateItem"}
    # Each page of recipients' suppressions in one read; nothing written there.
    assert _granted(synth, "campaign", synth.logical_id(tables.suppressions)) == {"dynamodb:BatchGetItem"}
    for table in ("messages", "email_events", "templates"):
        assert not _granted(synth, "campaign", synth.logical_id(tables.tables[table])), table
    # The audience, read from under campaigns/ only; the rendered bodies under mime/ are not its business.
    bucket = [s for s in synth.policy_statements("campaign") if synth.logical_id(stack.storage.bucket) in str(s)]
    assert [(_actions(s), json.dumps(s["Resource"])) for s in bucket] == [
        ({"s3:GetObject"}, json.dumps({"Fn::Join": ["", [
            {"Fn::GetAtt": [synth.logical_id(stack.storage.bucket), "Arn"]}, "/campaigns/*"]]}))]
    # Recipients go to the marketing inbound queue, as an application's newsletter would; both marketing queues'
    # depths bound the backlog; the control queue hands the run on.
    assert _granted(synth, "campaign", synth.logical_id(queues.inbound["marketing"])) == {
        "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}
    assert _granted(synth, "campaign", synth.logical_id(queues.send["marketing"])) == {"sqs:GetQueueAttributes"}
    assert {"sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"} <= _granted(
        synth, "campaign", synth.logical_id(queues.campaigns))
    for stream in ("critical", "transactional"):
        assert not _granted(synth, "campaign", synth.logical_id(queues.inbound[stream])), stream
        assert not _granted(synth, "campaign", synth.logical_id(queues.send[stream])), stream
    # An unreadable control message goes to the DLQ with its reason.
    assert "sqs:SendMessage" in _granted(synth, "campaign", synth.logical_id(queues.dead_letter_queues[CAMPAIGN_QUEUE]))
    # The next window's start: a schedule in postline's group, run by the scheduler role and no other.
    statements = synth.policy_statements("campaign")
    scheduler = [s for s in statements if "scheduler:CreateSchedule" in _actions(s)]
    assert len(scheduler) == 1 and "schedule/postline-postline/*" in json.dumps(scheduler[0]["Resource"])
    pass_role = [s for s in statements if "iam:PassRole" in _actions(s)]
    assert len(pass_role) == 1 and synth.logical_id(stack.scheduling.role) in str(pass_role[0]["Resource"])
    # The erasure key, to read the erased form of each address's suppressions.
    assert {a for s in statements for a in _actions(s) if a.startswith("secretsmanager:")} <= {
        "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    assert not any(a.startswith("ses:") and a != "ses:GetAccount" for s in statements for a in _actions(s))


def test_only_unsubscribe_may_suppress_among_the_endpoints(synth):
    suppressions = synth.logical_id(synth.stack.tables.suppressions)
    assert "dynamodb:PutItem" in _granted(synth, "unsubscribe", suppressions)
    assert not _granted(synth, "track_open", suppressions)
    assert not _granted(synth, "track_click", suppressions)


def test_mirroring_to_the_ses_suppression_list_is_granted_only_when_configured(synth, variant):
    def may_mirror(s):
        return any("ses:PutSuppressedDestination" in _actions(st) for st in s.policy_statements("ses_events"))

    assert may_mirror(variant) is variant.config.mirror_ses_suppressions
    assert may_mirror(synth) is synth.config.mirror_ses_suppressions
    assert variant.config.mirror_ses_suppressions != synth.config.mirror_ses_suppressions


def test_only_this_stacks_schedule_group_may_hand_its_schedules_the_scheduler_role(synth):
    # Scheduler gives the schedule group's ARN as aws:SourceArn: a condition on anything else (a schedule's ARN)
    # would refuse every schedule, and the retries and campaign starts would never run.
    (role,) = [r for r in synth.resources("AWS::IAM::Role").values()
               if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"].get("Service")
               == "scheduler.amazonaws.com"]
    (group,) = synth.resources("AWS::Scheduler::ScheduleGroup").values()
    condition = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    source = json.dumps(condition["StringEquals"]["aws:SourceArn"])
    assert f":schedule-group/{group['Properties']['Name']}\"" in source
    assert "aws:SourceAccount" in condition["StringEquals"]


def test_the_functions_that_see_an_emails_fate_count_it_and_only_ses_events_reads_the_counts(synth):
    # postline.analytics: a transaction of conditional marker Puts and counter Updates per batch; the alerts read.
    stats = synth.logical_id(synth.stack.tables.stats)
    # render: a message rejected for its recipient's domain (postline.domains) is counted where it is rejected
    writers = {"render", "send", "track_open", "track_click", "unsubscribe", "unsubscribe_mail"}
    for function in FUNCTIONS:
        granted = _granted(synth, function, stats)
        if function == "ses_events":
            assert granted == {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"}
        elif function in writers:
            assert granted == {"dynamodb:PutItem", "dynamodb:UpdateItem"}, function
        else:
            assert not granted, function


def test_only_ses_events_raises_alerts_on_the_alarm_topic_and_pauses_campaigns(synth):
    monitoring = synth.stack.monitoring
    topic, key = synth.logical_id(monitoring.topic), synth.logical_id(monitoring.topic.master_key)
    campaigns = synth.logical_id(synth.stack.tables.campaigns)
    for function in FUNCTIONS:
        published = _granted(synth, function, topic)
        if function == "ses_events":
            assert published == {"sns:Publish"}
            # The topic is encrypted with its own key: a publisher needs these two of it, and nothing else.
            assert _granted(synth, function, key) == {"kms:GenerateDataKey", "kms:Decrypt"}
            # A campaign past the thresholds is paused; one an application named without a record is created paused.
            assert _granted(synth, function, campaigns) == {"dynamodb:GetItem", "dynamodb:PutItem",
                                                            "dynamodb:UpdateItem"}
        else:
            assert not published and not _granted(synth, function, key), function
