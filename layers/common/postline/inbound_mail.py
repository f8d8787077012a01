"""Unsubscribe by email: what the ``unsubscribe_mail`` function does with each email sent to the List-Unsubscribe
mailto address.

SES receives the email for the unsubscribe subdomain, stores it raw in S3 and notifies through SNS, whose envelope
reaches the function's queue. For each notification:

- SES marked it as spam or a virus: dropped, counted, nothing kept.
- it is automatic mail (an auto-reply, a bounce or delivery report, a read receipt, bulk mail, a null sender):
  ignored, counted, nothing kept. Nothing is ever sent back (no backscatter).
- it carries a valid unsubscribe token in its subject (where the mailto link puts it: ``unsubscribe TOKEN``) or in
  its text: the recipient is unsubscribed exactly as by the one-click POST (``engagement.unsubscribe``, same scope,
  same idempotency, ``email.unsubscribed`` with ``how: mailto``).
- anything else is kept for an operator (``postline suppressions inbox``): a small JSON record beside the raw
  message, with the sender, the subject and why it was not applied.

Only SNS messages from the stack's own topic (``unsubscribe_mail_topic_arn``) are read: anything else on the queue
(another topic's message, a notification without SNS's envelope) is refused to the DLQ with its reason, as
ses_events refuses other topics (postline.events).

Logs name SES's message id and the outcome, never an address or a subject.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import getaddresses
from functools import cached_property
from typing import Any, cast
from urllib.parse import unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from . import queue_names
from .analytics import METRICS_NAMESPACE
from .batch import BatchResult, DeadLetters, Outcome, QueueRecord, describe_for_log, loggable, run_isolated, safe_text
from .clients import client
from .engagement import EngagementContext, unsubscribe
from .settings import Settings
from .tokens import UNSUBSCRIBE

logger = Logger(child=True)

# The function's queue (fed by the receipt rule's SNS topic), named like every other: <stack name>-unsubscribe-mail.
QUEUE_SUFFIX = "unsubscribe-mail"
HOW = "mailto"  # the ``how`` of the unsubscribe, on the event and the suppression
# Where the receipt rule stores raw messages, and where kept ones get their record, in the same bucket.
INCOMING_PREFIX = "incoming/"
KEPT_PREFIX = "kept/"
# The part of a message read: the subject is in the headers and the token near the top of the text; a 10 MB
# attachment is never loaded into the function's memory.
MAX_READ_BYTES = 256 * 1024
MAX_TEXT_CHARS = 20_000
MAX_KEPT_SUBJECT = 300
MAX_TOPIC_CHARS = 256  # an SNS topic's ARN is shorter: a longer one is no topic's, and is cut in the reason
# base64url(payload) "." base64url(16-byte MAC): the shape of postline's tokens (postline.tokens).
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])")
_AUTOMATIC_PRECEDENCE = ("bulk", "junk", "list", "auto_reply")
_NULL_SENDERS = ("", "<>")
_DAEMONS = ("mailer-daemon", "postmaster")
SNS_SUBSCRIPTION_TYPES = ("SubscriptionConfirmation", "UnsubscribeConfirmation")  # postline.events.SNS_CONTROL_TYPES

# Outcomes, also the metric's ``outcome`` dimension.
UNSUBSCRIBED = "unsubscribed"
KEPT = "kept"
IGNORED = "ignored"  # automatic mail
DROPPED = "dropped"  # SES's spam or virus verdict
NOT_MAIL = "not-mail"  # SES's setup notification and other notifications that carry no email
METRIC_NAME = "UnsubscribeMail"


class UnreadableNotification(ValueError):
    """A record that is not an SES receipt notification postline can read (it goes to the DLQ with the reason)."""


class RefusedNotification(ValueError):
    """A record that did not come from the stack's unsubscribe mail topic: whoever sent it is not SES receiving the
    unsubscribe address's mail, so what it names is never read (it goes to the DLQ with the reason)."""

    def __init__(self, kind: str | None, topic: str | None) -> None:
        if kind is None:
            reason = "refused: not an SNS message (no envelope), not from postline's unsubscribe mail topic"
        else:
            reason = f"refused: SNS {kind} from the topic {topic or '(none)'}, not postline's unsubscribe mail topic"
        super().__init__(reason)
        self.kind, self.topic = kind, topic


