"""Every name and fixed number the stack uses, in one place.

Physical names of tables, topics and most else are left to CloudFormation; the queues are named after the stack,
``<stack name>-<suffix>`` (postline.queue_names, shared with the library, which derives their URLs from one
prefix). Two stacks with different names can live in one account. What must stay stable is listed here: logical
groupings, the environment variables the library reads, and the stack output keys the operator CLI looks up.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration

from postline import queue_names

STREAMS = ("critical", "transactional", "marketing")

# Logical queue names (construct ids derive from them): each is the queue's physical name in a stack named
# "postline", the default, as in the local stack. A stack names them <its name>-<suffix> (QUEUE_SUFFIXES).
INBOUND_QUEUES = {stream: queue_names.name("postline", queue_names.inbound(stream)) for stream in STREAMS}
SEND_QUEUES = {stream: queue_names.name("postline", queue_names.send(stream)) for stream in STREAMS}
# the EventBridge rule on the default bus and the SQS queue behind it
SES_EVENTS = queue_names.name("postline", queue_names.SES_EVENTS)
# SES's Send events take their own rule and queue, which holds each one back for SEND_EVENT_DELAY: by then the
# email's Delivery (or bounce) has usually moved its record past ``sent``, and the Send event only reads it
# (half a read unit) instead of writing it (a write unit). postline.events explains; the send stage must know
# the delay (Env.SEND_EVENT_DELAY_SECONDS), as it waits that long before it looks at a claim again.
SES_SEND_EVENTS = queue_names.name("postline", queue_names.SES_SEND_EVENTS)
# The campaigns' control queue: each message runs one stretch of a campaign's fan-out (docs/campaigns-design.md).
CAMPAIGN_QUEUE = queue_names.name("postline", queue_names.CAMPAIGNS)
# Where EventBridge Scheduler puts what a schedule could not deliver (its SendMessage call, with the error), named
# <stack name>-schedules-dlq like the others. No queue feeds it: it is a dead-letter queue of schedules only.
SCHEDULES_DLQ_SUFFIX = queue_names.dead_letters("schedules")
# The optional queue of the application events (config app_events_queue): a rule on the stack's bus fills
# <stack name>-app-events, which `postline events` and an application read; its DLQ is <...>-app-events-dlq.
APP_EVENTS_QUEUE_SUFFIX = "app-events"
QUEUE_SUFFIXES = {
    **{INBOUND_QUEUES[stream]: queue_names.inbound(stream) for stream in STREAMS},
    **{SEND_QUEUES[stream]: queue_names.send(stream) for stream in STREAMS},
    SES_EVENTS: queue_names.SES_EVENTS,
    SES_SEND_EVENTS: queue_names.SES_SEND_EVENTS,
    CAMPAIGN_QUEUE: queue_names.CAMPAIGNS,
}
SEND_EVENT_DELAY = Duration.seconds(60)
SES_SEND_EVENT_DETAIL_TYPE = "Email Sent"  # SES's detail-type for a Send event on EventBridge
MAX_RECEIVE_COUNT = 5
SES_EVENTS_CONCURRENCY = 3  # per events queue: events are cheap to apply; the ceiling keeps a bounce storm in line
# SES's events gathered for up to a second into invocations of up to 100: at a steady 50 emails a second the
# mapping otherwise invokes ses_events with one or two events at a time, each invocation paying its receive, its
# delete, its record reads, its counter writes and its application events once (decisions.md, "ses_events gathers
# SES's events for a second"). The local stack's pollers gather the same way (postline_cli/local/resources.py).
SES_EVENTS_BATCH_SIZE = 100
SES_EVENTS_BATCHING_WINDOW = Duration.seconds(1)
QUEUE_RETENTION = Duration.days(4)
DLQ_RETENTION = Duration.days(14)  # the most SQS allows: time to find out why and redrive
# Lambda requires the visibility timeout to cover the function timeout; AWS recommends six times it so
# that retries inside the event source mapping never make a message visible twice.
VISIBILITY_TIMEOUT_FACTOR = 6


@dataclass(frozen=True)
class TableSpec:
    partition_key: tuple[str, str]
    sort_key: tuple[str, str] | None = None
    ttl_attribute: str | None = None


# DynamoDB tables: keys as in layers/common/postline/models.py (attribute name, S|N).
TABLES = {
    "messages": TableSpec(("message_id", "S"), ttl_attribute="expires_at"),
    "email_events": TableSpec(("message_id", "S"), ("time_type", "S"), ttl_attribute="expires_at"),
    "email_suppressions": TableSpec(("email", "S"), ("scope", "S")),
    "templates": TableSpec(("name", "S"), ("version", "N")),
    "campaigns": TableSpec(("campaign_id", "S")),
    "rate_limits": TableSpec(("bucket", "S"), ("window", "S"), ttl_attribute="expires_at"),
    "stats": TableSpec(("scope", "S"), ("key", "S"), ttl_attribute="expires_at"),
}
# Tables that hold sending history (expiring records and events, and the counters and markers analytics derives from
# them), backed up only when the config asks; the others (suppressions, templates, ...) are the product's memory and
# always have point-in-time recovery.
HISTORY_TABLES = ("messages", "email_events", "stats")


@dataclass(frozen=True)
class FunctionSpec:
    memory_mb: int
    timeout: Duration
    description: str


# One entry per functions/<name>/ directory, each exposing app.handler.
FUNCTIONS = {
    "render": FunctionSpec(512, Duration.seconds(30), "Validates, renders and queues an email for sending"),
    "send": FunctionSpec(512, Duration.seconds(60), "Claims a rendered email and sends it through SES"),
    "ses_events": FunctionSpec(256, Duration.seconds(30), "Records SES delivery events and suppressions"),
    "track_open": FunctionSpec(256, Duration.seconds(10), "Records an open and returns a 1x1 GIF"),
    "track_click": FunctionSpec(256, Duration.seconds(10), "Records a click and redirects to the signed target"),
    "unsubscribe": FunctionSpec(256, Duration.seconds(10), "Confirmation page and RFC 8058 one-click unsubscribe"),
    # A run stops itself after 60 s of fan-out and hands on; the rest of the timeout is room for its last page.
    "campaign": FunctionSpec(512, Duration.seconds(120), "Hands a campaign's audience on to the marketing queue"),
    "unsubscribe_mail": FunctionSpec(
        256, Duration.seconds(30), "Unsubscribes by the emails sent to the mailto address"
    ),
}
HANDLER = "app.handler"
# One control message per invocation (each is a whole run), at most two runs at once: the fan-out's pace is set by
# the marketing queue's bounded backlog, not by more runs, and a second campaign need not wait for the first's run.
CAMPAIGN_BATCH_SIZE = 1
CAMPAIGN_CONCURRENCY = 2
# Lambda's concurrent executions per account and region. AWS's usual quota is 1,000, but a new account may start at
# 10, below what postline's queue consumers alone may use (each event source mapping runs at least 2): the config's
# lambda_concurrency_limit states the account's, and the stack's ceilings must fit in it (docs/deploy.md).
DEFAULT_LAMBDA_CONCURRENCY_LIMIT = 1000
# What the tracking API's functions need at once, counted beside the queue consumers' ceilings (the API's functions
# have none: an open or click takes tens of milliseconds, so the default 100 requests a second keep about 5 busy).
API_CONCURRENCY_ALLOWANCE = 10
# The longest an email waits on a send queue on purpose, per message: a job SES refuses for now (its rate or quota,
# the limiter's warm-up cap, a campaign's window) goes back delayed up to SQS's 15 minutes, as a new message; a
# receive whose invocation dies stays hidden for the queue's visibility timeout. An older message means trouble.
SQS_MAX_DELAY = Duration.minutes(15)
MIN_SEND_QUEUE_AGE_ALARM_SECONDS = int(
    SQS_MAX_DELAY.to_seconds() + FUNCTIONS["send"].timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR
)
# Where the CLI uploads each campaign's normalised audience in the claim-check bucket (campaigns/<id>/...).
CAMPAIGN_AUDIENCE_PREFIX = "campaigns/"
COMMON_LAYER = "postline-common"  # the shared layer, published at deploy time (stacks/layer.py)

# The regions where SES receives email (the AWS General Reference's "Email receiving endpoints", 2024): unsubscribe
# by email needs one (stacks/receiving.py). Add a region here when AWS does.
SES_RECEIVING_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-central-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-northeast-1",
)
UNSUBSCRIBE_MAIL_QUEUE = queue_names.name("postline", "unsubscribe-mail")  # logical name, like the others
# Two batches at once at most (the least SQS allows): people write to the address a few times a day.
UNSUBSCRIBE_MAIL_CONCURRENCY = 2

# HTTP API routes -> function. ANY takes what a path's own routes do not: HEAD and OPTIONS are answered, and any
# other method gets 405 with Allow, by the function (postline.public_http) rather than API Gateway's bare 404.
ROUTES = (
    ("GET", "/o/{token}", "track_open"),
    ("GET", "/c/{token}", "track_click"),
    ("GET", "/u/{token}", "unsubscribe"),
    ("POST", "/u/{token}", "unsubscribe"),
    ("ANY", "/o/{token}", "track_open"),
    ("ANY", "/c/{token}", "track_click"),
    ("ANY", "/u/{token}", "unsubscribe"),
)

# How SES's events reach the events queue (the deploy config's ses_event_route): through the SNS topic (the
# default: durable, what SES's users expect) or the default EventBridge bus (free, but documented as best effort).
SES_EVENT_ROUTES = ("sns", "eventbridge")
# SES events of postline's configuration sets. OPEN and CLICK are left out on purpose: postline tracks them itself
# with signed links, and enabling them in SES would make SES add its own pixel and rewrite every link.
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
# The SNS route leaves out SEND: every SNS publish is billed ($0.50 per million), the send stage records `sent`
# itself the moment SES accepts, and a claim its crash leaves open is settled by any later event of the email
# (DELIVERY, BOUNCE, COMPLAINT, REJECT, DELIVERY_DELAY), or parked (docs/delivery-guarantees.md).
SNS_EVENT_TYPES = tuple(kind for kind in SES_EVENT_TYPES if kind != "SEND")
# The sending identity's feedback notifications SES can send to the topic (with the email's original headers,
# which carry postline's message id); the deploy config's identity_notifications chooses among them.
IDENTITY_NOTIFICATION_TYPES = ("Bounce", "Complaint", "Delivery")
DEFAULT_IDENTITY_NOTIFICATIONS = ("Bounce", "Complaint")
# SES events counted as CloudWatch metrics per configuration set, for the dashboard.
SES_METRIC_EVENT_TYPES = ("SEND", "DELIVERY", "BOUNCE", "COMPLAINT", "REJECT")
SES_CONFIGURATION_SET_DIMENSION = "ses:configuration-set"
# IP pools: critical and transactional share one; marketing never shares with them.
IP_POOL_OF_STREAM = {"critical": "transactional", "transactional": "transactional", "marketing": "marketing"}
IP_POOLS = tuple(dict.fromkeys(IP_POOL_OF_STREAM.values()))  # "transactional", "marketing"

# The shared sending-rate limiter (layers/common/postline/limiter.py): marketing may use this share of the rate
# while other mail flows (the rest is a reserve for critical and transactional mail); the config's
# marketing_rate_share overrides it.
DEFAULT_MARKETING_RATE_SHARE = 0.7
# The limiter stops marketing at this share of the 24-hour quota used (transactional at 97%, critical uses it all);
# the SesQuotaLow alarm fires at the same point, so the operator hears of it when newsletters stop.
QUOTA_ALARM_PERCENT = 90
# What happened to the emails, counted per stream by the functions (postline.analytics, Powertools' embedded metric
# format, Count unit) with the dimensions service=POWERTOOLS_SERVICE_NAME and stream=<stream>: the dashboard's
# per-stream rows. Outcomes first, then engagement.
EMAIL_OUTCOME_METRICS = (
    "Sent",
    "Delivered",
    "HardBounced",
    "SoftBounced",
    "Complained",
    "Rejected",
    "Failed",
    "Suppressed",
)
EMAIL_ENGAGEMENT_METRICS = ("Opened", "MachineOpened", "Clicked", "Unsubscribed")
METRIC_STREAM_DIMENSION = "stream"
# Custom metrics the send function publishes (Powertools' embedded metric format, in METRICS_NAMESPACE with the
# dimension service=POWERTOOLS_SERVICE_NAME that Powertools adds by default).
METRIC_QUOTA_USED_PERCENT = "SesQuotaUsedPercent"  # share of the 24-hour quota used, 0-100, at each refresh
METRIC_THROTTLED_SENDS = "SesThrottledSends"  # sends SES refused as throttled
METRIC_RATE_LIMITER_WAITS = "RateLimiterWaits"  # emails that had to wait for tokens
METRIC_HELD_UNVERIFIED = "HeldUnverified"  # per stream: emails held because SES has not verified an identity
METRIC_SERVICE_DIMENSION = "service"

# Account-level SES reputation alarms (AWS reviews an account at 5% bounces / 0.1% complaints; pausing
# sends is automatic at 10% / 0.5%).
BOUNCE_RATE_ALARM = 0.05
COMPLAINT_RATE_ALARM = 0.001

POWERTOOLS_SERVICE_NAME = "postline"
METRICS_NAMESPACE = "postline"
SCHEDULE_GROUP = "postline"
# The stack's name starts every queue's name, which SQS limits to 80 characters, and the schedule group's
# (<stack name>-postline), which EventBridge Scheduler limits to 64.
SCHEDULE_GROUP_MAX_NAME = 64
LONGEST_QUEUE_SUFFIX = max(queue_names.suffixes(STREAMS), key=len)  # send-transactional-dlq
MAX_STACK_NAME_LENGTH = min(queue_names.max_stack_name(STREAMS), SCHEDULE_GROUP_MAX_NAME - len(f"-{SCHEDULE_GROUP}"))


class Env:
    """Environment variables the library reads (layers/common/postline/settings.py)."""

    MESSAGES_TABLE = "POSTLINE_MESSAGES_TABLE"
    EVENTS_TABLE = "POSTLINE_EVENTS_TABLE"
    SUPPRESSIONS_TABLE = "POSTLINE_SUPPRESSIONS_TABLE"
    TEMPLATES_TABLE = "POSTLINE_TEMPLATES_TABLE"
    CAMPAIGNS_TABLE = "POSTLINE_CAMPAIGNS_TABLE"
    RATE_LIMITS_TABLE = "POSTLINE_RATE_LIMITS_TABLE"
    STATS_TABLE = "POSTLINE_STATS_TABLE"
    ALARM_TOPIC_ARN = "POSTLINE_ALARM_TOPIC_ARN"
    SES_EVENTS_TOPIC_ARN = "POSTLINE_SES_EVENTS_TOPIC_ARN"  # the SNS route only: the one topic ses_events accepts
    # Campaign and stream alerts (postline.analytics.alerts), set only when the config's "alerts" gives them
    ALERT_BOUNCE_RATE = "POSTLINE_ALERT_BOUNCE_RATE"
    ALERT_COMPLAINT_RATE = "POSTLINE_ALERT_COMPLAINT_RATE"
    ALERT_MIN_SAMPLE = "POSTLINE_ALERT_MIN_SAMPLE"
    ALERT_WINDOW_HOURS = "POSTLINE_ALERT_WINDOW_HOURS"
    # https://sqs.<region>.<url suffix>/<account>/<stack name>-: the library adds each queue's suffix
    QUEUE_URL_PREFIX = "POSTLINE_QUEUE_URL_PREFIX"
    CONFIGURATION_SET_PREFIX = "POSTLINE_CONFIGURATION_SET_"
    MAX_RECEIVE_COUNT = "POSTLINE_MAX_RECEIVE_COUNT"
    SEND_EVENT_DELAY_SECONDS = "POSTLINE_SEND_EVENT_DELAY_SECONDS"
    DEFAULT_FROM = "POSTLINE_DEFAULT_FROM"
    TRACKING_BASE_URL = "POSTLINE_TRACKING_BASE_URL"
    UNSUBSCRIBE_MAILTO = "POSTLINE_UNSUBSCRIBE_MAILTO"
    SIGNING_KEYS_SECRET = "POSTLINE_SIGNING_KEYS_SECRET"  # noqa: S105 - a variable's name, not a secret
    CLAIM_CHECK_BUCKET = "POSTLINE_CLAIM_CHECK_BUCKET"
    EVENT_BUS = "POSTLINE_EVENT_BUS"
    MIRROR_SES_SUPPRESSIONS = "POSTLINE_MIRROR_SES_SUPPRESSIONS"
    SCHEDULE_GROUP = "POSTLINE_SCHEDULE_GROUP"
    SCHEDULER_ROLE_ARN = "POSTLINE_SCHEDULER_ROLE_ARN"
    SCHEDULE_DLQ_ARN = "POSTLINE_SCHEDULE_DLQ_ARN"  # only where schedules are created (ses_events, campaign)
    EVENT_TTL_DAYS = "POSTLINE_EVENT_TTL_DAYS"
    MESSAGE_TTL_DAYS = "POSTLINE_MESSAGE_TTL_DAYS"
    APP_EVENTS = "POSTLINE_APP_EVENTS"
    # The sending-rate limiter: overrides of SES's own figures (set only when the config gives them), the share of
    # the rate marketing may use (always set), and the IP warm-up plan as JSON (set only with a warm-up):
    # {"start": "YYYY-MM-DD", "pools": {"<pool>": ["<stream>", ...]}, "curve": [[day, emails per day], ...]}
    # ("curve" only when the config gives one; else the library's own).
    MAX_SEND_RATE = "POSTLINE_MAX_SEND_RATE"
    MAX_24_HOUR_SEND = "POSTLINE_MAX_24_HOUR_SEND"
    MARKETING_RATE_SHARE = "POSTLINE_MARKETING_RATE_SHARE"
    WARMUP_PLAN = "POSTLINE_WARMUP_PLAN"
    # The streams sent through an SMTP relay, as JSON {stream: {"host", "port", "tls", "secret"}} (set only when the
    # config's "transports" names one); the secret is the credentials' name or ARN, never the credentials.
    SMTP_RELAYS = "POSTLINE_SMTP_RELAYS"
    TRACE_DISABLED = "POWERTOOLS_TRACE_DISABLED"
    SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    LOG_LEVEL = "LOG_LEVEL"


TABLE_ENV = {
    "messages": Env.MESSAGES_TABLE,
    "email_events": Env.EVENTS_TABLE,
    "email_suppressions": Env.SUPPRESSIONS_TABLE,
    "templates": Env.TEMPLATES_TABLE,
    "campaigns": Env.CAMPAIGNS_TABLE,
    "rate_limits": Env.RATE_LIMITS_TABLE,
    "stats": Env.STATS_TABLE,
}


def pascal(name: str) -> str:
    """postline-send-critical / email_events -> PostlineSendCritical / EmailEvents (ids, output keys)."""
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


class Outputs:
    """Stack output keys; each is also exported as ``<stack name>-<key>``. The CLI reads these."""

    @staticmethod
    def inbound_queue_url(stream: str) -> str:
        return f"InboundQueueUrl{pascal(stream)}"

    @staticmethod
    def inbound_dlq_url(stream: str) -> str:
        return f"InboundDlqUrl{pascal(stream)}"

    @staticmethod
    def send_queue_url(stream: str) -> str:
        return f"SendQueueUrl{pascal(stream)}"

    @staticmethod
    def send_dlq_url(stream: str) -> str:
        return f"SendDlqUrl{pascal(stream)}"

    @staticmethod
    def configuration_set(stream: str) -> str:
        return f"ConfigurationSet{pascal(stream)}"

    @staticmethod
    def table(name: str) -> str:
        return f"Table{pascal(name)}"

    SES_EVENTS_QUEUE_URL = "SesEventsQueueUrl"
    SES_EVENTS_TOPIC_ARN = "SesEventsTopicArn"
    SES_EVENTS_RULE_ARN = "SesEventsRuleArn"
    SES_SEND_EVENTS_QUEUE_URL = "SesSendEventsQueueUrl"
    SES_SEND_EVENTS_RULE_ARN = "SesSendEventsRuleArn"
    CAMPAIGN_QUEUE_URL = "CampaignQueueUrl"
    CAMPAIGN_DLQ_URL = "CampaignDlqUrl"
    EVENT_BUS_NAME = "EventBusName"
    EVENT_BUS_ARN = "EventBusArn"
    APP_EVENTS_QUEUE_URL = "AppEventsQueueUrl"  # only with the config's app_events_queue
    APP_EVENTS_DLQ_URL = "AppEventsDlqUrl"
    APP_EVENTS_READER_POLICY = "AppEventsReaderPolicyArn"
    API_URL = "ApiUrl"
    # the emails sent to the mailto address (postline suppressions inbox)
    UNSUBSCRIBE_MAIL_BUCKET = "UnsubscribeMailBucket"
    UNSUBSCRIBE_MAIL_QUEUE_URL = "UnsubscribeMailQueueUrl"
    UNSUBSCRIBE_MAIL_DLQ_URL = "UnsubscribeMailDlqUrl"
    UNSUBSCRIBE_MAIL_ADDRESS = "UnsubscribeMailAddress"
    TRACKING_BASE_URL = "TrackingBaseUrl"
    CLAIM_CHECK_BUCKET = "ClaimCheckBucket"
    SIGNING_KEYS_SECRET = "SigningKeysSecretArn"  # noqa: S105 - an output's name, not a secret
    PRODUCER_POLICY = "ProducerPolicyArn"
    SCHEDULER_ROLE = "SchedulerRoleArn"
    SCHEDULE_GROUP = "ScheduleGroupName"
    SCHEDULE_DLQ_ARN = "ScheduleDlqArn"
    SCHEDULE_DLQ_URL = "ScheduleDlqUrl"
    ALARM_TOPIC = "AlarmTopicArn"
    DASHBOARD = "DashboardName"
    DKIM_RECORDS_COMMAND = "DkimRecordsCommand"  # adopt_existing_identity: how to read the DKIM records from SES
    DNS_RECORD_PREFIX = "Dns"  # + DkimRecord1..3, MailFromMxRecord, MailFromSpfRecord, DmarcRecord, ApiDomainRecord
