"""The deployment's configuration: a small JSON file, validated at synth with every problem listed at once.

The file is postline.config.json at the repository root, or another one chosen with CDK context
(``cdk deploy -c config=staging.json``); when neither exists the example (infra/config/example.json) is used so
that ``cdk synth`` works out of the box. docs/deploy.md lists every key.
"""

from __future__ import annotations

import datetime
import itertools
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aws_cdk import aws_logs as logs

from .constants import (
    API_CONCURRENCY_ALLOWANCE,
    CAMPAIGN_CONCURRENCY,
    DEFAULT_IDENTITY_NOTIFICATIONS,
    DEFAULT_LAMBDA_CONCURRENCY_LIMIT,
    DEFAULT_MARKETING_RATE_SHARE,
    IDENTITY_NOTIFICATION_TYPES,
    IP_POOL_OF_STREAM,
    IP_POOLS,
    LONGEST_QUEUE_SUFFIX,
    MAX_STACK_NAME_LENGTH,
    MIN_SEND_QUEUE_AGE_ALARM_SECONDS,
    SCHEDULE_GROUP,
    SCHEDULE_GROUP_MAX_NAME,
    SES_EVENT_ROUTES,
    SES_EVENTS_CONCURRENCY,
    STREAMS,
    UNSUBSCRIBE_MAIL_CONCURRENCY,
)

# The names the functions accept (layers/common/postline/settings.py), repeated so synth needs no layer import.
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
DEFAULT_APP_EVENTS = ("email.bounced", "email.complained", "email.unsubscribed", "email.failed")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "postline.config.json"
EXAMPLE_CONFIG = REPO_ROOT / "infra" / "config" / "example.json"