@dataclass(frozen=True)
class Receipt:
    """What SES's notification says about one received email (its ``Received`` notification, S3 action)."""

    mail_id: str  # SES's message id: the S3 object's name
    received_at: float
    bucket: str
    key: str
    envelope_sender: str  # MAIL FROM ("" for a bounce)
    spam: str  # SES's verdicts: PASS, FAIL, GRAY, PROCESSING_FAILED
    virus: str


def receipt_of(body: str, topic_arn: str | None) -> Receipt | None:
    """The receipt in an SQS record's body (SNS's envelope from ``topic_arn`` around SES's notification), or None
    for a notification that carries no email (SES's setup notification when the rule is created, SNS's own
    subscription messages). Raises RefusedNotification for a body from anywhere else."""
    try:
        envelope = json.loads(body)
        if not isinstance(envelope, dict):
            raise TypeError(f"a JSON {type(envelope).__name__}, not an object")
    except (ValueError, TypeError) as error:
        raise UnreadableNotification(f"not an SES receipt notification ({type(error).__name__}: {error})") from None
    if "Type" not in envelope:
        raise RefusedNotification(None, None)
    sns_kind, sns_topic = safe_text(str(envelope["Type"]), 40), envelope.get("TopicArn")
    if topic_arn is None or sns_topic != topic_arn:
        raise RefusedNotification(sns_kind, None if sns_topic is None else safe_text(str(sns_topic), MAX_TOPIC_CHARS))
    if sns_kind in SNS_SUBSCRIPTION_TYPES:  # the queue's own subscription, confirmed by the stack
        return None
    try:
        if sns_kind != "Notification":
            raise ValueError(f"an SNS {sns_kind}, not a Notification")
        notification = json.loads(envelope["Message"])
        kind = notification["notificationType"]
        if kind != "Received":  # SES's setup notification, sent when the rule is created
            return None
        receipt, mail = notification["receipt"], notification["mail"]
        action = receipt["action"]
        if action.get("type") != "S3":
            raise UnreadableNotification(f"the receipt rule's action is {action.get('type')}, not S3")
        return Receipt(
            mail_id=mail["messageId"],
            received_at=_epoch(mail.get("timestamp") or receipt["timestamp"]),
            bucket=action["bucketName"],
            key=action["objectKey"],
            envelope_sender=mail.get("source") or "",
            spam=(receipt.get("spamVerdict") or {}).get("status", ""),
            virus=(receipt.get("virusVerdict") or {}).get("status", ""),
        )
    except UnreadableNotification:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UnreadableNotification(f"not an SES receipt notification ({type(error).__name__}: {error})") from None


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_mail(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def read_mail(s3, receipt: Receipt) -> EmailMessage:
    """The stored message's first MAX_READ_BYTES, parsed (enough for its headers and the top of its text)."""
    answer = s3.get_object(Bucket=receipt.bucket, Key=receipt.key, Range=f"bytes=0-{MAX_READ_BYTES - 1}")
    return parse_mail(answer["Body"].read())


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name, "") or "").strip()
    except (ValueError, TypeError, IndexError):  # a header the parser cannot decode is as good as none
        return ""


