"""Settings: one validated model built once per container from the environment.

Resource names are never defaulted: a function started without them fails at cold start with the
list of what is missing. Tunables (intervals, sizes) have documented defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from . import queue_names
from .validated import Field, Validated, ValidationError, field_validator

STREAMS = ("critical", "transactional", "marketing")
APP_EVENT_NAMES = (
    "email.sent",
    "email.delivered",
    "email.bounced",
    "email.complained",
    "email.opened",
    "email.clicked",
    "email.unsubscribed",
    "email.failed",
)
# What needs the application to act: the address is bad, the person objected, or the email did not go.
DEFAULT_APP_EVENTS = ("email.bounced", "email.complained", "email.unsubscribed", "email.failed")


# How long after its delay a Send event is applied, at most, short of a backlog in the events queue.
SEND_EVENT_MARGIN_SECONDS = 60


class ConfigurationError(RuntimeError):
    """A required setting is missing or invalid."""


Name = Annotated[str, Field(min_length=1)]


@dataclass(frozen=True, init=False)  # validated on construction (see validated.py), as the pydantic model was
class Settings(Validated):
    messages_table: Name
    events_table: Name
    suppressions_table: Name
    templates_table: Name
    # What every queue's URL starts with, ``https://sqs.<region>.<url suffix>/<account>/<stack name>-``: the queues
    # are named ``<stack name>-<suffix>`` (postline.queue_names), and the queue fields (QUEUE_FIELDS) are derived
    # from it (settings_from_environ), one variable instead of a dozen URLs in Lambda's 4 KB of environment.
    queue_url_prefix: Name
    # stream -> URL of the inbound queue (soft-bounce retries go back through it)
    inbound_queue_urls: dict[str, str]
    # stream -> URL of the send queue the render function writes to
    send_queue_urls: dict[str, str]
    # inbound queue name -> URL of its DLQ, where rejected messages go with their reason
    inbound_dlq_urls: dict[str, str]
    # send queue name -> URL of its DLQ, where jobs postline gives up on go with their reason
    send_dlq_urls: dict[str, str]
    # where SES event records that cannot be read go, with the reason
    ses_events_dlq_url: Name
    # stream -> SES configuration set name
    configuration_sets: dict[str, str] | None = None
    # The resources below marked USED_BY are None in a function that does not read them (see USED_BY).
    default_from: str | None = None
    tracking_base_url: str | None = None
    unsubscribe_mailto: str | None = None
    signing_keys_secret: str | None = None
    claim_check_bucket: str | None = None
    event_bus: str | None = None  # where the user's application receives postline's events (app_events)
    # EventBridge Scheduler: one-time schedules for soft-bounce retries later than SQS can delay a message
    schedule_group: str | None = None
    scheduler_role_arn: str | None = None
    # The shared sending-rate limiter's counters (postline.limiter)
    rate_limits_table: str | None = None
    # postline.campaigns.store; the send stage reads it for a campaign's pause and window
    campaigns_table: str | None = None
    # Counters per campaign, template and stream, and the markers that count each event once (postline.analytics)
    stats_table: str | None = None
    # The SNS topic the stack's CloudWatch alarms notify: campaign and stream alerts go there too
    alarm_topic_arn: str | None = None
    # The SNS topic SES publishes the stack's events to (the SNS route); an SNS message from any other topic is refused
    # (postline.events). None on the EventBridge route, which has no topic: every SNS message is then refused.
    ses_events_topic_arn: str | None = None
    # The SNS topic SES's receipt rule notifies of each email to the unsubscribe address; unsubscribe_mail refuses an
    # SNS message from any other topic (postline.inbound_mail).
    unsubscribe_mail_topic_arn: str | None = None
    # Where campaign control messages go (postline.campaigns.control): derived from the queue URL prefix.
    campaign_queue_url: Name  # type: ignore[misc]  # no default after defaults: Validated's __init__ takes keywords
    # Where EventBridge Scheduler puts a schedule's call it could not make (the stack gives it to the functions that
    # create schedules); None: schedules without one, as in the local stack, whose scheduler fires them itself.
    schedule_dlq_arn: str | None = None
    # Tunables
    claim_check_threshold_bytes: int = Field(default=200_000, gt=0)
    stale_claim_seconds: int = Field(default=900, gt=0)
    # How long SES's Send events wait in their queue before they are applied (the queue's delivery delay, which
    # the stack sets here too). A claim is looked at again only once its Send event can have been applied.
    send_event_delay_seconds: int = Field(default=60, ge=0, le=900)
    max_message_bytes: int = Field(default=64_000, gt=0)
    template_pointer_ttl_seconds: int = Field(default=30, ge=0)
    # How long event rows (deliveries, opens, clicks...) and message records are kept (DynamoDB TTL): 30 days, as
    # SendGrid and Mailgun keep them (docs/cost-model.md prices 90). Opens and clicks are recorded while the record
    # exists; unsubscribe links work without it (they carry the erased name).
    event_ttl_days: int = Field(default=30, gt=0)
    message_ttl_days: int = Field(default=30, gt=0)
    send_concurrency: int = Field(default=10, gt=0)
    # The queues' redrive policy: on a record's last receive postline moves it to the DLQ itself, with the reason.
    max_receive_count: int = Field(default=5, gt=0)
    # How long an email waits for SES to take it again (throttled, daily quota spent, sending paused) before it
    # ends as failed. It waits on its queue, re-queued with a delay, without spending receives.
    max_send_wait_seconds: int = Field(default=72 * 3600, gt=0)
    # Also add hard bounces and complaints to SES's account-level suppression list.
    mirror_ses_suppressions: bool = False
    soft_bounce_window_seconds: int = Field(default=72 * 3600, gt=0)
    soft_bounce_first_retry_seconds: int = Field(default=600, ge=60)
    # Streams whose soft-bounced emails are sent again; a late newsletter is worse than none, so by default
    # marketing soft bounces only count towards the address's soft-bounce history.
    soft_bounce_retry_streams: tuple[str, ...] = ("critical", "transactional")
    # The events published for the user's application; the rest are recorded but not announced (each published
    # event is billed, and sent/delivered/opened/clicked come with nearly every email).
    app_events: tuple[str, ...] = DEFAULT_APP_EVENTS
    # The SES limits the limiter keeps to: SES's own (GetAccount) unless the deploy config replaces them.
    max_send_rate: float | None = Field(default=None, gt=0)
    max_24_hour_send: int | None = Field(default=None, gt=0)
    quota_refresh_seconds: int = Field(default=300, ge=10)
    # The share of the coming slots marketing may hold; the rest waits for critical and transactional mail.
    marketing_rate_share: float = Field(default=0.7, gt=0, le=1)
    # A standard dedicated IP pool's warm-up: JSON {"start": "YYYY-MM-DD", "pools": {pool: [streams]}, "curve":
    # [[day, emails], ...]} (postline.limiter.WarmupPlan); empty for none.
    warmup_plan: str = ""
    # The streams that send through an SMTP relay instead of SES's API: JSON {stream: {"host", "port", "tls",
    # "secret"}} (postline.smtp.parse_relays); empty: every stream through SES's API.
    smtp_relays: str = ""
    # How long a send invocation waits for its slots before it leaves the rest of its batch on the queue.
    max_token_wait_seconds: int = Field(default=10, ge=0, le=40)
    # How much sending a campaign keeps queued ahead on the marketing queues, in seconds at the marketing rate
    # (at least 1,000 emails): pause, cancel and a window's end reach what is queued within about a minute.
    campaign_backlog_seconds: int = Field(default=120, gt=0)
    # Alerts (postline.analytics.alerts): a campaign whose bounce or complaint rate reaches these over the last
    # ``alert_window_hours``, once at least ``alert_min_sample`` of its emails were sent in them, is paused; a
    # stream past them raises the alert alone. SES reviews an account at 5 % bounces and 0.1 % complaints.
    alert_bounce_rate: float = Field(default=0.05, gt=0, le=1)
    alert_complaint_rate: float = Field(default=0.001, gt=0, le=1)
    alert_min_sample: int = Field(default=100, gt=0)
    alert_window_hours: int = Field(default=24, gt=0, le=24 * 14)
    # Recipient-domain hygiene (postline.domains): the streams whose recipients' domains are looked up before
    # rendering, a message to one that cannot receive mail rejected as undeliverable_domain; how long an answer is
    # kept (per container and in the events table); how long the DNS may take (then the email goes: fail open); and
    # the DNS server to ask, HOST or HOST:PORT (empty: the system's resolver).
    domain_check_streams: tuple[str, ...] = ("marketing",)
    domain_check_ttl_seconds: int = Field(default=86_400, gt=0)
    dns_timeout_seconds: float = Field(default=2.0, gt=0, le=10)
    dns_nameserver: str = ""

    @field_validator("inbound_queue_urls", "send_queue_urls", "configuration_sets")
    @classmethod
    def _every_stream(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        missing = [s for s in STREAMS if not value.get(s)]
        if missing:
            raise ValueError(f"needs an entry for every stream, missing {missing}")
        return value

    @field_validator("soft_bounce_retry_streams", "domain_check_streams")
    @classmethod
    def _known_streams(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}")
        return value

    @field_validator("app_events")
    @classmethod
    def _known_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(APP_EVENT_NAMES)
        if unknown:
            raise ValueError(f"unknown events {sorted(unknown)} (known: {', '.join(APP_EVENT_NAMES)}, or all)")
        return value

    @field_validator("warmup_plan")
    @classmethod
    def _readable_plan(cls, value: str) -> str:
        if value:
            from .limiter import WarmupPlan  # only a deployment with a warm-up pays for the import

            try:
                WarmupPlan.from_json(value)
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(
                    f'not a warm-up plan ({error!r}): expected JSON {{"start": "YYYY-MM-DD", '
                    f'"pools": {{pool: [streams]}}, "curve": [[day, emails], ...]}}'
                ) from None
        return value

    @field_validator("smtp_relays")
    @classmethod
    def _readable_relays(cls, value: str) -> str:
        if value:
            from .smtp import parse_relays  # only a deployment with a relay pays for the import

            parse_relays(value, STREAMS)
        return value

    def _problems_together(self) -> list[tuple[str, str]]:
        # A claim younger than this may have an email SES accepted whose Send event is not applied yet.
        settled_by = self.send_event_delay_seconds + SEND_EVENT_MARGIN_SECONDS
        if self.stale_claim_seconds <= settled_by:
            return [
                (
                    "stale_claim_seconds",
                    f"must be more than send_event_delay_seconds + {SEND_EVENT_MARGIN_SECONDS}"
                    f" ({settled_by}): a claim must not go stale before its Send event is applied",
                )
            ]
        return []

    @field_validator("tracking_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("queue_url_prefix")
    @classmethod
    def _queue_url_prefix(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or "/" not in value.split("://", 1)[1].rstrip("/"):
            raise ValueError(
                "must be an http(s) URL ending in the start of a queue's name, like "
                "https://sqs.<region>.amazonaws.com/<account>/<stack name>-"
            )
        return value


# The resources only some functions read, and the functions that read them. Lambda allows 4 KB of environment per
# function, so each function is given only these (infra/stacks/functions.py) and checks only these at cold start
# (get_settings(function)); in the others they are None. Every other required setting goes to every function. A
# function whose code starts reading one of them must be added here, or its cold start passes and the read fails.
USED_BY: dict[str, tuple[str, ...]] = {
    "default_from": ("render",),
    "tracking_base_url": ("render",),
    "unsubscribe_mailto": ("render",),
    "configuration_sets": ("send",),
    "claim_check_bucket": ("render", "send", "campaign"),
    # tokens: render signs them, the HTTP functions and unsubscribe_mail check them, ses_events and campaign hash
    # erased addresses
    "signing_keys_secret": (
        "render",
        "ses_events",
        "track_open",
        "track_click",
        "unsubscribe",
        "campaign",
        "unsubscribe_mail",
    ),
    "event_bus": ("send", "ses_events", "track_open", "track_click", "unsubscribe", "campaign", "unsubscribe_mail"),
    "schedule_group": ("ses_events", "campaign"),
    "scheduler_role_arn": ("ses_events", "campaign"),
    "rate_limits_table": ("send", "campaign"),
    "campaigns_table": ("send", "ses_events", "campaign"),  # ses_events: an alert pauses a campaign
    "stats_table": ("render", "send", "ses_events", "track_open", "track_click", "unsubscribe", "unsubscribe_mail"),
    "alarm_topic_arn": ("ses_events",),  # the alerts are checked where bounces and complaints arrive
    "unsubscribe_mail_topic_arn": ("unsubscribe_mail",),  # the one topic whose messages it reads
}


# Environment variable -> field. Per-stream settings are one variable per stream so that CloudFormation can fill
# each with a token. The queues' URLs are not among them: one prefix gives them all (queue_urls).
ENVIRONMENT = {
    "POSTLINE_MESSAGES_TABLE": "messages_table",
    "POSTLINE_EVENTS_TABLE": "events_table",
    "POSTLINE_SUPPRESSIONS_TABLE": "suppressions_table",
    "POSTLINE_TEMPLATES_TABLE": "templates_table",
    "POSTLINE_QUEUE_URL_PREFIX": "queue_url_prefix",
    "POSTLINE_MAX_RECEIVE_COUNT": "max_receive_count",
    "POSTLINE_MAX_SEND_WAIT_SECONDS": "max_send_wait_seconds",
    "POSTLINE_DEFAULT_FROM": "default_from",
    "POSTLINE_TRACKING_BASE_URL": "tracking_base_url",
    "POSTLINE_UNSUBSCRIBE_MAILTO": "unsubscribe_mailto",
    "POSTLINE_SIGNING_KEYS_SECRET": "signing_keys_secret",
    "POSTLINE_CLAIM_CHECK_BUCKET": "claim_check_bucket",
    "POSTLINE_CLAIM_CHECK_THRESHOLD_BYTES": "claim_check_threshold_bytes",
    "POSTLINE_STALE_CLAIM_SECONDS": "stale_claim_seconds",
    "POSTLINE_SEND_EVENT_DELAY_SECONDS": "send_event_delay_seconds",
    "POSTLINE_MAX_MESSAGE_BYTES": "max_message_bytes",
    "POSTLINE_TEMPLATE_POINTER_TTL_SECONDS": "template_pointer_ttl_seconds",
    "POSTLINE_EVENT_TTL_DAYS": "event_ttl_days",
    "POSTLINE_MESSAGE_TTL_DAYS": "message_ttl_days",
    "POSTLINE_APP_EVENTS": "app_events",
    "POSTLINE_SEND_CONCURRENCY": "send_concurrency",
    "POSTLINE_EVENT_BUS": "event_bus",
    "POSTLINE_SCHEDULE_GROUP": "schedule_group",
    "POSTLINE_SCHEDULER_ROLE_ARN": "scheduler_role_arn",
    "POSTLINE_SCHEDULE_DLQ_ARN": "schedule_dlq_arn",
    "POSTLINE_SOFT_BOUNCE_WINDOW_SECONDS": "soft_bounce_window_seconds",
    "POSTLINE_MIRROR_SES_SUPPRESSIONS": "mirror_ses_suppressions",
    "POSTLINE_SOFT_BOUNCE_FIRST_RETRY_SECONDS": "soft_bounce_first_retry_seconds",
    "POSTLINE_SOFT_BOUNCE_RETRY_STREAMS": "soft_bounce_retry_streams",
    "POSTLINE_RATE_LIMITS_TABLE": "rate_limits_table",
    "POSTLINE_CAMPAIGNS_TABLE": "campaigns_table",
    "POSTLINE_CAMPAIGN_BACKLOG_SECONDS": "campaign_backlog_seconds",
    "POSTLINE_STATS_TABLE": "stats_table",
    "POSTLINE_ALARM_TOPIC_ARN": "alarm_topic_arn",
    "POSTLINE_SES_EVENTS_TOPIC_ARN": "ses_events_topic_arn",
    "POSTLINE_UNSUBSCRIBE_MAIL_TOPIC_ARN": "unsubscribe_mail_topic_arn",
    "POSTLINE_ALERT_BOUNCE_RATE": "alert_bounce_rate",
    "POSTLINE_ALERT_COMPLAINT_RATE": "alert_complaint_rate",
    "POSTLINE_ALERT_MIN_SAMPLE": "alert_min_sample",
    "POSTLINE_ALERT_WINDOW_HOURS": "alert_window_hours",
    "POSTLINE_MAX_SEND_RATE": "max_send_rate",
    "POSTLINE_MAX_24_HOUR_SEND": "max_24_hour_send",
    "POSTLINE_QUOTA_REFRESH_SECONDS": "quota_refresh_seconds",
    "POSTLINE_MARKETING_RATE_SHARE": "marketing_rate_share",
    "POSTLINE_WARMUP_PLAN": "warmup_plan",
    "POSTLINE_SMTP_RELAYS": "smtp_relays",
    "POSTLINE_MAX_TOKEN_WAIT_SECONDS": "max_token_wait_seconds",
    "POSTLINE_DOMAIN_CHECK_STREAMS": "domain_check_streams",
    "POSTLINE_DOMAIN_CHECK_TTL_SECONDS": "domain_check_ttl_seconds",
    "POSTLINE_DNS_TIMEOUT_SECONDS": "dns_timeout_seconds",
    "POSTLINE_DNS_NAMESERVER": "dns_nameserver",
}
PER_STREAM = {
    "POSTLINE_CONFIGURATION_SET_": "configuration_sets",
}
QUEUE_URL_PREFIX = "POSTLINE_QUEUE_URL_PREFIX"
# The fields derived from the queue URL prefix (queue_urls), reported under its variable when it is missing.
QUEUE_FIELDS = (
    "inbound_queue_urls",
    "send_queue_urls",
    "inbound_dlq_urls",
    "send_dlq_urls",
    "ses_events_dlq_url",
    "campaign_queue_url",
)


def queue_urls(prefix: str) -> dict[str, object]:
    """The queue fields, from ``prefix`` and the names every deployment gives its queues (postline.queue_names).
    A dead-letter map is keyed by its queue's name, which is what a record's eventSourceARN ends with."""
    names = prefix.rsplit("/", 1)[-1]  # "<stack name>-"
    inbound = {s: queue_names.inbound(s) for s in STREAMS}
    send = {s: queue_names.send(s) for s in STREAMS}
    return {
        "inbound_queue_urls": {s: prefix + suffix for s, suffix in inbound.items()},
        "send_queue_urls": {s: prefix + suffix for s, suffix in send.items()},
        "inbound_dlq_urls": {names + suffix: prefix + queue_names.dead_letters(suffix) for suffix in inbound.values()},
        "send_dlq_urls": {names + suffix: prefix + queue_names.dead_letters(suffix) for suffix in send.values()},
        "ses_events_dlq_url": prefix + queue_names.dead_letters(queue_names.SES_EVENTS),
        "campaign_queue_url": prefix + queue_names.CAMPAIGNS,
    }


def settings_from_environ(environ: Mapping[str, str], function: str | None = None) -> Settings:
    """The settings in ``environ``: those ``function`` reads (USED_BY), or all of them when no function is named
    (the CLI and the local stack, which serve every function)."""
    raw: dict[str, object] = {}
    for variable, field in ENVIRONMENT.items():
        if variable in environ:
            value: str | tuple[str, ...] = environ[variable]
            if field in ("soft_bounce_retry_streams", "app_events", "domain_check_streams"):
                value = tuple(s.strip() for s in environ[variable].split(",") if s.strip())
                if field == "app_events" and value == ("all",):
                    value = APP_EVENT_NAMES
            raw[field] = value
    if environ.get(QUEUE_URL_PREFIX):
        raw.update(queue_urls(environ[QUEUE_URL_PREFIX]))
    for prefix, field in PER_STREAM.items():
        given = {s: environ[prefix + s.upper()] for s in STREAMS if environ.get(prefix + s.upper())}
        if given:
            raw[field] = given
    missing = [
        (field, "Field required")
        for field, readers in USED_BY.items()
        if (function is None or function in readers) and not raw.get(field)
    ]
    try:
        settings = Settings(**raw)
    except ValidationError as error:
        problems = error.problems + missing
    else:
        if not missing:
            return settings
        problems = missing
    reverse = (
        {f: v for v, f in ENVIRONMENT.items()}
        | {f: p + "<STREAM>" for p, f in PER_STREAM.items()}
        | dict.fromkeys(QUEUE_FIELDS, QUEUE_URL_PREFIX)
    )
    named = [f"{reverse.get(field, field)}: {message}" for field, message in problems]
    raise ConfigurationError("postline is misconfigured: " + "; ".join(dict.fromkeys(named))) from None


@lru_cache(maxsize=1)
def get_settings(function: str | None = None) -> Settings:
    """The container's settings, read from the environment on first use (the cold start): those ``function``
    reads, when a function names itself."""
    return settings_from_environ(os.environ, function)
