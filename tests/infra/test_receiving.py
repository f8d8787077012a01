"""Unsubscribe by email in the stack: SES's receipt rule for the unsubscribe subdomain, the bucket SES may write to
(and nobody else but postline), the topic, the queue with its DLQ, the function with its own least-privilege role,
the MX record or its output, and the regions where SES can receive."""
from __future__ import annotations

import json

import pytest
from aws_cdk import App, Environment, Stack

from stacks.config import ConfigError, parse_config
from stacks.receiving import check_region

from .conftest import ROOT, VARIANT_CONFIG, _synthesize

DOMAIN = "unsubscribe.mail.example.com"


def _one(synth, kind: str) -> dict:
    [resource] = synth.resources(kind).values()
    return resource["Properties"]


def _ref_of(synth, kind: str, prefix: str) -> str:
    return next(k for k in synth.resources(kind) if k.startswith(prefix))


def test_a_receipt_rule_for_the_subdomain_stores_in_s3_and_notifies_the_topic(synth):
    rule = _one(synth, "AWS::SES::ReceiptRule")
    assert rule["RuleSetName"] == "postline-unsubscribe-mail"
    assert rule["Rule"]["Recipients"] == [DOMAIN]
    assert rule["Rule"]["ScanEnabled"] is True  # SES's spam and virus verdicts, which the function honours
    assert rule["Rule"]["Actions"] == [{"S3Action": {
        "BucketName": {"Ref": _ref_of(synth, "AWS::S3::Bucket", "UnsubscribeMailBucket")},
        "ObjectKeyPrefix": "incoming/",
        "TopicArn": {"Ref": _ref_of(synth, "AWS::SNS::Topic", "UnsubscribeMailTopic")}}}]
    assert _one(synth, "AWS::SES::ReceiptRuleSet") == {"RuleSetName": "postline-unsubscribe-mail"}


def _activator(synth) -> tuple[str, dict]:
    return next((k, f) for k, f in synth.resources("AWS::Lambda::Function").items()
                if f["Properties"].get("Description", "").startswith("Deploy time: activates"))


def test_the_stack_activates_its_rule_set_through_a_function_that_checks_what_is_active(synth):
    [activation] = synth.resources("Custom::ReceiptRuleSetActivation").values()
    activator_id, activator = _activator(synth)
    assert activation["Properties"] == {"ServiceToken": {"Fn::GetAtt": [activator_id, "Arn"]},
                                        "RuleSetName": "postline-unsubscribe-mail", "ServiceTimeout": 300}
    # Activated once the rule set holds the rule; deactivated (when it is still the active one) before either goes.
    depends_on = activation["DependsOn"]
    assert _ref_of(synth, "AWS::SES::ReceiptRuleSet", "UnsubscribeMailRuleSet") in depends_on
    assert _ref_of(synth, "AWS::SES::ReceiptRule", "UnsubscribeMailRule") in depends_on
    assert activator["Properties"]["Handler"] == "app.handler"
    assert activator["Properties"]["Timeout"] == 30
    assert "Layers" not in activator["Properties"]  # the runtime's boto3 is all it uses
    asset = synth.outdir / f"asset.{activator['Properties']['Code']['S3Key'].removesuffix('.zip')}"
    assert [p.name for p in asset.iterdir()] == ["app.py"]
    assert (asset / "app.py").read_text() == (ROOT / "infra" / "receipt_rule_set" / "app.py").read_text()
    # CDK's generic SDK-call resource no longer touches the rule set (it would take over whatever is active).
    assert not [r for r in synth.resources("Custom::AWS").values() if "ReceiptRuleSet" in json.dumps(r)]


