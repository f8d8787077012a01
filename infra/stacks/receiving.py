"""Unsubscribe by email: SES receives the mail of the List-Unsubscribe mailto address on a subdomain of its own
(``unsubscribe.<domain>`` by default, so the company's own MX is never touched) and the ``unsubscribe_mail``
function applies it (postline.inbound_mail).

A receipt rule for that domain stores each message raw in an encrypted bucket (objects expire) and notifies an SNS
topic, which delivers to a queue with a DLQ, consumed in batches like every other queue. SES allows one active
receipt rule set per account and region: the stack creates its own and activates it when none is active (the deploy
fails rather than deactivate another), unless the config's ``receipt_rule_set`` names the one already active, which
gets postline's rule instead (docs/deploy.md).
"""

from __future__ import annotations

import os
from typing import cast

from aws_cdk import (
    Aws,
    CfnElement,
    CfnResource,
    CfnRule,
    CfnRuleAssertion,
    CustomResource,
    Duration,
    Fn,
    RemovalPolicy,
    Stack,
    Token,
)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from postline import queue_names

from .config import REPO_ROOT, Config, ConfigError, within
from .constants import (
    DLQ_RETENTION,
    FUNCTIONS,
    HANDLER,
    MAX_RECEIVE_COUNT,
    QUEUE_RETENTION,
    SES_RECEIVING_REGIONS,
    UNSUBSCRIBE_MAIL_CONCURRENCY,
    VISIBILITY_TIMEOUT_FACTOR,
    Outputs,
)
from .functions import ARCHITECTURE, RUNTIME
from .keys import topic_key
from .layer import EXCLUDE
from .nag import accept
from .outputs import stack_output