IP_POOL_MODES = ("none", "standard", "managed")
DMARC_POLICIES = ("none", "quarantine", "reject")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
RETENTION_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s<>]+@([^@\s<>]+)$")
_FROM = re.compile(r"^(?:[^<>]*<\s*([^<>\s]+)\s*>|([^<>\s]+))$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-zA-Z-]+$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
TRANSPORTS = ("ses_api", "smtp")
# A deployed relay is always reached over TLS with its certificate verified ("none", plaintext, is the local stack's).
SMTP_TLS_MODES = {"implicit": 465, "starttls": 587}  # mode -> its usual port
SMTP_KEYS = ("type", "host", "port", "tls", "secret")
WARMUP_KEYS = ("start", "pools", "curve")
DEFAULT_WARMUP_POOLS = ("marketing",)
# The warm-up plan travels in the send function's environment, which postline keeps within 3 KB (Lambda allows 4 KB;
# stacks/environment_size.py): at most 20 points (the curve is interpolated between them, so 20 draw any warm-up of a
# few weeks), each day within a year and at most 100 million emails a day (more than SES gives any account): the
# longest plan, about 410 bytes, fits beside the rest with the longest stack name (tests/infra/test_functions.py).
MAX_WARMUP_CURVE_POINTS = 20
MAX_WARMUP_DAY = 365
MAX_WARMUP_EMAILS_PER_DAY = 100_000_000


class ConfigError(ValueError):
    """The configuration file is missing or invalid; the message lists every problem."""


@dataclass(frozen=True)
class HostedZone:
    zone_id: str
    zone_name: str


@dataclass(frozen=True)
class ApiDomain:
    domain_name: str
    certificate_arn: str | None  # None: a DNS-validated certificate is created in the hosted zone


@dataclass(frozen=True)
class Warmup:
    """A standard dedicated IP pool's warm-up: daily caps along a curve from the day the IPs started sending."""

    start: str  # YYYY-MM-DD, day 1 of the curve
    pools: tuple[str, ...] = DEFAULT_WARMUP_POOLS  # IP pool names (constants.IP_POOLS)
    curve: tuple[tuple[int, int], ...] | None = None  # (day, emails per day); None: the library's own curve

    def plan(self) -> dict[str, Any]:
        """What the send function reads (Env.WARMUP_PLAN): each warmed pool with the streams sending through it."""
        plan: dict[str, Any] = {
            "start": self.start,
            "pools": {pool: [stream for stream in STREAMS if IP_POOL_OF_STREAM[stream] == pool] for pool in self.pools},
        }
        if self.curve is not None:
            plan["curve"] = [list(point) for point in self.curve]
        return plan


@dataclass(frozen=True)
class SmtpTransport:
    """A stream sent through an SMTP relay (layers/common/postline/smtp.py) instead of SES's API."""

    host: str
    port: int
    tls: str  # SMTP_TLS_MODES
    secret: str  # the Secrets Manager secret holding {"username", "password"}: its name, or its complete ARN

    @property
    def secret_is_arn(self) -> bool:
        return self.secret.startswith("arn:")

    def relay(self) -> dict[str, Any]:
        """What the send function reads (Env.SMTP_RELAYS), per stream."""
        return {"host": self.host, "port": self.port, "tls": self.tls, "secret": self.secret}


@dataclass(frozen=True)
class Alerts:
    """Campaign and stream alert thresholds (postline.analytics.alerts); None leaves the library's default."""

    bounce_rate: float | None = None
    complaint_rate: float | None = None
    min_sample: int | None = None
    window_hours: int | None = None


# Each alert key: its kind, lowest and highest value (as the library validates them:
# layers/common/postline/settings.py).
ALERT_KEYS: dict[str, tuple[type, float, float, bool]] = {  # key -> (type, low, high, low excluded)
    "bounce_rate": (float, 0, 1, True),
    "complaint_rate": (float, 0, 1, True),
    "min_sample": (int, 1, 1_000_000_000, False),
    "window_hours": (int, 1, 24 * 14, False),
}


@dataclass(frozen=True)
class Config:
    domain: str
    from_address: str
    stack_name: str = "postline"
    mail_from_subdomain: str = "bounce"
    unsubscribe_mailto: str = ""  # defaults to unsubscribe@<unsubscribe_subdomain>.<domain>
    # Unsubscribe by email: SES receives the mailto address's mail on a subdomain of its own (stacks/receiving.py).
    unsubscribe_subdomain: str = "unsubscribe"
    receive_unsubscribe_mail: bool = True
    # An SES receipt rule set that is already active in the account and region: postline adds its rule to it instead
    # of creating and activating its own (SES allows one active rule set; docs/deploy.md).
    receipt_rule_set: str | None = None
    hosted_zone: HostedZone | None = None
    dmarc_policy: str = "none"
    dmarc_report_address: str | None = None
    alarm_email: str | None = None
    ip_pools: str = "none"
    api_domain: ApiDomain | None = None
    api_rate_limit: int = 100
    api_burst_limit: int = 200
    # Maximum concurrent invocations per queue (Lambda event source mapping, 2..1000). Small enough by default that
    # every consumer together, with the tracking API, stays well within a young account's Lambda concurrency
    # (lambda_concurrency_limit): one send function sends its batch of ten at once, so four keep up with far more
    # than a new SES account's 14 emails a second.
    render_concurrency: dict[str, int] = field(
        default_factory=lambda: {"critical": 4, "transactional": 3, "marketing": 2}
    )
    send_concurrency: dict[str, int] = field(
        default_factory=lambda: {"critical": 4, "transactional": 3, "marketing": 2}
    )
    # The account's Lambda concurrent executions in the stack's region (Service Quotas L-B99A9384): the functions'
    # ceilings must fit in it (concurrency_needed), or SQS receives are spent on throttles and land in the DLQs.
    lambda_concurrency_limit: int = DEFAULT_LAMBDA_CONCURRENCY_LIMIT
    send_queue_age_alarm_seconds: int = 1800
    log_retention_days: int = 30
    # How long email events and message records are kept (DynamoDB TTL); the functions' defaults are the same.
    event_ttl_days: int = 30
    message_ttl_days: int = 30
    # Events published for the application (settings.APP_EVENT_NAMES); "all" in the file means every one.
    app_events: tuple[str, ...] = DEFAULT_APP_EVENTS
    # A queue of the stack's own that receives those events (`postline events` reads it; stacks/app_events.py).
    app_events_queue: bool = False
    # Point-in-time recovery for the history tables (messages, email_events) too, not only the others.
    backup_history: bool = False
    # X-Ray active tracing on every function (about $3.60 per million emails at 10 M a month: docs/cost-model.md).
    tracing: bool = False
    log_level: str = "INFO"
    retain_data: bool = True
    mirror_ses_suppressions: bool = False
    sandbox_recipients: tuple[str, ...] = ()
    # Recipient-domain hygiene: the streams whose recipients' domains render looks up before sending (a domain that
    # cannot receive mail is rejected as undeliverable_domain); [] turns it off (docs/doctor.md).
    domain_check_streams: tuple[str, ...] = ("marketing",)
    # How SES's events reach postline: "sns" (durable, the default) or "eventbridge" (free, best effort).
    ses_event_route: str = "sns"
    # The identity's feedback notifications also sent to the SNS topic (the SNS route only).
    identity_notifications: tuple[str, ...] = DEFAULT_IDENTITY_NOTIFICATIONS
    # The shared sending-rate limiter: SES's own rate (emails per second) and 24-hour quota (GetAccount) unless
    # these override them; the share of the rate marketing may use while other mail flows; an IP warm-up.
    max_send_rate: float | None = None
    max_24_hour_send: int | None = None
    marketing_rate_share: float = DEFAULT_MARKETING_RATE_SHARE
    warmup: Warmup | None = None
    alerts: Alerts | None = None
    # The streams sent through an SMTP relay; the others through SES's API (docs/smtp.md).
    transports: dict[str, SmtpTransport] = field(default_factory=dict)
    # The domain is already an SES identity (verified by hand, or by another stack): the stack creates none, so the
    # deploy does not fail on AlreadyExists, and leaves its DKIM and MAIL FROM settings as they are.
    adopt_existing_identity: bool = False
    # The customer-managed KMS key the CDK bootstrap bucket is encrypted with (cdk bootstrap
    # --bootstrap-kms-key-id): the layer compiler must decrypt the layer's source there.
    bootstrap_kms_key_arn: str | None = None

    @property
    def mail_from_domain(self) -> str:
        return f"{self.mail_from_subdomain}.{self.domain}"

    def concurrency_needed(self) -> int:
        """How many functions may run at once: every queue consumer at its ceiling, and the tracking API's share."""
        events_queues = 2 if self.ses_event_route == "eventbridge" else 1  # the EventBridge route holds Send events
        return (
            sum(self.render_concurrency.values())
            + sum(self.send_concurrency.values())
            + SES_EVENTS_CONCURRENCY * events_queues
            + CAMPAIGN_CONCURRENCY
            + API_CONCURRENCY_ALLOWANCE
            + (UNSUBSCRIBE_MAIL_CONCURRENCY if self.receive_unsubscribe_mail else 0)
        )

    @property
    def log_retention(self) -> logs.RetentionDays:
        return RETENTION_DAYS[self.log_retention_days]


def config_path(chosen: str | Path | None) -> Path:
    """The file to read: the chosen one (relative to the repository root), else the default, else the example."""
    if chosen:
        path = Path(chosen)
        return path if path.is_absolute() else REPO_ROOT / path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else EXAMPLE_CONFIG


def load_config(file: Path) -> Config:
    """Read and validate a config file."""
    try:
        raw = json.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"postline config {file} does not exist (start from {EXAMPLE_CONFIG})") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"postline config {file} is not valid JSON: {error}") from None
    return parse_config(raw, source=str(file))


