"""The local stack's resources: the same queues, tables, event rules, bucket, secret and SES setup as in AWS, with
fixed names, created on the local endpoint through boto3 exactly as an AWS deployment would have them."""

from __future__ import annotations

import base64
import json
import os
import secrets

from postline import queue_names
from postline.models import ALL_MODELS, EmailEvent, bind_tables
from postline.settings import STREAMS, settings_from_environ

ACCOUNT = "123456789012"
REGION = "us-east-1"
# The queues are named as in a stack called "postline" (postline.queue_names), so the functions derive their URLs
# from one prefix here too: <endpoint>/<account>/postline-.
STACK_NAME = "postline"
INBOUND_QUEUES = {stream: queue_names.name(STACK_NAME, queue_names.inbound(stream)) for stream in STREAMS}
SEND_QUEUES = {stream: queue_names.name(STACK_NAME, queue_names.send(stream)) for stream in STREAMS}
EVENTS_QUEUE = queue_names.name(STACK_NAME, queue_names.SES_EVENTS)
# SES's events reach the events queue by one of two routes, as in AWS (the deploy config's ses_event_route): the
# SNS topic (the default), or the default EventBridge bus and its rules.
SES_EVENT_ROUTES = ("sns", "eventbridge")
SES_EVENTS_TOPIC = "postline-ses-events"
# What the stack's alarms notify; campaign and stream alerts are published there too (postline.analytics.alerts).
ALARM_TOPIC = "postline-alarms"
SES_EVENTS_RULE = "postline-ses-events"  # on the default bus, as SES publishes there
# SES's Send events have their own rule and queue, which holds them back (postline.events): a minute in AWS,
# two seconds locally, which keeps the order that matters (the Delivery first) without a minute's wait.
SEND_EVENTS_QUEUE = queue_names.name(STACK_NAME, queue_names.SES_SEND_EVENTS)
SES_SEND_EVENTS_RULE = "postline-ses-send-events"
SEND_EVENT_DELAY_SECONDS = 2
# ses_events takes SES's events as the stack's mappings give them: up to 100, gathered for up to a second
# (SES_EVENTS_BATCH_SIZE and SES_EVENTS_BATCHING_WINDOW in infra/stacks/constants.py).
SES_EVENTS_BATCH_SIZE = 100
SES_EVENTS_BATCHING_WINDOW_SECONDS = 1.0
# The campaigns' control queue, consumed by the campaign function. A run lasts up to the function's timeout (120 s,
# as in the stack), so its message stays invisible that long: shorter, and a second run would start mid-run.
CAMPAIGN_QUEUE = queue_names.name(STACK_NAME, queue_names.CAMPAIGNS)
CAMPAIGN_TIMEOUT_SECONDS = 120
TABLES = {
    "POSTLINE_MESSAGES_TABLE": "postline-messages",
    "POSTLINE_EVENTS_TABLE": "postline-email-events",
    "POSTLINE_SUPPRESSIONS_TABLE": "postline-email-suppressions",
    "POSTLINE_TEMPLATES_TABLE": "postline-templates",
    "POSTLINE_RATE_LIMITS_TABLE": "postline-rate-limits",
    "POSTLINE_CAMPAIGNS_TABLE": "postline-campaigns",
    "POSTLINE_STATS_TABLE": "postline-stats",
}
CLAIM_CHECK_BUCKET = "postline-claim-check"
# Unsubscribe by email (postline.inbound_mail): the local MX (smtp_receiver) receives mail for the unsubscribe
# subdomain, stores it in the bucket and notifies the topic, whose queue feeds the unsubscribe_mail function.
UNSUBSCRIBE_DOMAIN = "unsubscribe.mail.example.com"
UNSUBSCRIBE_MAIL_BUCKET = "postline-unsubscribe-mail"
UNSUBSCRIBE_MAIL_TOPIC = "postline-unsubscribe-mail"
UNSUBSCRIBE_MAIL_QUEUE = queue_names.name(STACK_NAME, "unsubscribe-mail")
# The user's application reads postline's events here locally (in AWS: rules on the bus, docs/events.md).
EVENT_BUS = "postline-events"
APP_EVENTS_QUEUE = "postline-app-events"
SCHEDULE_GROUP = "postline-retries"
SIGNING_SECRET = "postline/signing-keys"  # noqa: S105 - the secret's name, not its value
SENDING_DOMAIN = "mail.example.com"
MAIL_FROM_DOMAIN = f"bounce.{SENDING_DOMAIN}"  # as the deploy config's mail_from_subdomain "bounce" makes it
DEFAULT_FROM = f"Postline Demo <hello@{SENDING_DOMAIN}>"
CONFIGURATION_SETS = {stream: f"postline-{stream}" for stream in STREAMS}