def automatic_reason(message: EmailMessage, envelope_sender: str) -> str | None:
    """Why ``message`` is automatic mail no person sent (RFC 3834 auto-replies, RFC 3464 delivery reports,
    RFC 8098 read receipts, bounces from a null sender, bulk mail), or None for a person's email."""
    sender = envelope_sender.strip()
    if sender in _NULL_SENDERS:
        return "a bounce (null sender)"
    if sender.split("@", 1)[0].lower() in _DAEMONS:
        return f"a bounce (from {sender.split('@', 1)[0]})"
    if message.get_content_type() == "multipart/report":
        kind = (cast(str, message.get_param("report-type")) or "").lower()  # a str: the default policy decodes RFC 2231
        return {
            "delivery-status": "a delivery status notification (bounce)",
            "disposition-notification": "a read receipt",
        }.get(kind, f"an automatic report ({kind or 'unknown'})")
    submitted = _header(message, "Auto-Submitted").lower()
    if submitted and submitted != "no":
        return f"an automatic reply (Auto-Submitted: {submitted[:40]})"
    if _header(message, "X-Autoreply") or _header(message, "X-Autorespond"):
        return "an automatic reply (X-Autoreply)"
    precedence = _header(message, "Precedence").lower()
    if precedence in _AUTOMATIC_PRECEDENCE:
        return f"automatic mail (Precedence: {precedence})"
    return None


def verdict_reason(receipt: Receipt) -> str | None:
    """Why SES's scan rules the message out, or None."""
    if receipt.virus == "FAIL":
        return "SES found a virus"
    if receipt.spam == "FAIL":
        return "SES marked it as spam"
    return None


def subject_of(message: EmailMessage) -> str:
    return _header(message, "Subject")


def sender_of(message: EmailMessage, envelope_sender: str) -> str:
    """The address a person wrote from: the From header's, else the envelope's."""
    try:
        addresses = [address for _, address in getaddresses([_header(message, "From")]) if "@" in address]
    except (ValueError, TypeError):
        addresses = []
    return (addresses[0] if addresses else envelope_sender).strip()[:320]