def parse_config(raw: Any, source: str = "config") -> Config:
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(f"postline config {source}: must be a JSON object")
    known = set(Config.__dataclass_fields__)
    for key in sorted(set(raw) - known):
        problems.append(f"{key}: unknown key (known: {', '.join(sorted(known))})")

    def take(key: str, kind: type | tuple[type, ...], required: bool = False) -> Any:
        if key not in raw or raw[key] is None:
            if required:
                problems.append(f"{key}: required")
            return None
        value = raw[key]
        # bool is an int in Python: refuse true/false where a number is meant
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            problems.append(f"{key}: must be {names}, got {type(value).__name__}")
            return None
        return value

    values: dict[str, Any] = {}
    domain = take("domain", str, required=True)
    if domain is not None:
        domain = domain.strip().lower().rstrip(".")
        if not _DOMAIN.match(domain):
            problems.append(f"domain: {domain!r} is not a domain name")
        values["domain"] = domain

    from_address = take("from_address", str, required=True)
    if from_address is not None:
        match = _FROM.match(from_address.strip())
        email = (match.group(1) or match.group(2)) if match else None
        sender = _EMAIL.match(email) if email else None
        if not sender:
            problems.append(f"from_address: {from_address!r} is not 'Name <user@domain>' or 'user@domain'")
        elif domain and not within(sender.group(1).lower(), domain):
            problems.append(f"from_address: {email} is not on the sending domain {domain}")
        values["from_address"] = from_address.strip()

    stack_name = take("stack_name", str)
    if stack_name is not None:
        if not _STACK_NAME.match(stack_name):
            problems.append(f"stack_name: {stack_name!r} must start with a letter and hold letters, digits, -")
        elif len(stack_name) > MAX_STACK_NAME_LENGTH:
            problems.append(
                f"stack_name: {stack_name!r} has {len(stack_name)} characters, at most "
                f"{MAX_STACK_NAME_LENGTH}: it starts every queue's name, which SQS limits to 80 characters "
                f"(the longest: <stack name>-{LONGEST_QUEUE_SUFFIX}), and the schedule group's, which "
                f"EventBridge Scheduler limits to {SCHEDULE_GROUP_MAX_NAME} "
                f"(<stack name>-{SCHEDULE_GROUP})"
            )
        values["stack_name"] = stack_name

    subdomain = take("mail_from_subdomain", str)
    if subdomain is not None:
        if not _LABEL.match(subdomain):
            problems.append(f"mail_from_subdomain: {subdomain!r} must be one DNS label, like 'bounce'")
        values["mail_from_subdomain"] = subdomain

    unsubscribe_subdomain = take("unsubscribe_subdomain", str) or "unsubscribe"
    if not _LABEL.match(unsubscribe_subdomain):
        problems.append(f"unsubscribe_subdomain: {unsubscribe_subdomain!r} must be one DNS label, like 'unsubscribe'")
    values["unsubscribe_subdomain"] = unsubscribe_subdomain
    receiving = take("receive_unsubscribe_mail", bool)
    values["receive_unsubscribe_mail"] = receiving is not False
    mailto = take("unsubscribe_mailto", str)
    if mailto is not None and not _EMAIL.match(mailto):
        problems.append(f"unsubscribe_mailto: {mailto!r} is not an email address")
    values["unsubscribe_mailto"] = mailto or (f"unsubscribe@{unsubscribe_subdomain}.{domain}" if domain else "")
    mailto_domain = values["unsubscribe_mailto"].rpartition("@")[2].lower()
    if (
        mailto
        and domain
        and receiving is not False
        and (
            mailto_domain in (domain, f"{values.get('mail_from_subdomain', 'bounce')}.{domain}")
            or not within(mailto_domain, domain)
        )
    ):
        problems.append(
            f"unsubscribe_mailto: postline receives the mail of {mailto_domain} and sets its MX record, so "
            f"the address must be on a subdomain of {domain} of its own (the default is "
            f"unsubscribe@{unsubscribe_subdomain}.{domain}); or set receive_unsubscribe_mail to false "
            "and read that mailbox yourself"
        )
    rule_set = take("receipt_rule_set", str)
    if rule_set is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", rule_set):
        problems.append(f"receipt_rule_set: {rule_set!r} is not an SES receipt rule set's name")
    values["receipt_rule_set"] = rule_set

    zone = take("hosted_zone", dict)
    if zone is not None:
        zone_id, zone_name = zone.get("zone_id"), zone.get("zone_name")
        if not isinstance(zone_id, str) or not _ZONE_ID.match(zone_id):
            problems.append("hosted_zone.zone_id: must be a Route 53 zone id like Z0123456789ABCDEFGHIJ")
        if not isinstance(zone_name, str) or not _DOMAIN.match(zone_name.lower().rstrip(".")):
            problems.append("hosted_zone.zone_name: must be the zone's domain name")
        else:
            zone_name = zone_name.lower().rstrip(".")
            if domain and not within(domain, zone_name):
                problems.append(f"hosted_zone.zone_name: {zone_name} does not contain the domain {domain}")
            values["hosted_zone"] = HostedZone(str(zone_id), zone_name)
        for key in sorted(set(zone) - {"zone_id", "zone_name"}):
            problems.append(f"hosted_zone.{key}: unknown key (known: zone_id, zone_name)")

    values["dmarc_policy"] = _choice(take("dmarc_policy", str), "dmarc_policy", DMARC_POLICIES, problems)
    for key in ("dmarc_report_address", "alarm_email"):
        address = take(key, str)
        if address is not None and not _EMAIL.match(address):
            problems.append(f"{key}: {address!r} is not an email address")
        values[key] = address
    values["ip_pools"] = _choice(take("ip_pools", str), "ip_pools", IP_POOL_MODES, problems)
    values["log_level"] = _choice(take("log_level", str), "log_level", LOG_LEVELS, problems)

    api_domain = take("api_domain", dict)
    if api_domain is not None:
        name, arn = api_domain.get("domain_name"), api_domain.get("certificate_arn")
        if not isinstance(name, str) or not _DOMAIN.match(name.lower()):
            problems.append("api_domain.domain_name: must be a domain name, like links.example.com")
        elif arn is None and "hosted_zone" not in values:
            problems.append("api_domain.certificate_arn: required when no hosted_zone is given")
        elif arn is None and not within(name.lower(), values["hosted_zone"].zone_name):
            problems.append(f"api_domain.domain_name: {name} is outside the hosted zone; give a certificate_arn")
        elif arn is not None and (not isinstance(arn, str) or not _ACM_ARN.match(arn)):
            problems.append("api_domain.certificate_arn: must be an ACM certificate ARN in the stack's region")
        else:
            values["api_domain"] = ApiDomain(name.lower(), arn)
        for key in sorted(set(api_domain) - {"domain_name", "certificate_arn"}):
            problems.append(f"api_domain.{key}: unknown key (known: certificate_arn, domain_name)")

    for key, low, high in (
        ("api_rate_limit", 1, 10_000),
        ("api_burst_limit", 1, 5_000),
        ("event_ttl_days", 1, 3_650),
        ("message_ttl_days", 30, 3_650),
        ("lambda_concurrency_limit", 10, 1_000_000),
    ):
        number = take(key, int)
        if number is not None:
            if not low <= number <= high:
                problems.append(f"{key}: {number} is outside {low}..{high}")
            values[key] = number
    age = take("send_queue_age_alarm_seconds", int)
    if age is not None:
        if not MIN_SEND_QUEUE_AGE_ALARM_SECONDS <= age <= 86_400:
            problems.append(
                f"send_queue_age_alarm_seconds: {age} is outside "
                f"{MIN_SEND_QUEUE_AGE_ALARM_SECONDS}..86400: "
                "an email postline makes wait on purpose (SES refusing for now, a campaign's window) is "
                "delayed up to 15 minutes at a time, and a receive stays hidden for the send queue's "
                "visibility timeout; a lower threshold would alarm on those"
            )
        values["send_queue_age_alarm_seconds"] = age

    for key in ("render_concurrency", "send_concurrency"):
        limits = take(key, dict)
        if limits is not None:
            merged = dict(Config.__dataclass_fields__[key].default_factory())  # type: ignore[operator]
            for stream, number in limits.items():
                if stream not in STREAMS:
                    problems.append(f"{key}.{stream}: unknown stream (streams: {', '.join(STREAMS)})")
                elif not isinstance(number, int) or isinstance(number, bool) or not 2 <= number <= 1000:
                    problems.append(f"{key}.{stream}: must be a whole number from 2 to 1000 (Lambda's range)")
                else:
                    merged[stream] = number
            if merged["marketing"] > merged["critical"]:
                problems.append(
                    f"{key}: marketing ({merged['marketing']}) may not exceed critical "
                    f"({merged['critical']}), or a newsletter could starve password resets"
                )
            values[key] = merged

    retention = take("log_retention_days", int)
    if retention is not None:
        if retention not in RETENTION_DAYS:
            problems.append(
                f"log_retention_days: {retention} is not one CloudWatch allows ({', '.join(map(str, RETENTION_DAYS))})"
            )
        values["log_retention_days"] = retention

    retain = take("retain_data", bool)
    if retain is not None:
        values["retain_data"] = retain

    mirror = take("mirror_ses_suppressions", bool)
    if mirror is not None:
        values["mirror_ses_suppressions"] = mirror

    for key in ("tracing", "backup_history", "app_events_queue"):
        flag = take(key, bool)
        if flag is not None:
            values[key] = flag

    app_events = take("app_events", (list, str))
    if app_events == "all":
        values["app_events"] = APP_EVENT_NAMES
    elif isinstance(app_events, str):
        problems.append(f'app_events: must be a list of event names or "all", got {app_events!r}')
    elif app_events is not None:
        unknown = [e for e in app_events if e not in APP_EVENT_NAMES]
        if unknown:
            problems.append(f"app_events: unknown events {unknown} (known: {', '.join(APP_EVENT_NAMES)})")
        values["app_events"] = tuple(dict.fromkeys(app_events))

    values["ses_event_route"] = _choice(take("ses_event_route", str), "ses_event_route", SES_EVENT_ROUTES, problems)
    notifications = take("identity_notifications", list)
    if notifications is not None:
        unknown = [n for n in notifications if n not in IDENTITY_NOTIFICATION_TYPES]
        if unknown:
            problems.append(
                f"identity_notifications: unknown types {unknown} (known: {', '.join(IDENTITY_NOTIFICATION_TYPES)})"
            )
        values["identity_notifications"] = tuple(dict.fromkeys(notifications))

    rate = take("max_send_rate", (int, float))
    if rate is not None:
        if isinstance(rate, bool) or not 0 < rate < math.inf:
            problems.append(f"max_send_rate: must be a number of emails per second above 0, got {rate!r}")
        else:
            values["max_send_rate"] = rate
    quota = take("max_24_hour_send", int)
    if quota is not None:
        if quota < 1:
            problems.append(f"max_24_hour_send: must be a whole number of emails above 0, got {quota}")
        else:
            values["max_24_hour_send"] = quota
    share = take("marketing_rate_share", (int, float))
    if share is not None:
        if isinstance(share, bool) or not 0 < share <= 1:
            problems.append(
                f"marketing_rate_share: must be above 0 and at most 1 (the share of the sending rate "
                f"marketing may use while other mail is being sent), got {share!r}"
            )
        else:
            values["marketing_rate_share"] = float(share)
    warmup = take("warmup", dict)
    if warmup is not None:
        values["warmup"] = _warmup(warmup, values.get("ip_pools") or "none", problems)

    alerts = take("alerts", dict)
    if alerts is not None:
        values["alerts"] = _alerts(alerts, problems)

    transports = take("transports", dict)
    if transports is not None:
        values["transports"] = _transports(transports, problems)

    adopt = take("adopt_existing_identity", bool)
    if adopt is not None:
        values["adopt_existing_identity"] = adopt

    bootstrap_key = take("bootstrap_kms_key_arn", str)
    if bootstrap_key is not None:
        if not _KMS_KEY_ARN.match(bootstrap_key):
            problems.append(
                f"bootstrap_kms_key_arn: {bootstrap_key!r} is not a KMS key ARN "
                "(arn:aws:kms:<region>:<account>:key/<key id>)"
            )
        values["bootstrap_kms_key_arn"] = bootstrap_key

    checked = take("domain_check_streams", list)
    if checked is not None:
        unknown = [s for s in checked if s not in STREAMS]
        if unknown:
            problems.append(f"domain_check_streams: {unknown} are not streams ({', '.join(STREAMS)})")
        values["domain_check_streams"] = tuple(dict.fromkeys(s for s in checked if s in STREAMS))

    recipients = take("sandbox_recipients", list)
    if recipients is not None:
        bad = [r for r in recipients if not isinstance(r, str) or not _EMAIL.match(r)]
        if bad:
            problems.append(f"sandbox_recipients: not email addresses: {bad}")
        values["sandbox_recipients"] = tuple(r.lower() for r in recipients if r not in bad)

    if not problems:
        config = Config(**{k: v for k, v in values.items() if v is not None})
        needed, limit = config.concurrency_needed(), config.lambda_concurrency_limit
        if needed > limit:
            lowest = replace(
                config, render_concurrency=dict.fromkeys(STREAMS, 2), send_concurrency=dict.fromkeys(STREAMS, 2)
            ).concurrency_needed()
            problems.append(
                f"lambda_concurrency_limit: the functions may run {needed} at once (the queue consumers' ceilings "
                f"in render_concurrency, send_concurrency and postline's own, and {API_CONCURRENCY_ALLOWANCE} for the "
                f"tracking API; {lowest} with every concurrency at its lowest, 2), more than the account's {limit}: "
                "throttled queue receives would land in the dead-letter queues. Raise the account's Lambda "
                "concurrency first (docs/deploy.md, 'Lambda concurrency') and set lambda_concurrency_limit to it, "
                "or lower the concurrencies"
            )
    if problems:
        raise ConfigError(f"postline config {source} is invalid:\n  - " + "\n  - ".join(problems))
    return config