# Local queues retry sooner than AWS ones (so a failed record comes back in seconds, not minutes); the
# redrive count is the same.
VISIBILITY_TIMEOUT_SECONDS = 10
MAX_RECEIVE_COUNT = 5


def all_queue_names() -> list[str]:
    names = [
        *INBOUND_QUEUES.values(),
        *SEND_QUEUES.values(),
        EVENTS_QUEUE,
        SEND_EVENTS_QUEUE,
        CAMPAIGN_QUEUE,
        APP_EVENTS_QUEUE,
        UNSUBSCRIBE_MAIL_QUEUE,
    ]
    return names + [queue_names.dead_letters(name) for name in names]


def queue_url(endpoint: str, name: str) -> str:
    return f"{endpoint}/{ACCOUNT}/{name}"


def queue_url_prefix(endpoint: str) -> str:
    """POSTLINE_QUEUE_URL_PREFIX: each queue's URL is this and its suffix (queue_url(endpoint, name) for each)."""
    return queue_names.url_prefix(endpoint, ACCOUNT, STACK_NAME)


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def topic_arn(name: str) -> str:
    return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"


DOMAIN_CHECK_VARIABLES = (
    "POSTLINE_DOMAIN_CHECK_STREAMS",
    "POSTLINE_DOMAIN_CHECK_TTL_SECONDS",
    "POSTLINE_DNS_TIMEOUT_SECONDS",
    "POSTLINE_DNS_NAMESERVER",
)
ALERT_VARIABLES = (
    "POSTLINE_ALERT_BOUNCE_RATE",
    "POSTLINE_ALERT_COMPLAINT_RATE",
    "POSTLINE_ALERT_MIN_SAMPLE",
    "POSTLINE_ALERT_WINDOW_HOURS",
)


def function_environment(endpoint: str, api_url: str) -> dict[str, str]:
    """The environment the functions get locally: the same variables the CDK stack sets in AWS."""
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **TABLES,
        "POSTLINE_QUEUE_URL_PREFIX": queue_url_prefix(endpoint),
        "POSTLINE_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
        "POSTLINE_SEND_EVENT_DELAY_SECONDS": str(SEND_EVENT_DELAY_SECONDS),
        "POSTLINE_DEFAULT_FROM": DEFAULT_FROM,
        "POSTLINE_TRACKING_BASE_URL": api_url,
        "POSTLINE_UNSUBSCRIBE_MAILTO": f"unsubscribe@{UNSUBSCRIBE_DOMAIN}",
        "POSTLINE_SIGNING_KEYS_SECRET": SIGNING_SECRET,
        "POSTLINE_CLAIM_CHECK_BUCKET": CLAIM_CHECK_BUCKET,
        "POSTLINE_EVENT_BUS": EVENT_BUS,
        "POSTLINE_APP_EVENTS": "all",  # locally every event, so their shapes can be seen (docs/events.md)
        # Locally a pushed template is sent within a second (in AWS the render function trusts its cached
        # pointer for the default 30 s): a developer pushes and sends at once, and so do the e2e tests.
        "POSTLINE_TEMPLATE_POINTER_TTL_SECONDS": "1",
        "POSTLINE_SCHEDULE_GROUP": SCHEDULE_GROUP,
        "POSTLINE_SCHEDULER_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/postline-scheduler",
        "POSTLINE_ALARM_TOPIC_ARN": topic_arn(ALARM_TOPIC),
        "POSTLINE_SES_EVENTS_TOPIC_ARN": topic_arn(SES_EVENTS_TOPIC),
        "POSTLINE_UNSUBSCRIBE_MAIL_TOPIC_ARN": topic_arn(UNSUBSCRIBE_MAIL_TOPIC),
        "POWERTOOLS_SERVICE_NAME": "postline",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "postline",
    }
    for stream in STREAMS:
        env[f"POSTLINE_CONFIGURATION_SET_{stream.upper()}"] = CONFIGURATION_SETS[stream]
    # The alerts' thresholds, when given to `local up`, as the deploy config's "alerts" gives them in AWS: a smaller
    # minimum sample lets a campaign pause itself with a few dozen emails (docs/analytics.md).
    env.update({name: value for name, value in os.environ.items() if name in ALERT_VARIABLES})
    # Recipient-domain hygiene is off locally unless asked for: the local stack's mail goes to example.com (whose
    # real DNS publishes a null MX) and to SES's simulator, often from a machine without a DNS (docs/doctor.md).
    env["POSTLINE_DOMAIN_CHECK_STREAMS"] = ""
    env.update({name: value for name, value in os.environ.items() if name in DOMAIN_CHECK_VARIABLES})
    return env