def test_the_activator_may_only_read_and_set_the_active_rule_set(synth):
    _, activator = _activator(synth)
    role = activator["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [s for p in synth.resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    by_actions = {json.dumps(s["Action"]): s["Resource"] for s in statements}
    assert set(by_actions) == {json.dumps(["logs:CreateLogStream", "logs:PutLogEvents"]),
                               json.dumps(["ses:DescribeActiveReceiptRuleSet", "ses:SetActiveReceiptRuleSet"])}
    log_group = _ref_of(synth, "AWS::Logs::LogGroup", "UnsubscribeMailActivatorLogs")
    assert by_actions[json.dumps(["logs:CreateLogStream", "logs:PutLogEvents"])] == {
        "Fn::GetAtt": [log_group, "Arn"]}
    assert synth.resources("AWS::IAM::Role")[role]["Properties"].get("ManagedPolicyArns") is None
    # '*' only for the two SES actions that allow nothing narrower, acknowledged for cdk-nag on this role alone (the
    # synth fails on any finding left unacknowledged).
    assert by_actions[json.dumps(["ses:DescribeActiveReceiptRuleSet", "ses:SetActiveReceiptRuleSet"])] == "*"


def test_only_ses_of_this_account_for_this_rule_may_write_the_bucket(synth):
    bucket = synth.resources("AWS::S3::Bucket")[_ref_of(synth, "AWS::S3::Bucket", "UnsubscribeMailBucket")]
    properties = bucket["Properties"]
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    assert properties["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 30
    assert properties["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    policy = next(p for k, p in synth.resources("AWS::S3::BucketPolicy").items() if k.startswith("UnsubscribeMail"))
    [ses_statement] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                       if s.get("Principal") == {"Service": "ses.amazonaws.com"}]
    assert ses_statement["Action"] == "s3:PutObject"
    assert json.dumps(ses_statement["Resource"]).endswith('/incoming/*"]]}')
    condition = ses_statement["Condition"]["StringEquals"]
    assert condition["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "receipt-rule-set/postline-unsubscribe-mail:receipt-rule/postline-unsubscribe-mail" in json.dumps(
        condition["aws:SourceArn"])


def test_the_topic_is_encrypted_and_delivers_to_the_queue_with_a_dlq(synth):
    topic = synth.resources("AWS::SNS::Topic")[_ref_of(synth, "AWS::SNS::Topic", "UnsubscribeMailTopic")]
    assert "KmsMasterKeyId" in topic["Properties"]
    policy = next(p for k, p in synth.resources("AWS::SNS::TopicPolicy").items() if k.startswith("UnsubscribeMail"))
    [ses_statement] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                       if s.get("Principal") == {"Service": "ses.amazonaws.com"}]
    assert ses_statement["Action"] == "sns:Publish"
    assert set(ses_statement["Condition"]["StringEquals"]) == {"aws:SourceAccount", "aws:SourceArn"}
    queue = _ref_of(synth, "AWS::SQS::Queue", "UnsubscribeMailQueue")
    dlq = _ref_of(synth, "AWS::SQS::Queue", "UnsubscribeMailDlq")
    synth.assertions.has_resource_properties("AWS::SNS::Subscription", {
        "Protocol": "sqs", "Endpoint": {"Fn::GetAtt": [queue, "Arn"]},
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}}})
    properties = synth.resources("AWS::SQS::Queue")[queue]["Properties"]
    assert properties["QueueName"] == "postline-unsubscribe-mail"
    assert properties["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    synth.assertions.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "EventSourceArn": {"Fn::GetAtt": [queue, "Arn"]}, "BatchSize": 10,
        "FunctionResponseTypes": ["ReportBatchItemFailures"], "ScalingConfig": {"MaximumConcurrency": 2}})


def test_the_function_knows_its_topic_and_no_other_function_is_given_it(synth):
    """So it can refuse an SNS message from any other topic (postline.inbound_mail)."""
    variable = "POSTLINE_UNSUBSCRIBE_MAIL_TOPIC_ARN"
    given = {name: function["Properties"]["Environment"]["Variables"].get(variable)
             for name, function in synth.postline_functions().items()}
    topic = {"Ref": _ref_of(synth, "AWS::SNS::Topic", "UnsubscribeMailTopic")}
    assert [value for value in given.values() if value is not None] == [topic]
    unsubscribe_mail = synth.resource(synth.stack.functions.functions["unsubscribe_mail"])
    assert unsubscribe_mail["Properties"]["Environment"]["Variables"][variable] == topic