def _text(message: EmailMessage) -> str:
    """The top of the message's plain text (or HTML when it has none)."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
        return part.get_content()[:MAX_TEXT_CHARS] if part is not None else ""
    except (LookupError, ValueError, TypeError, AttributeError, UnicodeError):
        return ""


def token_candidates(message: EmailMessage) -> list[str]:
    """What may be a postline token, in the order tried: the subject (as the mailto link writes it, or with the
    link's ``%20`` left encoded by a client), then the text (a person who pasted it, a client that moved it)."""
    found = []
    for text in (unquote(subject_of(message)), _text(message)):  # (a token holds no %: unquoting leaves it whole)
        found += _TOKEN.findall(text)
    return list(dict.fromkeys(found))


@dataclass
class KeptMail:
    """An email kept for an operator: who sent it, its subject, why it was not applied, and where it is."""

    mail_id: str
    received_at: float
    sender: str
    subject: str
    reason: str
    object_key: str  # the raw message
    applied_at: float | None = None  # set when an operator applied it by hand
    applied_to: str | None = None

    @property
    def record_key(self) -> str:
        # Time first, so a listing is in the order the emails came; the same email always has the same key.
        return f"{KEPT_PREFIX}{_iso(self.received_at)}-{self.mail_id}.json"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> KeptMail:
        document = json.loads(text)
        return cls(**{name: document.get(name) for name in cls.__dataclass_fields__})


def keep(s3, bucket: str, kept: KeptMail) -> None:
    s3.put_object(Bucket=bucket, Key=kept.record_key, Body=kept.to_json().encode(), ContentType="application/json")


def list_kept(s3, bucket: str, limit: int = 50) -> list[KeptMail]:
    """The most recent kept emails, newest first (their records expire with the bucket's objects)."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=KEPT_PREFIX):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return [
        KeptMail.from_json(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
        for key in sorted(keys, reverse=True)[:limit]
    ]


def find_kept(s3, bucket: str, mail_id: str) -> KeptMail | None:
    """The kept email with SES's message id ``mail_id`` (or its start, as the inbox shows it)."""
    matches = [kept for kept in list_kept(s3, bucket, limit=1000) if kept.mail_id.startswith(mail_id)]
    return matches[0] if len(matches) == 1 else None


def mark_applied(s3, bucket: str, kept: KeptMail, address: str, now: float) -> KeptMail:
    kept.applied_at, kept.applied_to = now, address
    keep(s3, bucket, kept)
    return kept


@dataclass
class UnsubscribeMailContext:
    settings: Settings
    s3: Any = field(default_factory=lambda: client("s3"))
    sqs: Any = field(default_factory=lambda: client("sqs"))
    engagement: EngagementContext | None = None
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.engagement is None:
            self.engagement = EngagementContext(self.settings, clock=self.clock)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        url = self.settings.queue_url_prefix + queue_names.dead_letters(QUEUE_SUFFIX)
        return DeadLetters(self.sqs, {}, default_url=url, max_receives=self.settings.max_receive_count)


@dataclass(frozen=True)
class Handled:
    outcome: str
    reason: str | None = None


def handle_mail(ctx: UnsubscribeMailContext, receipt: Receipt) -> Handled:
    """Drop, ignore, apply or keep one received email (module docstring)."""
    dropped = verdict_reason(receipt)
    if dropped:
        return Handled(DROPPED, dropped)
    message = read_mail(ctx.s3, receipt)
    automatic = automatic_reason(message, receipt.envelope_sender)
    if automatic:
        return Handled(IGNORED, automatic)
    candidates = token_candidates(message)
    for token in candidates:
        if ctx.engagement.verify(token, UNSUBSCRIBE) is None:
            continue
        if unsubscribe(ctx.engagement, token, how=HOW) is not None:
            return Handled(UNSUBSCRIBED)
        why = "its link is too old: its email's record has expired and the link does not name the recipient"
        break
    else:
        why = "its unsubscribe token is not valid" if candidates else "it carries no unsubscribe token"
    keep(
        ctx.s3,
        receipt.bucket,
        KeptMail(
            receipt.mail_id,
            receipt.received_at,
            sender_of(message, receipt.envelope_sender),
            safe_text(subject_of(message), MAX_KEPT_SUBJECT),
            why,
            receipt.key,
        ),
    )
    return Handled(KEPT, why)


def handle_batch(records: list[QueueRecord], ctx: UnsubscribeMailContext) -> BatchResult:
    """Each record's email handled on its own: an AWS error is retried (postline.batch), an unreadable record goes
    to the DLQ with its reason."""
    return run_isolated(records, lambda batch: _handle(batch, ctx), ctx.dead_letters)


def _handle(records: list[QueueRecord], ctx: UnsubscribeMailContext) -> BatchResult:
    result = BatchResult()
    counts: dict[str, int] = {}
    for record in records:
        try:
            receipt = receipt_of(record.body, ctx.settings.unsubscribe_mail_topic_arn)
        except RefusedNotification as refused:
            # The message it carries is not read, let alone logged; its type and topic are the sender's, so redacted.
            logger.warning(
                "SNS message from another topic refused",
                extra={"type": loggable(refused.kind), "topic": loggable(refused.topic)},
            )
            result.set(record.record_id, Outcome(None, "refused", str(refused), dead_letter=True))
            continue
        except UnreadableNotification as error:
            result.set(record.record_id, Outcome(None, "rejected", str(error), dead_letter=True))
            continue
        handled = Handled(NOT_MAIL) if receipt is None else handle_mail(ctx, receipt)
        counts[handled.outcome] = counts.get(handled.outcome, 0) + 1
        result.set(record.record_id, Outcome(receipt.mail_id if receipt else None, handled.outcome, handled.reason))
    _count(counts)
    return result


def _count(counts: dict[str, int]) -> None:
    """One CloudWatch metric per outcome (EMF); a metric never fails the batch."""
    for outcome, value in sorted(counts.items()):
        if outcome == NOT_MAIL:
            continue
        try:
            with single_metric(
                name=METRIC_NAME,
                unit=MetricUnit.Count,
                value=value,
                namespace=METRICS_NAMESPACE,
                default_dimensions={"service": "postline"},
            ) as metric:
                metric.add_dimension(name="outcome", value=outcome)
        except Exception as error:  # noqa: BLE001
            logger.warning("metric not written", extra={"metric": METRIC_NAME, "error": describe_for_log(error)})