def signing_secret(state_dir: str) -> str:
    """The local signing keys, generated once per checkout and kept in the state folder (mode 0600), so links
    in emails already in the outbox keep working after a restart."""
    path = os.path.join(state_dir, "signing-keys.json")
    document = {"active": "k1", "keys": {"k1": _new_key()}}
    if os.path.exists(path):
        with open(path) as handle:
            document = json.load(handle)
    if "erasure_key" not in document:  # also upgrades a state folder from before erasure existed
        document["erasure_key"] = _new_key()
        descriptor = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(document, handle)
        os.replace(path + ".new", path)
    return json.dumps(document)


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def create_rate_limits_table(dynamodb, existing: set[str]) -> None:
    """The limiter's counters (postline.limiter), keyed as in the stack (infra/stacks/constants.py TABLES)."""
    name = TABLES["POSTLINE_RATE_LIMITS_TABLE"]
    if name not in existing:
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "bucket", "KeyType": "HASH"}, {"AttributeName": "window", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "bucket", "AttributeType": "S"},
                {"AttributeName": "window", "AttributeType": "S"},
            ],
        )


def create_stats_table(dynamodb, existing: set[str]) -> None:
    """The counters and their markers (postline.analytics), keyed as in the stack (infra/stacks/constants.py)."""
    name = TABLES["POSTLINE_STATS_TABLE"]
    if name not in existing:
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "scope", "KeyType": "HASH"}, {"AttributeName": "key", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "scope", "AttributeType": "S"},
                {"AttributeName": "key", "AttributeType": "S"},
            ],
        )


def create_campaigns_table(dynamodb, existing: set[str]) -> None:
    """The campaigns (postline.campaigns.store), keyed as in the stack (infra/stacks/constants.py TABLES)."""
    name = TABLES["POSTLINE_CAMPAIGNS_TABLE"]
    if name not in existing:
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "campaign_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "campaign_id", "AttributeType": "S"}],
        )


def _visibility_timeout(queue: str) -> int:
    return CAMPAIGN_TIMEOUT_SECONDS if queue == CAMPAIGN_QUEUE else VISIBILITY_TIMEOUT_SECONDS