def _alerts(raw: dict[str, Any], problems: list[str]) -> Alerts | None:
    """The alert thresholds given; each within what the functions accept."""
    before = len(problems)
    for key in sorted(set(raw) - set(ALERT_KEYS)):
        problems.append(f"alerts.{key}: unknown key (known: {', '.join(ALERT_KEYS)})")
    given: dict[str, Any] = {}
    for key, (kind, low, high, low_excluded) in ALERT_KEYS.items():
        value = raw.get(key)
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        whole = isinstance(value, int) and not isinstance(value, bool)
        in_range = number and (low < value if low_excluded else low <= value) and value <= high
        if not (whole if kind is int else number) or not in_range:
            lowest = f"above {low}" if low_excluded else f"at least {low}"
            problems.append(
                f"alerts.{key}: must be a {'whole number' if kind is int else 'number'} {lowest} and at "
                f"most {high:,}, got {value!r}"
            )
        else:
            given[key] = kind(value)
    return Alerts(**given) if len(problems) == before else None


def _transports(raw: dict[str, Any], problems: list[str]) -> dict[str, SmtpTransport]:
    """Each stream's transport: "ses_api" (the default) or {"type": "smtp", "host", "port", "tls", "secret"}."""
    relays: dict[str, SmtpTransport] = {}
    for stream, given in raw.items():
        where = f"transports.{stream}"
        if stream not in STREAMS:
            problems.append(f"{where}: unknown stream (streams: {', '.join(STREAMS)})")
            continue
        kind = given if isinstance(given, str) else given.get("type") if isinstance(given, dict) else None
        if kind not in TRANSPORTS:
            problems.append(
                f'{where}: must be "ses_api" or {{"type": "smtp", "host", "port", "tls", "secret"}}, got {given!r}'
            )
            continue
        if kind == "ses_api":
            continue
        before = len(problems)
        problems += [
            f"{where}.{key}: unknown key (known: {', '.join(SMTP_KEYS)})" for key in given if key not in SMTP_KEYS
        ]
        host, port, tls, secret = (given.get(key) for key in SMTP_KEYS[1:])
        if not isinstance(host, str) or not _DOMAIN.match(host.lower()):
            problems.append(f"{where}.host: must be the relay's host name, like email-smtp.us-east-1.amazonaws.com")
        if tls not in SMTP_TLS_MODES:
            problems.append(
                f'{where}.tls: must be "implicit" (TLS from the start, port 465) or "starttls" '
                f"(port 587), got {tls!r}; a deployed relay is never reached in plaintext"
            )
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            problems.append(f"{where}.port: must be a port number, like {SMTP_TLS_MODES.get(tls, 587)}")
        elif tls in SMTP_TLS_MODES and port in SMTP_TLS_MODES.values() and port != SMTP_TLS_MODES[tls]:
            problems.append(
                f"{where}.port: {port} is the port for {'implicit TLS' if port == 465 else 'STARTTLS'}, "
                f"not {tls} (use {SMTP_TLS_MODES[tls]})"
            )
        if not isinstance(secret, str) or not (
            _SECRET_ARN.match(secret) or (not secret.startswith("arn:") and _SECRET_NAME.match(secret))
        ):
            problems.append(
                f"{where}.secret: must be the name or complete ARN of a Secrets Manager secret holding "
                '{"username": ..., "password": ...} (never the credentials themselves)'
            )
        if len(problems) == before:
            relays[stream] = SmtpTransport(host.lower(), port, tls, secret)
    return relays


