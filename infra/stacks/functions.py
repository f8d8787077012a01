"""The Lambda functions: one per functions/<name>/, all on the shared layer, each with its own least-privilege role."""

from __future__ import annotations

import json
from typing import cast

from aws_cdk import ArnFormat, CfnElement, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from postline import queue_names
from postline.settings import ENVIRONMENT, PER_STREAM, USED_BY

from .config import APP_EVENT_NAMES, REPO_ROOT, Alerts, Config
from .constants import (
    CAMPAIGN_AUDIENCE_PREFIX,
    CAMPAIGN_BATCH_SIZE,
    CAMPAIGN_CONCURRENCY,
    CAMPAIGN_QUEUE,
    FUNCTIONS,
    HANDLER,
    INBOUND_QUEUES,
    MAX_RECEIVE_COUNT,
    METRICS_NAMESPACE,
    POWERTOOLS_SERVICE_NAME,
    SEND_EVENT_DELAY,
    SEND_QUEUES,
    SES_EVENTS,
    SES_EVENTS_BATCH_SIZE,
    SES_EVENTS_BATCHING_WINDOW,
    SES_EVENTS_CONCURRENCY,
    STREAMS,
    TABLE_ENV,
    Env,
    pascal,
)
from .layer import EXCLUDE, CompiledLayer
from .nag import accept
from .queues import Queues
from .scheduling import Scheduling
from .ses import Ses
from .tables import Tables

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
CLAIM_CHECK_PREFIX = "mime/"  # where the library puts rendered bodies (postline.queues)
LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "ERROR"}

READ = ("GetItem", "BatchGetItem", "Query")

