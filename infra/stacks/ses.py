"""SES: the sending domain, one configuration set per stream, optional dedicated IP pools, DNS, and the route
of its sending events to postline's events queue.

Two routes, chosen by the deploy config's ``ses_event_route``:

- ``sns`` (the default): each configuration set publishes its events (all but Send, constants.SNS_EVENT_TYPES) to
  the topic ``postline-ses-events``, and so do the sending identity's feedback notifications (bounces and
  complaints by default, with the original headers, which carry postline's message id). The topic, encrypted
  with a key SES may use and accepting only SES of this account for these configuration sets and this identity,
  delivers to the events queue in SNS's envelope; what it cannot deliver goes to the queue's DLQ. Durable: SNS
  retries, the queue holds the message. $0.50 per million publishes.
- ``eventbridge``: SES publishes every event type to the account's default bus, where events from AWS services
  cost nothing; rules send the events of postline's configuration sets, and only those, to the events queues:
  Send events to the queue that holds them back a minute (constants.SES_SEND_EVENTS), every other type to the
  events queue. AWS documents SES's events on EventBridge as best effort.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import custom_resources as cr
from constructs import Construct

from .config import Config
from .constants import (
    IP_POOL_OF_STREAM,
    SES_CONFIGURATION_SET_DIMENSION,
    SES_EVENT_TYPES,
    SES_EVENTS,
    SES_METRIC_EVENT_TYPES,
    SES_SEND_EVENT_DETAIL_TYPE,
    SES_SEND_EVENTS,
    SNS_EVENT_TYPES,
    STREAMS,
    Outputs,
    pascal,
)
from .keys import topic_key
from .nag import accept
from .outputs import stack_output
from .queues import Queues

DNS_TTL = Duration.minutes(30)
AWS_CALLER_ID = "AWS679f53fac002430cb0da5b7982bd2287"  # the singleton function behind every AwsCustomResource


class Ses(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, queues: Queues) -> None:
        super().__init__(scope, id)
        # An identity that exists already (adopt_existing_identity) is used as it is: creating it again would fail
        # the deploy with AlreadyExists and roll the stack back.
        self.identity = (
            None
            if config.adopt_existing_identity
            else ses.EmailIdentity(
                self,
                "Identity",
                identity=ses.Identity.domain(config.domain),
                dkim_identity=ses.DkimIdentity.easy_dkim(ses.EasyDkimSigningKeyLength.RSA_2048_BIT),
                mail_from_domain=config.mail_from_domain,
                # If the MAIL FROM MX record goes missing, keep sending from amazonses.com rather than bounce.
                mail_from_behavior_on_mx_failure=ses.MailFromBehaviorOnMxFailure.USE_DEFAULT_VALUE,
            )
        )
        self.identity_arn = Stack.of(self).format_arn(service="ses", resource="identity", resource_name=config.domain)

        by_sns = config.ses_event_route == "sns"
        self.topic = self._events_topic(queues.ses_events, queues.dead_letter_queues[SES_EVENTS]) if by_sns else None
        destination = (
            ses.EventDestination.sns_topic(self.topic)
            if by_sns
            else ses.EventDestination.event_bus(events.EventBus.from_event_bus_name(self, "DefaultBus", "default"))
        )
        pools = self._ip_pools(config.ip_pools)
        self.configuration_sets: dict[str, ses.ConfigurationSet] = {}
        for stream in STREAMS:
            configuration_set = ses.ConfigurationSet(
                self,
                f"{pascal(stream)}ConfigurationSet",
                reputation_metrics=True,
                dedicated_ip_pool=pools.get(IP_POOL_OF_STREAM[stream]),
            )
            configuration_set.add_event_destination(
                "Events",
                destination=destination,
                events=[ses.EmailSendingEvent[name] for name in (SNS_EVENT_TYPES if by_sns else SES_EVENT_TYPES)],
            )
            # Counts per stream for the dashboard, without any code in the pipeline.
            configuration_set.add_event_destination(
                "Metrics",
                destination=ses.EventDestination.cloud_watch_dimensions(
                    [
                        ses.CloudWatchDimension(
                            name=SES_CONFIGURATION_SET_DIMENSION,
                            source=ses.CloudWatchDimensionSource.MESSAGE_TAG,
                            default_value="none",
                        )
                    ]
                ),
                events=[ses.EmailSendingEvent[name] for name in SES_METRIC_EVENT_TYPES],
            )
            self.configuration_sets[stream] = configuration_set
            stack_output(
                self,
                Outputs.configuration_set(stream),
                configuration_set.configuration_set_name,
                f"SES configuration set of the {stream} stream",
            )

        if by_sns:
            self._allow_ses_to_publish(config)
        else:
            self._route_events(
                queues.ses_events,
                queues.dead_letter_queues[SES_EVENTS],
                queues.ses_send_events,
                queues.dead_letter_queues[SES_SEND_EVENTS],
            )
        self._dns(config)

    def _events_topic(self, queue: sqs.IQueue, dlq: sqs.IQueue) -> sns.Topic:
        """The topic SES publishes to, delivering to the events queue (in SNS's envelope: SNS's own subscription
        messages stay recognisable) and, what it cannot deliver, to the queue's DLQ."""
        key = topic_key(
            self, "EventsTopicKey", description="Encrypts the postline SES events topic", service="ses.amazonaws.com"
        )
        topic = sns.Topic(self, "EventsTopic", display_name="postline SES events", master_key=key, enforce_ssl=True)
        topic.add_subscription(subscriptions.SqsSubscription(queue, raw_message_delivery=False, dead_letter_queue=dlq))
        stack_output(
            self,
            Outputs.SES_EVENTS_TOPIC_ARN,
            topic.topic_arn,
            "SNS topic of SES's events and notifications (postline-ses-events)",
        )
        return topic

    def _allow_ses_to_publish(self, config: Config) -> None:
        """Only SES of this account may publish: for each configuration set (the SNS destinations add those
        statements) and for the identity, whose feedback notifications then go to the topic too, with the original
        headers."""
        policy = self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("ses.amazonaws.com")],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Stack.of(self).account, "aws:SourceArn": self.identity_arn}
                },
            )
        )
        for kind in config.identity_notifications:
            earlier = None  # the headers option is set once the topic is, and undone before it
            for action, parameters in (
                ("setIdentityNotificationTopic", {"SnsTopic": self.topic.topic_arn}),
                ("setIdentityHeadersInNotificationsEnabled", {"Enabled": True}),
            ):
                call = cr.AwsSdkCall(
                    service="SES",
                    action=action,
                    parameters={"Identity": config.domain, "NotificationType": kind, **parameters},
                    physical_resource_id=cr.PhysicalResourceId.of(f"{config.domain}-{kind}-{action}"),
                )
                undo = cr.AwsSdkCall(
                    service="SES",
                    action=action,
                    parameters={
                        "Identity": config.domain,
                        "NotificationType": kind,
                        **({} if "SnsTopic" in parameters else {"Enabled": False}),
                    },
                )
                setting = cr.AwsCustomResource(
                    self,
                    f"{kind}{pascal(action)}",
                    on_create=call,
                    on_update=call,
                    on_delete=undo,
                    install_latest_aws_sdk=False,
                    policy=cr.AwsCustomResourcePolicy.from_statements(
                        [
                            iam.PolicyStatement(
                                actions=[f"ses:{action[:1].upper()}{action[1:]}"], resources=[self.identity_arn]
                            )
                        ]
                    ),
                )
                setting.node.add_dependency(*[d for d in (self.identity, earlier) if d is not None])
                if policy.policy_dependable is not None:
                    setting.node.add_dependency(policy.policy_dependable)
                earlier = setting
        # CloudFormation cannot set an identity's notification topics: the custom resources above call SES, through
        # CDK's one shared function for such calls.
        caller = Stack.of(self).node.try_find_child(AWS_CALLER_ID)
        if caller is not None:
            accept(
                caller.node.find_child("ServiceRole"),
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's function for SDK calls at deploy time writes its own logs with the basic execution role; "
                "its calls are limited to the identity's notification settings by each custom resource's policy.",
            )

    def _route_events(self, queue: sqs.IQueue, dlq: sqs.IQueue, send_queue: sqs.IQueue, send_dlq: sqs.IQueue) -> None:
        """The default bus's SES events of postline's configuration sets: Send events to the queue that holds them
        back, every other type (whatever its name) to the events queue. What EventBridge cannot deliver after its
        retries goes to the queue's DLQ, whose alarm already watches it."""
        names = [c.configuration_set_name for c in self.configuration_sets.values()]

        def rule(id: str, description: str, detail_type: list, target: sqs.IQueue, target_dlq: sqs.IQueue):
            return events.Rule(
                self,
                id,
                description=description,
                event_pattern=events.EventPattern(
                    source=["aws.ses"],
                    detail_type=detail_type,
                    detail={"mail": {"tags": {"ses:configuration-set": names}}},
                ),
                targets=[
                    targets.SqsQueue(
                        target, dead_letter_queue=target_dlq, retry_attempts=185, max_event_age=Duration.hours(24)
                    )
                ],
            )

        self.events_rule = rule(
            "EventsRule",
            "SES sending events of postline's configuration sets, but Send",
            events.Match.anything_but(SES_SEND_EVENT_DETAIL_TYPE),
            queue,
            dlq,
        )
        self.send_events_rule = rule(
            "SendEventsRule",
            "SES Send events of postline's configuration sets",
            [SES_SEND_EVENT_DETAIL_TYPE],
            send_queue,
            send_dlq,
        )
        stack_output(
            self,
            Outputs.SES_EVENTS_RULE_ARN,
            self.events_rule.rule_arn,
            "EventBridge rule (default bus) that routes SES events but Send to the events queue",
        )
        stack_output(
            self,
            Outputs.SES_SEND_EVENTS_RULE_ARN,
            self.send_events_rule.rule_arn,
            "EventBridge rule (default bus) that routes SES Send events to their queue",
        )

    def configuration_set_arn(self, stream: str) -> str:
        return Stack.of(self).format_arn(
            service="ses",
            resource="configuration-set",
            resource_name=self.configuration_sets[stream].configuration_set_name,
        )

    def _ip_pools(self, mode: str) -> dict[str, ses.DedicatedIpPool]:
        """Dedicated IPs cost money, so they are off unless configured; marketing never shares a pool."""
        if mode == "none":
            return {}
        scaling = ses.ScalingMode.MANAGED if mode == "managed" else ses.ScalingMode.STANDARD
        return {
            name: ses.DedicatedIpPool(self, f"{pascal(name)}IpPool", scaling_mode=scaling)
            for name in sorted(set(IP_POOL_OF_STREAM.values()))
        }

    def _dns(self, config: Config) -> None:
        """DKIM, MAIL FROM (MX + SPF) and DMARC: in the hosted zone when given, else as outputs to copy."""
        region = Aws.REGION
        dmarc = f"v=DMARC1; p={config.dmarc_policy}" + (
            f"; rua=mailto:{config.dmarc_report_address}" if config.dmarc_report_address else ""
        )
        mx_host = f"feedback-smtp.{region}.amazonses.com"
        spf = "v=spf1 include:amazonses.com ~all"
        if self.identity is None:
            # An adopted identity's DKIM keys are SES's already, and its records most likely in DNS: SES names them.
            dkim = []
            stack_output(
                self,
                Outputs.DKIM_RECORDS_COMMAND,
                (
                    f"aws sesv2 get-email-identity --email-identity {config.domain} --query DkimAttributes "
                    "(each token T: T._domainkey.<domain> CNAME T.dkim.amazonses.com)"
                ),
                "The adopted identity's DKIM records come from SES: this command lists them",
            )
        else:
            dkim = [(record.name, record.value) for record in self.identity.dkim_records]

        if config.hosted_zone is None:
            rows = [(f"DkimRecord{i}", name, "CNAME", value) for i, (name, value) in enumerate(dkim, 1)]
            rows += [
                ("MailFromMxRecord", config.mail_from_domain, "MX", f"10 {mx_host}"),
                ("MailFromSpfRecord", config.mail_from_domain, "TXT", f'"{spf}"'),
                ("DmarcRecord", f"_dmarc.{config.domain}", "TXT", f'"{dmarc}"'),
            ]
            for key, name, kind, value in rows:
                stack_output(
                    self,
                    f"{Outputs.DNS_RECORD_PREFIX}{key}",
                    f"{name} {kind} {value}",
                    "DNS record to create for the sending domain (name type value)",
                )
            return

        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.hosted_zone.zone_id, zone_name=config.hosted_zone.zone_name
        )
        for i, (name, value) in enumerate(dkim, 1):
            # SES gives fully qualified names as tokens, which the L2 record would suffix with the zone.
            route53.CfnRecordSet(
                self,
                f"DkimRecord{i}",
                hosted_zone_id=zone.hosted_zone_id,
                name=name,
                type="CNAME",
                resource_records=[value],
                ttl=str(int(DNS_TTL.to_seconds())),
            )
        route53.MxRecord(
            self,
            "MailFromMx",
            zone=zone,
            record_name=f"{config.mail_from_domain}.",
            values=[route53.MxRecordValue(priority=10, host_name=mx_host)],
            ttl=DNS_TTL,
        )
        route53.TxtRecord(
            self, "MailFromSpf", zone=zone, record_name=f"{config.mail_from_domain}.", values=[spf], ttl=DNS_TTL
        )
        route53.TxtRecord(self, "Dmarc", zone=zone, record_name=f"_dmarc.{config.domain}.", values=[dmarc], ttl=DNS_TTL)