def _warmup(raw: dict[str, Any], ip_pools: str, problems: list[str]) -> Warmup | None:
    """The warm-up object: only for standard pools, the named pools known, the curve rising day by day."""
    before = len(problems)
    if ip_pools == "managed":
        problems.append(
            'warmup: needs ip_pools "standard"; with "managed" pools SES warms the dedicated IPs '
            "itself, so postline does not cap them (remove warmup)"
        )
    elif ip_pools == "none":
        problems.append(
            'warmup: needs ip_pools "standard"; with "none" mail goes out on SES\'s shared IPs and '
            "there is no dedicated IP to warm (remove warmup)"
        )
    for key in sorted(set(raw) - set(WARMUP_KEYS)):
        problems.append(f"warmup.{key}: unknown key (known: {', '.join(sorted(WARMUP_KEYS))})")

    start = raw.get("start")
    if start is None:
        problems.append("warmup.start: required, the day the dedicated IPs began sending, as YYYY-MM-DD")
    elif not isinstance(start, str) or not _DAY.match(start) or not _is_date(start):
        problems.append(f"warmup.start: {start!r} is not a date as YYYY-MM-DD")

    pools = raw.get("pools", list(DEFAULT_WARMUP_POOLS))
    if not isinstance(pools, list) or not pools or not all(isinstance(p, str) for p in pools):
        problems.append(
            f"warmup.pools: must be a non-empty list of IP pool names ({', '.join(IP_POOLS)}), got {pools!r}"
        )
    else:
        unknown = [p for p in pools if p not in IP_POOLS]
        if unknown:
            problems.append(f"warmup.pools: unknown pools {unknown} (pools: {', '.join(IP_POOLS)})")

    curve = raw.get("curve")
    points: list[tuple[int, int]] = []
    if curve is not None:
        if not isinstance(curve, list) or not curve:
            problems.append("warmup.curve: must be a non-empty list of [day, emails per day] pairs")
        elif len(curve) > MAX_WARMUP_CURVE_POINTS:
            problems.append(
                f"warmup.curve: {len(curve)} points, at most {MAX_WARMUP_CURVE_POINTS} (the plan travels "
                "in the send function's environment, which Lambda limits to 4 KB)"
            )
        else:
            for n, point in enumerate(curve):
                if (
                    not isinstance(point, list)
                    or len(point) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in point)
                ):
                    problems.append(
                        f"warmup.curve[{n}]: must be [day, emails per day], two whole numbers above 0, got {point!r}"
                    )
                elif point[0] > MAX_WARMUP_DAY or point[1] > MAX_WARMUP_EMAILS_PER_DAY:
                    problems.append(
                        f"warmup.curve[{n}]: {point!r} is beyond day {MAX_WARMUP_DAY} or "
                        f"{MAX_WARMUP_EMAILS_PER_DAY:,} emails per day (a warm-up lasts weeks; the plan "
                        "travels in the send function's environment, which Lambda limits to 4 KB)"
                    )
                else:
                    points.append((point[0], point[1]))
            for (day, cap), (next_day, next_cap) in itertools.pairwise(points):
                if next_day <= day:
                    problems.append(f"warmup.curve: days must increase strictly, day {next_day} follows day {day}")
                if next_cap < cap:
                    problems.append(
                        f"warmup.curve: emails per day may not decrease, {next_cap} on day {next_day} "
                        f"after {cap} on day {day}"
                    )
    if len(problems) > before:
        return None
    return Warmup(start=start, pools=tuple(dict.fromkeys(pools)), curve=tuple(points) if curve is not None else None)


def _is_date(value: str) -> bool:
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def within(name: str, domain: str) -> bool:
    return name == domain or name.endswith("." + domain)


def _choice(value: str | None, key: str, allowed: tuple[str, ...], problems: list[str]) -> str | None:
    if value is not None and value not in allowed:
        problems.append(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    return value