DOMAIN_CHECK_STREAMS = "POSTLINE_DOMAIN_CHECK_STREAMS"
# The functions that publish application events (postline.app_events).
ANNOUNCERS = ("send", "ses_events", "track_open", "track_click", "unsubscribe", "campaign")
# Each variable given only to the functions whose code reads it: Lambda allows 4 KB of environment per function, and
# the largest config comes near it (infra/stacks/environment_size.py). A variable not listed goes to every function.
# The resources only some functions read are the library's to say (postline.settings.USED_BY: each function checks
# them at cold start); the settings with a default are listed here, and a function that starts reading one of them
# must be added, or it runs on the library's default.
READ_BY: dict[str, tuple[str, ...]] = {
    **{variable: USED_BY[field] for variable, field in ENVIRONMENT.items() if field in USED_BY},
    **{prefix + stream.upper(): USED_BY[field] for prefix, field in PER_STREAM.items() for stream in STREAMS},
    Env.MESSAGE_TTL_DAYS: ("render",),  # render creates the message records
    Env.EVENT_TTL_DAYS: ("ses_events", "track_open", "track_click", "unsubscribe", "unsubscribe_mail"),  # event rows
    Env.APP_EVENTS: (*ANNOUNCERS, "unsubscribe_mail"),  # (its bus grant is stacks/receiving.py's)
    Env.SEND_EVENT_DELAY_SECONDS: ("send",),  # when it may look at a claim again
    Env.MAX_RECEIVE_COUNT: ("render", "send", "ses_events", "campaign", "unsubscribe_mail"),  # the queue consumers
    # ses_events alone applies bounces and complaints: it mirrors suppressions and checks the alerts on them.
    Env.MIRROR_SES_SUPPRESSIONS: ("ses_events",),
    Env.SES_EVENTS_TOPIC_ARN: ("ses_events",),  # an SNS message from any other topic is refused
    **dict.fromkeys(
        (Env.ALERT_BOUNCE_RATE, Env.ALERT_COMPLAINT_RATE, Env.ALERT_MIN_SAMPLE, Env.ALERT_WINDOW_HOURS), ("ses_events",)
    ),
    # Schedules are made by ses_events (soft-bounce retries) and campaign (a start, the next window).
    Env.SCHEDULE_DLQ_ARN: ("ses_events", "campaign"),
    # The shared limiter sends; the fan-out keeps a backlog measured at the marketing rate, not the warm-up's caps.
    **dict.fromkeys((Env.MARKETING_RATE_SHARE, Env.MAX_SEND_RATE, Env.MAX_24_HOUR_SEND), ("send", "campaign")),
    Env.WARMUP_PLAN: ("send",),
    Env.SMTP_RELAYS: ("send",),
    DOMAIN_CHECK_STREAMS: ("render",),  # recipient-domain hygiene (postline.domains)
}
WRITE_EVENTS = ("PutItem", "BatchWriteItem")


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        tables: Tables,
        queues: Queues,
        claim_check: s3.Bucket,
        signing_keys: secretsmanager.ISecret,
        ses_resources: Ses,
        tracking_base_url: str,
        event_bus: events.IEventBus,
        scheduling: Scheduling,
        alarm_topic: sns.Topic,
    ) -> None:
        super().__init__(scope, id)
        self.layer = CompiledLayer(
            self,
            "CommonLayer",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            log_retention=config.log_retention,
            bootstrap_kms_key_arn=config.bootstrap_kms_key_arn,
        ).layer
        environment = self._environment(config, tables, claim_check, signing_keys, ses_resources, tracking_base_url)
        environment[Env.EVENT_BUS] = event_bus.event_bus_name
        # How long the Send events' queue holds them back (the EventBridge route; the SNS route publishes none).
        held_back = SEND_EVENT_DELAY.to_seconds() if queues.ses_send_events is not None else 0
        environment[Env.SEND_EVENT_DELAY_SECONDS] = str(int(held_back))
        environment[Env.SCHEDULE_GROUP] = scheduling.group_name
        environment[Env.SCHEDULER_ROLE_ARN] = scheduling.role.role_arn
        environment[Env.ALARM_TOPIC_ARN] = alarm_topic.topic_arn
        if ses_resources.topic is not None:  # the SNS route (the EventBridge route has no topic)
            environment[Env.SES_EVENTS_TOPIC_ARN] = ses_resources.topic.topic_arn
        environment[Env.MIRROR_SES_SUPPRESSIONS] = "true" if config.mirror_ses_suppressions else "false"
        environment[Env.SCHEDULE_DLQ_ARN] = scheduling.dead_letters.queue_arn
        environment.update(_alert_environment(config.alerts))
        environment.update(_limiter_environment(config))
        if config.transports:
            environment[Env.SMTP_RELAYS] = json.dumps(
                {stream: relay.relay() for stream, relay in config.transports.items()}, separators=(",", ":")
            )
        environment[DOMAIN_CHECK_STREAMS] = ",".join(config.domain_check_streams)
        self.functions: dict[str, lambda_.Function] = {
            name: self._function(
                name,
                config,
                {
                    variable: value
                    for variable, value in environment.items()
                    if name in READ_BY.get(variable, FUNCTIONS)
                },
            )
            for name in FUNCTIONS
            if name != "unsubscribe_mail" or config.receive_unsubscribe_mail
        }
        self._consume(config, queues)
        self._grant(tables, queues, claim_check, signing_keys, ses_resources, config)
        self._grant_campaign(tables, queues, claim_check, signing_keys, scheduling)
        self._grant_analytics(tables, alarm_topic)
        for name in ANNOUNCERS:  # they publish application events (postline.app_events)
            event_bus.grant_put_events_to(self.functions[name])
        if config.mirror_ses_suppressions:
            ses_events = self.functions["ses_events"]
            iam.Grant.add_to_principal(
                grantee=ses_events, actions=["ses:PutSuppressedDestination"], resource_arns=["*"]
            )
            accept(
                ses_events.role,
                "AwsSolutions-IAM5[Resource::*]",
                "ses:PutSuppressedDestination acts on the "
                "account-level suppression list and supports no resource-level permissions.",
            )
        # Unreadable SES event records go to the DLQ with the reason.
        queues.dead_letter_queues[SES_EVENTS].grant_send_messages(self.functions["ses_events"])
        # A bounce or complaint of an erased address stays under its erased name: the erasure key hashes it.
        signing_keys.grant_read(self.functions["ses_events"])
        # Soft-bounce retries go back through the inbound queues, later ones through a one-time schedule.
        scheduling.grant_create(self.functions["ses_events"])
        for stream in STREAMS:
            queues.inbound[stream].grant_send_messages(self.functions["ses_events"])

    def _environment(
        self,
        config: Config,
        tables: Tables,
        claim_check: s3.Bucket,
        signing_keys: secretsmanager.ISecret,
        ses_resources: Ses,
        tracking_base_url: str,
    ) -> dict[str, str]:
        """Every function's settings (READ_BY then leaves out, per function, the ones it does not read)."""
        environment = {TABLE_ENV[name]: table.table_name for name, table in tables.tables.items()}
        for stream in STREAMS:
            environment[Env.CONFIGURATION_SET_PREFIX + stream.upper()] = ses_resources.configuration_sets[
                stream
            ].configuration_set_name
        # Every queue's URL is this prefix and the queue's suffix (queues.py names them so): the library derives the
        # inbound, send and dead-letter queues' URLs from it, a dozen URLs that would not fit in 4 KB with the rest.
        stack = Stack.of(self)
        environment[Env.QUEUE_URL_PREFIX] = queue_names.url_prefix(
            f"https://sqs.{stack.region}.{stack.url_suffix}", stack.account, stack.stack_name
        )
        environment[Env.MAX_RECEIVE_COUNT] = str(MAX_RECEIVE_COUNT)
        environment.update(
            {
                Env.DEFAULT_FROM: config.from_address,
                Env.TRACKING_BASE_URL: tracking_base_url,
                Env.UNSUBSCRIBE_MAILTO: config.unsubscribe_mailto,
                Env.SIGNING_KEYS_SECRET: signing_keys.secret_arn,
                Env.CLAIM_CHECK_BUCKET: claim_check.bucket_name,
                Env.EVENT_TTL_DAYS: str(config.event_ttl_days),
                Env.MESSAGE_TTL_DAYS: str(config.message_ttl_days),
                # "all" is what the library reads as every event: a hundred bytes fewer than their names.
                Env.APP_EVENTS: "all"
                if set(config.app_events) == set(APP_EVENT_NAMES)
                else ",".join(config.app_events),
                Env.TRACE_DISABLED: "false" if config.tracing else "true",
                Env.SERVICE_NAME: POWERTOOLS_SERVICE_NAME,
                Env.METRICS_NAMESPACE: METRICS_NAMESPACE,
                Env.LOG_LEVEL: config.log_level,
            }
        )
        return environment

    def _function(self, name: str, config: Config, environment: dict[str, str]) -> lambda_.Function:
        spec = FUNCTIONS[name]
        role = iam.Role(
            self,
            f"{pascal(name)}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"postline {name} function",
        )
        # An explicit log group: retention is set, and the role may write to it and nowhere else.
        log_group = logs.LogGroup(
            self, f"{pascal(name)}Logs", retention=config.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            self,
            pascal(name),
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(REPO_ROOT / "functions" / name), exclude=EXCLUDE),
            layers=[self.layer],
            role=role,
            memory_size=spec.memory_mb,
            timeout=spec.timeout,
            environment=environment,
            tracing=lambda_.Tracing.ACTIVE if config.tracing else lambda_.Tracing.DISABLED,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel[LOG_LEVELS[config.log_level]],
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=log_group,
        )
        accept(
            function,
            "AwsSolutions-L1",
            f"The layer's binary wheels are built for {RUNTIME.name}; moving to a "
            "newer runtime is a deliberate change of bundling.PYTHON_VERSION and this constant together.",
        )
        if config.tracing:
            accept(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray's PutTraceSegments and PutTelemetryRecords "
                "support no resource-level permissions; they are the only actions granted on '*'.",
            )
        return function

    def _consume(self, config: Config, queues: Queues) -> None:
        """Batches of 10 with partial failures (SES's events: up to 100 gathered for a second); a ceiling per queue so
        marketing never takes critical's share."""
        consumers = [("render", queues.inbound[s], config.render_concurrency[s]) for s in STREAMS]
        consumers += [("send", queues.send[s], config.send_concurrency[s]) for s in STREAMS]
        for name, queue, ceiling in consumers:
            self.functions[name].add_event_source(
                sources.SqsEventSource(queue, batch_size=10, report_batch_item_failures=True, max_concurrency=ceiling)
            )
        for queue in (queues.ses_events, queues.ses_send_events):
            if queue is not None:  # the Send events' own queue: the EventBridge route only
                self.functions["ses_events"].add_event_source(
                    sources.SqsEventSource(
                        queue,
                        batch_size=SES_EVENTS_BATCH_SIZE,
                        max_batching_window=SES_EVENTS_BATCHING_WINDOW,
                        report_batch_item_failures=True,
                        max_concurrency=SES_EVENTS_CONCURRENCY,
                    )
                )
        # One control message is one run of a campaign's fan-out (up to a minute of work).
        self.functions["campaign"].add_event_source(
            sources.SqsEventSource(
                queues.campaigns,
                batch_size=CAMPAIGN_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=CAMPAIGN_CONCURRENCY,
            )
        )

    def _grant(
        self,
        tables: Tables,
        queues: Queues,
        claim_check: s3.Bucket,
        signing_keys: secretsmanager.ISecret,
        ses_resources: Ses,
        config: Config,
    ) -> None:
        f = self.functions
        render, send, ses_events = f["render"], f["send"], f["ses_events"]

        _table(render, tables.templates, *READ)
        # Render reads no suppressions: it checks critical mail's inside the record transaction, and a
        # transaction's ConditionCheck is authorised as ConditionCheckItem, not as a read.
        _table(render, tables.suppressions, "ConditionCheckItem")
        _table(render, tables.messages, "PutItem", "UpdateItem", "BatchWriteItem", "ConditionCheckItem")
        _table(render, tables.events, *WRITE_EVENTS, "BatchGetItem")  # BatchGetItem: recipient domains' answers
        for stream in STREAMS:
            queues.send[stream].grant_send_messages(render)
            queues.dead_letter_queues[INBOUND_QUEUES[stream]].grant_send_messages(render)
        _objects(render, claim_check, "s3:PutObject")
        signing_keys.grant_read(render)

        # PartiQLInsert: a marketing email's first claim (BatchExecuteStatement; IAM authorises each statement).
        _table(
            send,
            tables.messages,
            "GetItem",
            "BatchGetItem",
            "PutItem",
            "UpdateItem",
            "ConditionCheckItem",
            "PartiQLInsert",
        )
        # The check before the claim: a batched read, or ConditionChecks in the claim's transaction (critical).
        _table(send, tables.suppressions, "BatchGetItem", "ConditionCheckItem")
        _table(send, tables.events, *WRITE_EVENTS, "DeleteItem")  # DeleteItem: an erased recipient's kept request
        # The shared limiter: tokens taken with conditional updates, its state (SES's figures, warm-up days) read
        # and written back; the account's sending rate and 24-hour quota read from SES every few minutes.
        _table(send, tables.rate_limits, "GetItem", "PutItem", "UpdateItem")
        _read_ses_account(send)
        # A campaign's emails: its state (paused, cancelled, its window) read before each claim, and the jobs
        # dropped for a cancelled campaign counted in it.
        _table(send, tables.campaigns, "GetItem", "BatchGetItem", "UpdateItem")
        _objects(send, claim_check, "s3:GetObject")
        for stream in STREAMS:
            # A job SES refuses for now goes back on its queue, delayed; one postline gives up on (parked,
            # unreadable, out of receives) to the DLQ with the reason.
            queues.send[stream].grant_send_messages(send)
            queues.dead_letter_queues[SEND_QUEUES[stream]].grant_send_messages(send)
        sending_identities = [ses_resources.identity_arn] + [
            Stack.of(self).format_arn(service="ses", resource="identity", resource_name=address)
            for address in config.sandbox_recipients  # the sandbox also authorises each recipient identity
        ]
        iam.Grant.add_to_principal(
            grantee=send,
            actions=["ses:SendEmail", "ses:SendRawEmail"],
            resource_arns=sending_identities + [ses_resources.configuration_set_arn(s) for s in STREAMS],
        )
        self._grant_relays(config, tables)

        # BatchGetItem: a Send event reads whether its email is already past sent before it writes.
        _table(ses_events, tables.messages, "GetItem", "BatchGetItem", "UpdateItem")
        _table(ses_events, tables.events, "GetItem", *WRITE_EVENTS)  # GetItem: the request kept for retries
        _table(ses_events, tables.suppressions, "GetItem", "BatchGetItem", "PutItem", "UpdateItem", "BatchWriteItem")

        for name in ("track_open", "track_click", "unsubscribe"):
            signing_keys.grant_read(f[name])
            _table(f[name], tables.events, *WRITE_EVENTS)
            _table(f[name], tables.messages, "GetItem", "UpdateItem")
        # Read whether the address (or its erased name) is unsubscribed; write the unsubscribe; delete it on
        # resubscribe.
        _table(f["unsubscribe"], tables.suppressions, "BatchGetItem", "PutItem", "DeleteItem")

    def _grant_relays(self, config: Config, tables: Tables) -> None:
        """The streams on an SMTP relay: send reads each relay's credentials (that secret only), and suppresses an
        address a relay says does not exist (postline.send: one conditional PutItem)."""
        if not config.transports:
            return
        send, stack = self.functions["send"], Stack.of(self)
        secrets = sorted(
            {
                relay.secret
                if relay.secret_is_arn
                else stack.format_arn(
                    service="secretsmanager",
                    resource="secret",
                    resource_name=f"{relay.secret}-??????",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                for relay in config.transports.values()
            }
        )
        # A secret named without its ARN ends in the six characters Secrets Manager adds to every ARN.
        iam.Grant.add_to_principal(grantee=send, actions=["secretsmanager:GetSecretValue"], resource_arns=secrets)
        _table(send, tables.suppressions, "PutItem")

    def _grant_analytics(self, tables: Tables, alarm_topic: sns.Topic) -> None:
        """The counters (postline.analytics): each batch's facts written in transactions of conditional marker Puts
        and counter Updates, by every function that sees an email's fate. ses_events also checks the alerts (reads
        the counters and the alerts' states), pauses a campaign that passes them (reads, creates for an
        application's campaign without a record, or moves its record) and publishes the alert on the alarm
        topic (encrypted: the grant covers its key)."""
        for name in ("render", "send", "ses_events", "track_open", "track_click", "unsubscribe"):
            _table(self.functions[name], tables.stats, "PutItem", "UpdateItem")
        ses_events = self.functions["ses_events"]
        _table(ses_events, tables.stats, "Query")
        _table(ses_events, tables.campaigns, "GetItem", "PutItem", "UpdateItem")
        # Topic.grant_publish would add kms:GenerateDataKey*: publishing to an encrypted topic needs these two.
        iam.Grant.add_to_principal(grantee=ses_events, actions=["sns:Publish"], resource_arns=[alarm_topic.topic_arn])
        iam.Grant.add_to_principal(
            grantee=ses_events,
            actions=["kms:GenerateDataKey", "kms:Decrypt"],
            resource_arns=[alarm_topic.master_key.key_arn],
        )

    def _grant_campaign(
        self,
        tables: Tables,
        queues: Queues,
        claim_check: s3.Bucket,
        signing_keys: secretsmanager.ISecret,
        scheduling: Scheduling,
    ) -> None:
        """The fan-out (postline.campaigns.fanout): it reads its campaign and checkpoints it, reads the audience,
        drops suppressed recipients, hands the rest to the marketing queue while its backlog allows, and hands itself
        on through the control queue (now, or at the next window's start through a schedule)."""
        campaign = self.functions["campaign"]
        _table(campaign, tables.campaigns, "GetItem", "UpdateItem")  # the CLI creates campaigns, not the function
        _objects(campaign, claim_check, "s3:GetObject", prefix=CAMPAIGN_AUDIENCE_PREFIX)
        # The suppressions of each page of recipients, the erased forms too: the erasure key hashes them.
        _table(campaign, tables.suppressions, "BatchGetItem")
        signing_keys.grant_read(campaign)
        queues.inbound["marketing"].grant_send_messages(campaign)
        # The backlog bound: how many marketing messages wait, inbound and rendered.
        queues.send["marketing"].grant(campaign, "sqs:GetQueueAttributes")
        queues.campaigns.grant_send_messages(campaign)
        # An unreadable control message, or one on its last receive, goes to the DLQ with the reason.
        queues.dead_letter_queues[CAMPAIGN_QUEUE].grant_send_messages(campaign)
        scheduling.grant_create(campaign)
        _read_ses_account(campaign)  # the sending rate the backlog is measured in


def _read_ses_account(function: lambda_.Function) -> None:
    """The limiter's read of the account's sending rate and 24-hour quota."""
    iam.Grant.add_to_principal(grantee=function, actions=["ses:GetAccount"], resource_arns=["*"])
    accept(
        function.role,
        "AwsSolutions-IAM5[Resource::*]",
        "ses:GetAccount reads the account's sending rate and 24-hour quota and supports no resource-level permissions.",
    )


def _number(value: float) -> str:
    """A config number as the library parses it: 14 for 14.0, the shortest exact form otherwise (0.7)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _table(function: lambda_.IFunction, table: dynamodb.ITable, *actions: str) -> None:
    """Named actions on one table (Table.grant would add a wildcard for indexes: index/*)."""
    iam.Grant.add_to_principal(
        grantee=function, actions=[f"dynamodb:{a}" for a in actions], resource_arns=[table.table_arn]
    )


def _objects(function: lambda_.Function, bucket: s3.Bucket, *actions: str, prefix: str = CLAIM_CHECK_PREFIX) -> None:
    """Object actions under one prefix of the claim-check bucket only (object keys are message ids or campaign
    names, so a wildcard)."""
    iam.Grant.add_to_principal(
        grantee=function, actions=list(actions), resource_arns=[bucket.arn_for_objects(f"{prefix}*")]
    )
    logical_id = Stack.of(bucket).get_logical_id(cast(CfnElement, bucket.node.default_child))
    accept(
        function.role,
        f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}*]",
        "Claim-check objects are named by message id or campaign, unknown in advance; access is limited to "
        "their prefix.",
    )


def _alert_environment(alerts: Alerts | None) -> dict[str, str]:
    """The alert thresholds the config gives (the library has the same defaults as docs/deploy.md says)."""
    if alerts is None:
        return {}
    given = {
        Env.ALERT_BOUNCE_RATE: alerts.bounce_rate,
        Env.ALERT_COMPLAINT_RATE: alerts.complaint_rate,
        Env.ALERT_MIN_SAMPLE: alerts.min_sample,
        Env.ALERT_WINDOW_HOURS: alerts.window_hours,
    }
    return {variable: _number(value) for variable, value in given.items() if value is not None}


def _limiter_environment(config: Config) -> dict[str, str]:
    """The rate and quota the limiter keeps to, marketing's share of the rate, and the warm-up plan (the largest
    value of all)."""
    environment = {Env.MARKETING_RATE_SHARE: _number(config.marketing_rate_share)}
    if config.max_send_rate is not None:
        environment[Env.MAX_SEND_RATE] = _number(config.max_send_rate)
    if config.max_24_hour_send is not None:
        environment[Env.MAX_24_HOUR_SEND] = str(config.max_24_hour_send)
    if config.warmup is not None:
        environment[Env.WARMUP_PLAN] = json.dumps(config.warmup.plan(), separators=(",", ":"))
    return environment