def test_the_mx_record_is_an_output_without_a_hosted_zone(synth):
    output = synth.template["Outputs"]["DnsUnsubscribeMxRecord"]["Value"]
    assert output == {"Fn::Join": ["", [f"{DOMAIN} MX 10 inbound-smtp.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}


def test_the_mx_record_is_created_in_the_hosted_zone(variant):
    variant.assertions.has_resource_properties("AWS::Route53::RecordSet", {
        "Name": "unsubscribe.mail.example.org.", "Type": "MX", "HostedZoneId": "Z0123456789ABCDEFGHIJ",
        "ResourceRecords": [{"Fn::Join": ["", ["10 inbound-smtp.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}]})
    assert "DnsUnsubscribeMxRecord" not in variant.template["Outputs"]


def test_the_mailto_address_the_emails_carry_is_the_one_ses_receives(synth):
    render = next(f for f in synth.postline_functions().values()
                  if f["Properties"]["Description"].startswith("Validates, renders"))
    mailto = render["Properties"]["Environment"]["Variables"]["POSTLINE_UNSUBSCRIBE_MAILTO"]
    assert mailto == f"unsubscribe@{DOMAIN}"
    assert synth.template["Outputs"]["UnsubscribeMailAddress"]["Value"] == mailto


def test_the_function_may_do_what_it_does_and_no_more(synth):
    statements = synth.policy_statements("unsubscribe_mail")
    actions = sorted(a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
    assert actions == sorted([
        "logs:CreateLogStream", "logs:PutLogEvents",  # its own log group
        "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",  # its queue, through the event source
        "s3:GetObject", "s3:PutObject",  # incoming/* read, kept/* written
        "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret",  # the signing keys
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:PutItem",
        "dynamodb:UpdateItem", "events:PutEvents",
        "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",  # the DLQ, for an unreadable notification
    ])
    by_action = {}
    for statement in statements:
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            by_action.setdefault(action, []).append(json.dumps(statement["Resource"]))
    assert by_action["s3:GetObject"][0].endswith('/incoming/*"]]}')
    assert by_action["s3:PutObject"][0].endswith('/kept/*"]]}')
    assert "UnsubscribeMailDlq" in by_action["sqs:SendMessage"][0]
    assert all("*" != resource.strip('"') for resources in by_action.values() for resource in resources)


def test_no_region_without_ses_receiving_synthesizes(monkeypatch):
    app = App()
    with pytest.raises(ConfigError, match="SES cannot receive email in ap-south-1, so unsubscribe by email cannot work "
                                          "there .* or set receive_unsubscribe_mail to false"):
        check_region(Stack(app, "Mumbai", env=Environment(region="ap-south-1")))
    monkeypatch.setenv("CDK_DEFAULT_REGION", "sa-east-1")  # an environment-agnostic stack: where the CLI deploys
    with pytest.raises(ConfigError, match="SES cannot receive email in sa-east-1"):
        check_region(Stack(app, "Agnostic"))
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    check_region(Stack(app, "Ireland"))


def test_a_deploy_to_a_region_without_receiving_is_refused_before_anything_is_created(synth):
    rule = next(r for k, r in synth.template["Rules"].items() if k.startswith("UnsubscribeMailReceivingRegion"))
    assertion = rule["Assertions"][0]
    assert assertion["Assert"]["Fn::Contains"][1] == {"Ref": "AWS::Region"}
    assert "eu-west-1" in assertion["Assert"]["Fn::Contains"][0]
    assert assertion["AssertDescription"].startswith("SES cannot receive email in this region")


def test_an_existing_active_rule_set_gets_the_rule_and_nothing_is_activated(tmp_path):
    config = parse_config({**VARIANT_CONFIG, "stack_name": "postline-shared", "receipt_rule_set": "company-inbound"})
    shared = _synthesize(config, tmp_path, context={"aws:cdk:bundling-stacks": []})
    assert _one(shared, "AWS::SES::ReceiptRule")["RuleSetName"] == "company-inbound"
    assert not shared.resources("AWS::SES::ReceiptRuleSet")
    assert not shared.resources("Custom::ReceiptRuleSetActivation")
    assert not [f for f in shared.resources("AWS::Lambda::Function").values()
                if f["Properties"].get("Description", "").startswith("Deploy time: activates")]


def test_receiving_can_be_turned_off(tmp_path):
    config = parse_config({"domain": "mail.example.com", "from_address": "hi@mail.example.com",
                           "receive_unsubscribe_mail": False, "unsubscribe_mailto": "privacy@example.com"})
    off = _synthesize(config, tmp_path, context={"aws:cdk:bundling-stacks": []})
    assert not off.resources("AWS::SES::ReceiptRule")
    assert not [k for k in off.template["Rules"] if k.startswith("UnsubscribeMail")]
    assert "unsubscribe_mail" not in off.stack.functions.functions
    assert "DnsUnsubscribeMxRecord" not in off.template["Outputs"]


@pytest.mark.parametrize("mailto", ["unsubscribe@mail.example.com", "unsubscribe@bounce.mail.example.com",
                                    "unsubscribe@elsewhere.example.net"])
def test_a_mailto_postline_cannot_receive_for_is_refused(mailto):
    with pytest.raises(ConfigError, match="unsubscribe_mailto: postline receives the mail of .* must be on a "
                                          "subdomain of mail.example.com of its own"):
        parse_config({"domain": "mail.example.com", "from_address": "hi@mail.example.com",
                      "unsubscribe_mailto": mailto})


def test_the_unsubscribe_subdomain_is_configurable():
    config = parse_config({"domain": "mail.example.com", "from_address": "hi@mail.example.com",
                           "unsubscribe_subdomain": "optout"})
    assert config.unsubscribe_mailto == "unsubscribe@optout.mail.example.com"