def create_resources(session, endpoint: str, api_url: str, state_dir: str, ses_route: str = "sns") -> None:
    sqs = session.client("sqs")
    for name in all_queue_names():
        if name.endswith(queue_names.DLQ):
            continue
        dlq_url = sqs.create_queue(
            QueueName=queue_names.dead_letters(name), Attributes={"MessageRetentionPeriod": "1209600"}
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(_visibility_timeout(name)),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
                ),
                "DelaySeconds": str(SEND_EVENT_DELAY_SECONDS if name == SEND_EVENTS_QUEUE else 0),
            },
        )

    environment = function_environment(endpoint, api_url)
    bind_tables(settings_from_environ(environment))
    dynamodb = session.client("dynamodb")
    existing = set(dynamodb.list_tables()["TableNames"])
    for model in ALL_MODELS:
        if model.Meta.table_name not in existing:
            model.create_table(wait=True)
    dynamodb.update_time_to_live(
        TableName=EmailEvent.Meta.table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    create_rate_limits_table(dynamodb, existing)
    create_campaigns_table(dynamodb, existing)
    create_stats_table(dynamodb, existing)

    # The SNS route: SES publishes to the topic, which delivers to the events queue in SNS's envelope.
    sns = session.client("sns")
    sns.create_topic(Name=ALARM_TOPIC)
    topic = sns.create_topic(Name=SES_EVENTS_TOPIC)["TopicArn"]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(EVENTS_QUEUE), Attributes={"RawMessageDelivery": "false"}
    )
    # The EventBridge route: rules on the default bus, Send events to their own queue, which holds them back.
    events = session.client("events")
    postline_sets = list(CONFIGURATION_SETS.values())
    for rule, detail_type, queue in (
        (SES_EVENTS_RULE, [{"anything-but": ["Email Sent"]}], EVENTS_QUEUE),
        (SES_SEND_EVENTS_RULE, ["Email Sent"], SEND_EVENTS_QUEUE),
    ):
        events.put_rule(
            Name=rule,
            EventBusName="default",
            EventPattern=json.dumps(
                {
                    "source": ["aws.ses"],
                    "detail-type": detail_type,
                    "detail": {"mail": {"tags": {"ses:configuration-set": postline_sets}}},
                }
            ),
        )
        events.put_targets(Rule=rule, EventBusName="default", Targets=[{"Id": "queue", "Arn": queue_arn(queue)}])
    events.create_event_bus(Name=EVENT_BUS)
    events.put_rule(
        Name="postline-app-events", EventBusName=EVENT_BUS, EventPattern=json.dumps({"source": ["postline"]})
    )
    events.put_targets(
        Rule="postline-app-events",
        EventBusName=EVENT_BUS,
        Targets=[{"Id": "app-events-queue", "Arn": queue_arn(APP_EVENTS_QUEUE)}],
    )

    session.client("scheduler").create_schedule_group(Name=SCHEDULE_GROUP)
    session.client("s3").create_bucket(Bucket=CLAIM_CHECK_BUCKET)
    session.client("s3").create_bucket(Bucket=UNSUBSCRIBE_MAIL_BUCKET)
    mail_topic = sns.create_topic(Name=UNSUBSCRIBE_MAIL_TOPIC)["TopicArn"]
    sns.subscribe(
        TopicArn=mail_topic,
        Protocol="sqs",
        Endpoint=queue_arn(UNSUBSCRIBE_MAIL_QUEUE),
        Attributes={"RawMessageDelivery": "false"},
    )
    secrets_client = session.client("secretsmanager")
    try:
        secrets_client.create_secret(Name=SIGNING_SECRET, SecretString=signing_secret(state_dir))
    except secrets_client.exceptions.ResourceExistsException:
        pass

    sesv2 = session.client("sesv2")
    sesv2.create_email_identity(EmailIdentity=SENDING_DOMAIN)
    sesv2.put_email_identity_mail_from_attributes(
        EmailIdentity=SENDING_DOMAIN, MailFromDomain=MAIL_FROM_DOMAIN, BehaviorOnMxFailure="USE_DEFAULT_VALUE"
    )
    for name in CONFIGURATION_SETS.values():
        try:
            sesv2.create_configuration_set(ConfigurationSetName=name)
        except sesv2.exceptions.AlreadyExistsException:
            pass
        # As the stack's (infra/stacks/ses.py): what postline doctor checks, and the SES simulator publishes by.
        sesv2.create_configuration_set_event_destination(
            ConfigurationSetName=name,
            EventDestinationName=EVENT_DESTINATION,
            EventDestination=event_destination(ses_route),
        )


# The configuration sets' event destination, as the stack names and fills it (infra/stacks/constants.py).
EVENT_DESTINATION = "Events"
SES_EVENT_TYPES = (
    "SEND",
    "REJECT",
    "BOUNCE",
    "COMPLAINT",
    "DELIVERY",
    "DELIVERY_DELAY",
    "RENDERING_FAILURE",
    "SUBSCRIPTION",
)


def event_destination(ses_route: str) -> dict:
    """The SNS route leaves Send events out (the send stage records ``sent`` itself); EventBridge takes them all."""
    if ses_route == "sns":
        return {
            "Enabled": True,
            "MatchingEventTypes": [t for t in SES_EVENT_TYPES if t != "SEND"],
            "SnsDestination": {"TopicArn": topic_arn(SES_EVENTS_TOPIC)},
        }
    return {
        "Enabled": True,
        "MatchingEventTypes": list(SES_EVENT_TYPES),
        "EventBridgeDestination": {"EventBusArn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"},
    }