FUNCTION = "unsubscribe_mail"
QUEUE_SUFFIX = "unsubscribe-mail"  # postline.inbound_mail.QUEUE_SUFFIX
# The one topic whose messages the function reads (postline.settings: unsubscribe_mail_topic_arn).
TOPIC_VARIABLE = "POSTLINE_UNSUBSCRIBE_MAIL_TOPIC_ARN"
INCOMING_PREFIX = "incoming/"  # postline.inbound_mail: SES writes here, the function reads
KEPT_PREFIX = "kept/"  # postline.inbound_mail: the records of the emails kept for an operator
# A kept email waits this long for an operator (`postline suppressions inbox`); CAN-SPAM gives ten business days.
MAIL_EXPIRY = Duration.days(30)
MX_TTL = Duration.minutes(30)
# Where a deploy goes when the stack itself names no region: what the CDK CLI resolved, else the SDK's variables.
REGION_VARIABLES = ("CDK_DEFAULT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
ACTIVATOR_SOURCE = REPO_ROOT / "infra" / "receipt_rule_set"
ACTIVATOR_TIMEOUT = Duration.seconds(30)  # two SES calls
ACTIVATION_SERVICE_TIMEOUT = Duration.minutes(5)


def receiving_domain(config: Config) -> str:
    return config.unsubscribe_mailto.rpartition("@")[2].lower()


def check_region(stack: Stack) -> None:
    """A ConfigError at synth when the stack's region (or the one the deploy will use) has no SES receiving."""
    region = (
        stack.region
        if not Token.is_unresolved(stack.region)
        else next((os.environ[v] for v in REGION_VARIABLES if os.environ.get(v)), None)
    )
    if region is not None and region not in SES_RECEIVING_REGIONS:
        raise ConfigError(_region_message(region))


def _region_message(region: str) -> str:
    return (
        f"SES cannot receive email in {region}, so unsubscribe by email cannot work there (regions that can: "
        f"{', '.join(SES_RECEIVING_REGIONS)}). Deploy in one of them, or set receive_unsubscribe_mail to false "
        "in the config and handle the unsubscribe_mailto mailbox yourself (docs/deploy.md)."
    )


class UnsubscribeMailReceiving(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        check_region(stack)
        # The same check at deploy, for a synth that could not know the region: CloudFormation refuses the template
        # before it creates anything.
        CfnRule(
            self,
            "ReceivingRegion",
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_contains(list(SES_RECEIVING_REGIONS), Aws.REGION),
                    assert_description=_region_message("this region"),
                )
            ],
        )
        self.domain = receiving_domain(config)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=MAIL_EXPIRY, abort_incomplete_multipart_upload_after=Duration.days(1))
            ],
            removal_policy=RemovalPolicy.DESTROY,
        )
        accept(
            self.bucket,
            "AwsSolutions-S1",
            "Objects expire in 30 days and only SES, postline's function and the "
            "operator's CLI touch them; access logs would cost more than the data and add no audit value.",
        )
        self.dead_letters = sqs.Queue(
            self,
            "Dlq",
            queue_name=queue_names.name(stack.stack_name, queue_names.dead_letters(QUEUE_SUFFIX)),
            retention_period=DLQ_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=queue_names.name(stack.stack_name, QUEUE_SUFFIX),
            visibility_timeout=Duration.seconds(FUNCTIONS[FUNCTION].timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR),
            retention_period=QUEUE_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=MAX_RECEIVE_COUNT),
        )
        key = topic_key(
            self, "TopicKey", description="Encrypts the postline unsubscribe mail topic", service="ses.amazonaws.com"
        )
        self.topic = sns.Topic(
            self, "Topic", display_name="postline unsubscribe mail", master_key=key, enforce_ssl=True
        )
        self.topic.add_subscription(
            subscriptions.SqsSubscription(self.queue, raw_message_delivery=False, dead_letter_queue=self.dead_letters)
        )
        self.rule_set_name = config.receipt_rule_set or f"{stack.stack_name}-unsubscribe-mail"
        rule_name = f"{stack.stack_name}-unsubscribe-mail"
        rule_arn = stack.format_arn(
            service="ses", resource="receipt-rule-set", resource_name=f"{self.rule_set_name}:receipt-rule/{rule_name}"
        )
        grants = self._allow_ses(rule_arn)
        rule_set = None
        if config.receipt_rule_set is None:
            rule_set = ses.CfnReceiptRuleSet(self, "RuleSet", rule_set_name=self.rule_set_name)
        rule = ses.CfnReceiptRule(
            self,
            "Rule",
            rule_set_name=self.rule_set_name,
            rule=ses.CfnReceiptRule.RuleProperty(
                name=rule_name,
                enabled=True,
                recipients=[self.domain],
                scan_enabled=True,
                tls_policy="Optional",
                actions=[
                    ses.CfnReceiptRule.ActionProperty(
                        s3_action=ses.CfnReceiptRule.S3ActionProperty(
                            bucket_name=self.bucket.bucket_name,
                            object_key_prefix=INCOMING_PREFIX,
                            topic_arn=self.topic.topic_arn,
                        )
                    )
                ],
            ),
        )
        # SES checks that it may write and publish when the rule is created.
        rule.node.add_dependency(*grants)
        if rule_set is not None:
            rule.node.add_dependency(rule_set)
            self._activate(rule_set, rule, config)
        self._mx(config)
        stack_output(
            self,
            Outputs.UNSUBSCRIBE_MAIL_BUCKET,
            self.bucket.bucket_name,
            "Bucket of the emails sent to the unsubscribe address (postline suppressions inbox)",
        )
        stack_output(self, Outputs.UNSUBSCRIBE_MAIL_QUEUE_URL, self.queue.queue_url, "Queue of the unsubscribe emails")
        stack_output(
            self,
            Outputs.UNSUBSCRIBE_MAIL_DLQ_URL,
            self.dead_letters.queue_url,
            "Dead-letter queue of the unsubscribe emails (unreadable notifications, with reasons)",
        )
        stack_output(
            self,
            Outputs.UNSUBSCRIBE_MAIL_ADDRESS,
            config.unsubscribe_mailto,
            "The List-Unsubscribe mailto address SES receives for",
        )

    def _allow_ses(self, rule_arn: str) -> list[IConstruct]:
        """SES of this account, for this rule only, may write raw messages under incoming/ and publish to the topic."""
        only_this_rule = {"StringEquals": {"aws:SourceAccount": Stack.of(self).account, "aws:SourceArn": rule_arn}}
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                principals=[iam.ServicePrincipal("ses.amazonaws.com")],
                resources=[self.bucket.arn_for_objects(f"{INCOMING_PREFIX}*")],
                conditions=only_this_rule,
            )
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("ses.amazonaws.com")],
                resources=[self.topic.topic_arn],
                conditions=only_this_rule,
            )
        )
        return [self.bucket.policy, self.topic.node.find_child("Policy")]

    def _activate(self, rule_set: ses.CfnReceiptRuleSet, rule: ses.CfnReceiptRule, config: Config) -> None:
        """CloudFormation cannot activate a rule set: a function of its own (infra/receipt_rule_set) activates
        postline's at deploy only when no other is active, and deactivates it when the stack goes (SES refuses to
        delete an active rule set) only if it is still the active one."""
        role = iam.Role(
            self,
            "ActivatorRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="postline receipt rule set activation (deploy time)",
        )
        log_group = logs.LogGroup(
            self, "ActivatorLogs", retention=config.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        log_group.grant_write(role)
        # Neither action supports resource-level permissions (the Service Authorization Reference).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ses:DescribeActiveReceiptRuleSet", "ses:SetActiveReceiptRuleSet"], resources=["*"]
            )
        )
        accept(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "ses:DescribeActiveReceiptRuleSet and "
            "ses:SetActiveReceiptRuleSet support no resource-level permissions; they are the only actions granted.",
        )
        activator = lambda_.Function(
            self,
            "Activator",
            description="Deploy time: activates the unsubscribe mail's receipt rule set unless another one is active",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(ACTIVATOR_SOURCE), exclude=EXCLUDE),
            role=role,
            timeout=ACTIVATOR_TIMEOUT,
            log_group=log_group,
        )
        accept(
            activator,
            "AwsSolutions-L1",
            f"The functions' runtime ({RUNTIME.name}), moved with theirs; it uses "
            "only the standard library and the runtime's boto3.",
        )
        activation = CustomResource(
            self,
            "ActiveRuleSet",
            service_token=activator.function_arn,
            resource_type="Custom::ReceiptRuleSetActivation",
            properties={"RuleSetName": self.rule_set_name},
        )
        # A function that never answers fails the deploy after this long, not after CloudFormation's default hour
        # (a number, as in stacks/layer.py: CustomResource's service_timeout writes a string, which cfn-lint flags).
        cast(CfnResource, activation.node.default_child).add_property_override(
            "ServiceTimeout", int(ACTIVATION_SERVICE_TIMEOUT.to_seconds())
        )
        activation.node.add_dependency(rule_set, rule)

    def _mx(self, config: Config) -> None:
        """The MX record that sends the subdomain's mail to SES: in the hosted zone when it holds the domain, else an
        output to copy (``postline doctor --records`` prints it too)."""
        host = f"10 inbound-smtp.{Aws.REGION}.amazonaws.com"
        zone = config.hosted_zone
        if zone is not None and within(self.domain, zone.zone_name):
            hosted = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=zone.zone_id, zone_name=zone.zone_name
            )
            route53.MxRecord(
                self,
                "Mx",
                zone=hosted,
                record_name=f"{self.domain}.",
                ttl=MX_TTL,
                values=[route53.MxRecordValue(priority=10, host_name=f"inbound-smtp.{Aws.REGION}.amazonaws.com")],
            )
        else:
            stack_output(
                self,
                f"{Outputs.DNS_RECORD_PREFIX}UnsubscribeMxRecord",
                f"{self.domain} MX {host}",
                "DNS record to create for the unsubscribe address's domain (name type value)",
            )

    def connect(
        self,
        function: lambda_.Function,
        *,
        messages: dynamodb.ITable,
        events_table: dynamodb.ITable,
        suppressions: dynamodb.ITable,
        stats: dynamodb.ITable,
        signing_keys: secretsmanager.ISecret,
        event_bus: events.IEventBus,
        alarm_topic: sns.ITopic,
    ) -> None:
        """The queue feeds the function, whose role may do what it does (postline.inbound_mail) and no more."""
        # An SNS message on the queue from any other topic is refused (postline.inbound_mail).
        function.add_environment(TOPIC_VARIABLE, self.topic.topic_arn)
        function.add_event_source(
            sources.SqsEventSource(
                self.queue, batch_size=10, report_batch_item_failures=True, max_concurrency=UNSUBSCRIBE_MAIL_CONCURRENCY
            )
        )
        # The raw message read, the record of a kept one written; nothing else in the bucket.
        iam.Grant.add_to_principal(
            grantee=function,
            actions=["s3:GetObject"],
            resource_arns=[self.bucket.arn_for_objects(f"{INCOMING_PREFIX}*")],
        )
        iam.Grant.add_to_principal(
            grantee=function, actions=["s3:PutObject"], resource_arns=[self.bucket.arn_for_objects(f"{KEPT_PREFIX}*")]
        )
        logical_id = Stack.of(self).get_logical_id(cast(CfnElement, self.bucket.node.default_child))
        for prefix in (INCOMING_PREFIX, KEPT_PREFIX):
            accept(
                function.role,
                f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}*]",
                "Received emails are named by SES's message id, unknown in advance; access is limited to their prefix.",
            )
        # As the one-click unsubscribe: the token checked, the message read, the suppression and the event written.
        signing_keys.grant_read(function)
        for table, actions in (
            (messages, ["GetItem"]),
            (events_table, ["PutItem"]),
            (suppressions, ["BatchGetItem", "PutItem"]),
            (stats, ["PutItem", "UpdateItem"]),
        ):
            iam.Grant.add_to_principal(
                grantee=function, actions=[f"dynamodb:{a}" for a in actions], resource_arns=[table.table_arn]
            )
        event_bus.grant_put_events_to(function)
        # An unreadable notification goes to the DLQ with its reason, and the operator hears of it.
        self.dead_letters.grant_send_messages(function)
        alarm = self.dead_letters.metric_approximate_number_of_messages_visible(
            period=Duration.minutes(5), statistic="Maximum"
        ).create_alarm(
            self,
            "DlqNotEmpty",
            alarm_description="unsubscribe-mail: messages in the dead-letter queue (emails to "
            "the unsubscribe address not applied: each holds the reason)",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))
