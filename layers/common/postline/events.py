"""SES events (configuration-set event publishing and identity notifications) applied to message records.

Status only moves forward (``_REPLACES``), so events that arrive late, out of order or twice change
nothing they should not. A Send event settles the claim (``sending``) the send stage leaves on every email SES
accepted, whether or not the send attempt lived on: that is what keeps a crash from turning into a second email.
Send events come through a queue that holds each one back (``send_event_delay_seconds``, a minute), so most
find their email's Delivery or bounce already applied, which settled the claim too: they then only read the
record (``_past_sent``). The send stage waits for that delay before it looks at a claim again.

Every email carries its attempt (``ses.RETRY_TAG``): an event settles only the attempt that produced it, so a late
event of the first attempt never moves a soft-bounce retry's record. The user's application hears of a status
change only when postline applied it (``email.delivered`` never follows ``email.complained``, nor comes twice).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from . import records
from .addresses import InvalidAddress, normalise_address
from .analytics import Analytics, Fact
from .app_events import AppEvent, publish
from .batch import (
    BatchResult,
    DeadLetters,
    Outcome,
    QueueRecord,
    describe_error,
    describe_for_log,
    is_transient,
    loggable,
    run_isolated,
)
from .clients import client
from .dynamo import RetryLater, batch_get, condition_failed
from .models import (
    BOUNCED,
    COMPLAINED,
    DELIVERED,
    FAILED,
    RENDERED,
    SENDING,
    SENT,
    SUPPRESSION_SCOPE_ALL,
    UNKNOWN,
    EmailEvent,
    Message,
    Suppression,
)
from .retries import REQUEST, SOFT_BOUNCES, retry_delay, schedule_retry
from .ses import MESSAGE_ID_HEADER, MESSAGE_ID_TAG, RETRY_HEADER, RETRY_TAG
from .settings import Settings
from .suppression import erased_address, suppression_key
from .tokens import RefreshingKeyRing, load_keyring

logger = Logger(child=True)


@dataclass
class EventsContext:
    settings: Settings
    dynamodb: Any = field(default_factory=lambda: client("dynamodb"))
    events: Any = field(default_factory=lambda: client("events"))
    sqs: Any = field(default_factory=lambda: client("sqs"))
    scheduler: Any = field(default_factory=lambda: client("scheduler"))
    sns: Any = None  # for alerts (postline.analytics), created on the first one
    sesv2: Any = field(default_factory=lambda: client("sesv2"))
    secrets: Any = field(default_factory=lambda: client("secretsmanager"))
    clock: Callable[[], float] = time.time

    @cached_property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(
            self.sqs, {}, default_url=self.settings.ses_events_dlq_url, max_receives=self.settings.max_receive_count
        )

    @cached_property
    def analytics(self) -> Analytics:
        return Analytics(self.settings, dynamodb=self.dynamodb, sns=self.sns, events=self.events, clock=self.clock)

    @cached_property
    def keys(self) -> RefreshingKeyRing:
        """Loaded only for a bounce or complaint (their address may have been erased): most batches have none."""
        return RefreshingKeyRing(lambda: load_keyring(self.settings.signing_keys_secret, self.secrets))


@dataclass(frozen=True)
class SesEvent:
    type: str  # the SES event type: Send, Delivery, Bounce, Complaint, Reject, ...
    ses_message_id: str
    message_id: str | None
    at: float
    detail: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    destination: tuple[str, ...] = ()
    sent_at: float | None = None  # when SES accepted the email (``mail.timestamp``), in every event about it
    retry: int | None = None  # the attempt it is about (None: an email sent before postline tagged attempts)
    # The topic of the SNS envelope it came in (None: no envelope); not part of what the event is.
    sns_topic: str | None = field(default=None, compare=False)

    @classmethod
    def from_body(cls, body: str) -> SesEvent:
        """An SES event as any route brings it: an SNS notification (raw or in SNS's envelope), an EventBridge
        event, a configuration set's event record (``eventType``, with postline's message tags) or an identity's
        feedback notification (``notificationType``, no tags: postline's headers in ``mail.headers`` instead).
        Raises ``SnsControlMessage`` for SNS's own subscription messages, ``ValueError`` for anything else."""
        document = json.loads(body)
        sns_topic = None
        if document.get("source") == "aws.ses" and isinstance(document.get("detail"), dict):  # from EventBridge
            document = document["detail"]
        elif document.get("Type") in SNS_CONTROL_TYPES:
            raise SnsControlMessage(document["Type"], document.get("TopicArn"))
        elif document.get("Type") == "Notification" and "Message" in document:  # SNS envelope
            sns_topic = str(document.get("TopicArn") or "")
            document = json.loads(document["Message"])
        event_type = document.get("eventType") or document.get("notificationType")
        mail = document.get("mail")
        if not event_type or not isinstance(mail, dict) or "messageId" not in mail:
            raise ValueError("not an SES event: needs eventType or notificationType, and mail.messageId")
        tags = mail.get("tags") or {}
        headers = _postline_headers(mail)
        message_id = (tags.get(MESSAGE_ID_TAG) or [None])[0] or headers.get(MESSAGE_ID_HEADER.lower())
        attempt = (tags.get(RETRY_TAG) or [None])[0] or headers.get(RETRY_HEADER.lower())
        detail = document.get(_DETAIL_FIELDS.get(event_type, event_type[:1].lower() + event_type[1:])) or {}
        stamp = detail.get("timestamp") or mail.get("timestamp")
        flat_tags = {name: values[0] for name, values in tags.items() if values and not name.startswith("ses:")}
        return cls(
            event_type,
            mail["messageId"],
            message_id,
            _epoch(stamp),
            detail,
            flat_tags,
            tuple(mail.get("destination") or ()),
            _epoch(mail["timestamp"]) if mail.get("timestamp") else None,
            int(attempt) if attempt is not None and str(attempt).isdigit() else None,
            sns_topic,
        )

    def app_event(self, message_id: str) -> AppEvent | None:
        name = _APP_EVENTS.get(self.type)
        if self.type == "Bounce" and self.detail.get("bounceType") != "Permanent":
            name = None  # a soft bounce is not an outcome: the message may still be delivered
        if name is None:
            return None
        postline_tags = {MESSAGE_ID_TAG, RETRY_TAG, "postline_stream", "postline_template", "postline_campaign"}
        return AppEvent(
            name,
            message_id,
            self.at,
            to=self.destination[0] if self.destination else None,
            template=self.tags.get("postline_template"),
            campaign=self.tags.get("postline_campaign"),
            tags={k: v for k, v in self.tags.items() if k not in postline_tags},
            detail=_summary(self),
        )


SNS_CONTROL_TYPES = ("SubscriptionConfirmation", "UnsubscribeConfirmation")


class SnsControlMessage(Exception):
    """SNS's own message about a subscription (not an SES event): noted, never an error."""

    def __init__(self, kind: str, topic: str | None) -> None:
        super().__init__(f"SNS {kind} for {topic}")
        self.kind, self.topic = kind, topic


def _refuse_foreign(result: BatchResult, record: QueueRecord, kind: str, topic: str | None) -> None:
    """An SNS message from a topic that is not the stack's SES events topic: whoever publishes there is not SES
    sending postline's mail. To the DLQ, with the topic in the reason; the message it names is never read."""
    reason = f"refused: SNS {kind} from the topic {topic or '(none)'}, not postline's SES events topic"
    logger.warning("SNS message from another topic refused", extra={"type": kind, "topic": topic})
    result.set(record.record_id, Outcome(None, "refused", reason, dead_letter=True))


def _postline_headers(mail: dict[str, Any]) -> dict[str, str]:
    """postline's own headers among the email's (``mail.headers``, which identity notifications carry when the
    identity includes the original headers), by lower-cased name."""
    wanted = (MESSAGE_ID_HEADER.lower(), RETRY_HEADER.lower())
    return {
        header["name"].lower(): str(header.get("value", "")).strip()
        for header in mail.get("headers") or ()
        if isinstance(header, dict) and str(header.get("name", "")).lower() in wanted
    }


def _epoch(stamp: str | None) -> float:
    if not stamp:
        return time.time()
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# Where each event type keeps its details (``failure`` for a rendering failure, as SES documents it).
_DETAIL_FIELDS = {"Rendering Failure": "failure", "RenderingFailure": "failure"}

_APP_EVENTS = {
    "Send": "email.sent",
    "Delivery": "email.delivered",
    "Bounce": "email.bounced",
    "Complaint": "email.complained",
    "Reject": "email.failed",
    "Rendering Failure": "email.failed",
    "RenderingFailure": "email.failed",
}

# SES event type -> (postline event type recorded in email_events, status it moves the message to)
_EFFECTS = {
    "Send": (None, SENT),
    "Delivery": ("delivered", DELIVERED),
    "Bounce": ("bounced", BOUNCED),
    "Complaint": ("complained", COMPLAINED),
    "Reject": ("rejected", FAILED),
    "DeliveryDelay": ("delayed", SENT),  # SES has the email: it settles a claim left open, as a Send event would
    "Open": ("opened", None),
    "Click": ("clicked", None),
    "Rendering Failure": ("rendering_failed", FAILED),
    "RenderingFailure": ("rendering_failed", FAILED),
    "Subscription": ("subscription", None),
}


def apply_events(batch: list[QueueRecord], ctx: EventsContext) -> BatchResult:
    return run_isolated(batch, lambda records: _apply(records, ctx), ctx.dead_letters)


def _apply(batch: list[QueueRecord], ctx: EventsContext) -> BatchResult:
    result = BatchResult()
    settings, now = ctx.settings, ctx.clock()
    parsed: dict[str, SesEvent] = {}
    for record in batch:
        try:
            event = SesEvent.from_body(record.body)
        except SnsControlMessage as control:
            if control.topic != settings.ses_events_topic_arn:
                _refuse_foreign(result, record, control.kind, control.topic)
                continue
            # Subscriptions to SQS in the account confirm themselves; one made by hand is confirmed in the SNS
            # console. Either way it is not an SES event to apply, nor an error.
            logger.info(
                "an SNS subscription message on the events queue", extra={"type": control.kind, "topic": control.topic}
            )
            result.set(record.record_id, Outcome(None, "ignored", str(control)))
        except Exception as error:  # noqa: BLE001 - retrying cannot make it readable: to the DLQ with why
            logger.warning("unreadable SES event", extra={"reason": loggable(describe_error(error))})
            result.set(
                record.record_id,
                Outcome(None, "dead-lettered", f"malformed SES event: {describe_error(error)}", dead_letter=True),
            )
        else:
            if event.sns_topic is not None and event.sns_topic != settings.ses_events_topic_arn:
                _refuse_foreign(result, record, "Notification", event.sns_topic)
            else:
                parsed[record.record_id] = event

    # One status write per message and attempt, only the furthest status: a Send and its Delivery often arrive
    # in the same batch.
    furthest: dict[tuple[str, int | None], tuple[str, SesEvent]] = {}
    puts: dict[tuple[str, str, str], Any] = {}  # keyed, so a repeated event is written once
    feed: dict[tuple[str, str], tuple[SesEvent, AppEvent]] = {}  # for the application, once per message and event
    soft_bounces: dict[str, tuple[str, SesEvent]] = {}  # message id -> (record id, event)
    delivered: set[str] = set()
    deliveries: dict[str, EmailEvent] = {}
    to_suppress: list[tuple[str, str, SesEvent]] = []
    for rid, event in parsed.items():
        if event.message_id is None:
            # Every email postline sends carries its message id as a tag (configuration-set events keep it) and as
            # a header (identity notifications keep it, with the original headers): mail without either is not
            # postline's.
            result.set(rid, Outcome(None, "ignored", "not sent by postline: no postline_message_id tag or header"))
            continue
        recorded_type, status = _EFFECTS.get(event.type, (None, None))
        if event.type == "Bounce" and event.detail.get("bounceType") != "Permanent":
            recorded_type, status = "soft_bounced", None
            soft_bounces[event.message_id] = (rid, event)
        if event.type == "Delivery":
            delivered.update(suppression_key(_normalised(a)) for a in event.detail.get("recipients", []))
        key = (event.message_id, event.retry)
        if status and (key not in furthest or _PATH.index(status) > _PATH.index(furthest[key][0])):
            furthest[key] = (status, event)
        if recorded_type:
            sort_key = f"{event.at:.3f}#{recorded_type}"
            row = EmailEvent(
                event.message_id,
                sort_key,
                type=recorded_type,
                at=event.at,
                detail=_summary(event),
                expires_at=int(now + settings.event_ttl_days * 86400),
            )
            if event.type == "Delivery":  # kept on the record by the status move, a row only if that cannot
                deliveries[event.message_id] = row
            else:
                puts[(settings.events_table, event.message_id, sort_key)] = row
        to_suppress += [(address, reason, event) for address, reason in _suppressions(event)]
        if (app_event := event.app_event(event.message_id)) is not None:
            feed[(event.message_id, app_event.name)] = (event, app_event)
        result.set(rid, Outcome(event.message_id, recorded_type or event.type.lower()))
    try:
        erased = _erased_names(ctx, {address for address, _, _ in to_suppress})
        for address, reason, event in to_suppress:
            name = erased.get(address, address)  # an erased address stays suppressed, and stays erased
            puts[(settings.suppressions_table, name, SUPPRESSION_SCOPE_ALL)] = Suppression(
                name,
                SUPPRESSION_SCOPE_ALL,
                reason=reason,
                suppressed_at=event.at,
                source=f"ses:{event.type}",
                detail=None if address in erased else _diagnostic(event, address),
            )
        moves = list(furthest.values())
        settled = _past_sent(ctx, moves)
        applied, on_record, recorded = _advance_all(
            ctx, [(s, e) for s, e in moves if not (s == SENT and e.message_id in settled)], now
        )
        recorded.update(settled)
        for message_id, row in deliveries.items():
            if message_id not in on_record:
                puts[(settings.events_table, message_id, row.time_type)] = row
        _batch_put(ctx.dynamodb, puts)
    except RetryLater as error:
        for rid in parsed:
            result.set(rid, Outcome(None, "retry", str(error), retry=True))
        return result
    announced = [
        _as_given(app_event, recorded.get(event.message_id))
        for event, app_event in feed.values()
        if _announces(event, applied)
    ]
    publish(ctx.events, settings.event_bus, announced, settings.app_events)
    if settings.mirror_ses_suppressions:
        _mirror_to_ses(
            [
                s
                for (table, name, _), s in puts.items()
                if table == settings.suppressions_table and name not in erased.values()
            ],
            ctx,
        )
    _reset_soft_bounce_history(delivered, ctx)
    for rid, event in soft_bounces.values():
        try:
            _soft_bounce(event, ctx, erased)
        except Exception as error:  # noqa: BLE001 - this event's retry alone is tried again (or dead-lettered)
            transient = is_transient(error)
            logger.warning(
                "soft bounce not handled",
                extra={"message_id": event.message_id, "error": loggable(describe_error(error))},
            )
            result.set(
                rid,
                Outcome(
                    event.message_id,
                    "retry" if transient else "error",
                    describe_error(error),
                    retry=transient,
                    dead_letter=not transient,
                ),
            )
    marked: dict[str, set[str]] = {}  # message id -> what its applied move marked counted
    for key in applied:
        if marker := _marker(furthest[key][1]):
            marked.setdefault(key[0], set()).add(marker)
    _count(ctx, parsed.values(), marked, recorded)
    return result


# SES event type -> the counter it adds to (postline.analytics); a Bounce counts by its type.
_COUNTED = {
    "Delivery": "delivered",
    "Complaint": "complained",
    "Reject": "rejected",
    "Rendering Failure": "failed",
    "RenderingFailure": "failed",
}


def _counted_as(event: SesEvent) -> str | None:
    if event.type == "Bounce":
        return "hard_bounced" if event.detail.get("bounceType") == "Permanent" else "soft_bounced"
    return _COUNTED.get(event.type)


def _marker(event: SesEvent) -> str | None:
    """What the message's record keeps (``counted``) once ``event`` is counted: its kind, or for a soft bounce,
    which one (an email may soft-bounce on each attempt)."""
    kind = _counted_as(event)
    if kind == "soft_bounced":
        return f"soft_bounced#{event.detail.get('feedbackId') or event.ses_message_id}"
    return kind


def _count(
    ctx: EventsContext, events: Iterable[SesEvent], marked: dict[str, set[str]], recorded: dict[str, dict[str, Any]]
) -> None:
    """Count each event once (postline.analytics), for the campaign, template and stream of its message.

    An event is new when its mark joins the record's ``counted`` set: the status move writes it (``_advance``,
    ``marked`` holds those), any other event (a soft bounce, one the move did not apply, as a Delivery arriving
    after a complaint) with a conditional write of its own that fails when the mark is there. Names come from the
    record (SES's tags hold ``_`` for characters a tag cannot), or from the tags once the record is gone. Counts a
    DynamoDB failure keeps from being written are lost, never doubled (``analytics.counters``); it is logged."""
    facts, seen = [], set()
    try:
        for event in events:
            marker = _marker(event) if event.message_id else None
            if marker is None or (event.message_id, marker) in seen:
                continue
            seen.add((event.message_id, marker))
            if marker in marked.get(event.message_id, ()):
                record = recorded.get(event.message_id) or {}
            elif (
                record := records.mark_counted(ctx.dynamodb, ctx.settings.messages_table, event.message_id, marker)
            ) is None:
                continue  # counted before (a repeat), or no record to count it against

            def named(attribute: str, record: dict[str, Any] = record, event: SesEvent = event) -> str | None:
                return record.get(attribute, {}).get("S") or event.tags.get(f"postline_{attribute}")

            if named("stream"):
                facts.append(
                    Fact(
                        _counted_as(event),
                        event.message_id,
                        event.at,
                        named("stream"),
                        named("template"),
                        named("campaign"),
                        reason=event.detail.get("bounceSubType") or event.detail.get("complaintFeedbackType"),
                    )
                )
        ctx.analytics.record(facts)
    except Exception as error:  # noqa: BLE001 - the statuses, suppressions and announcements are written: only counts lost
        logger.error("SES events not counted", extra={"counted": len(facts), "error": describe_for_log(error)})


def _announces(event: SesEvent, applied: dict[tuple[str, int | None], str | None]) -> bool:
    """Whether the application hears of ``event``: only when postline applied a status move for its message and
    attempt that passed this event's status (``applied`` holds the status each applied move started from)."""
    _, status = _EFFECTS.get(event.type, (None, None))
    key = (event.message_id, event.retry)
    if status is None or key not in applied:
        return False
    before = applied[key]
    return before not in _PATH or _PATH.index(status) > _PATH.index(before)


def _erased_names(ctx: EventsContext, addresses: set[str]) -> dict[str, str]:
    """Of ``addresses`` (suppression keys), those erased, with their erased name: a bounce or complaint arriving
    after erasure must not bring the address back. One read of the erasure marks (scope ``all`` under the
    erased name), and the signing secret once per container, only when there are addresses."""
    erasure_key = ctx.keys.current.erasure_key if addresses else None
    if not erasure_key:
        return {}
    table = ctx.settings.suppressions_table
    names = {erased_address(address, erasure_key): address for address in addresses}
    found = batch_get(
        ctx.dynamodb,
        {table: [{"email": {"S": name}, "scope": {"S": SUPPRESSION_SCOPE_ALL}} for name in names]},
        consistent=True,
    )[table]
    return {names[item["email"]["S"]]: item["email"]["S"] for item in found}


def _mirror_to_ses(suppressions: list[Suppression], ctx: EventsContext) -> None:
    """Add hard bounces and complaints to SES's account-level suppression list (best effort: postline's own
    list already blocks the address)."""
    for item in suppressions:
        try:
            ctx.sesv2.put_suppressed_destination(
                EmailAddress=item.email, Reason="COMPLAINT" if item.reason == "complaint" else "BOUNCE"
            )
        except Exception as error:  # noqa: BLE001
            logger.warning("could not mirror a suppression to SES", extra={"error": loggable(str(error))})


def _reset_soft_bounce_history(addresses: set[str], ctx: EventsContext) -> None:
    """A delivery ends an address's run of soft bounces (one read for the batch; a write only where a run was
    open)."""
    table = ctx.settings.suppressions_table
    keys = [{"email": {"S": a}, "scope": {"S": SOFT_BOUNCES}} for a in sorted(addresses)]
    open_runs = batch_get(ctx.dynamodb, {table: keys})[table] if keys else []
    for item in open_runs:
        if "suppressed_at" in item:
            ctx.dynamodb.update_item(
                TableName=table,
                Key={"email": item["email"], "scope": item["scope"]},
                UpdateExpression="SET bounces = :zero, reset_at = :now REMOVE suppressed_at",
                ExpressionAttributeValues={":zero": {"N": "0"}, ":now": {"N": repr(round(ctx.clock(), 3))}},
            )


def _soft_bounce(event: SesEvent, ctx: EventsContext, erased: dict[str, str]) -> None:
    """Count the soft bounce in its address's history, then ask for the message again later (once per attempt),
    or, when the address has soft-bounced over the whole window, suppress it (``soft_bounce_exhausted``).

    The window runs from when postline saw the address's first soft bounce, not from the event's own timestamp:
    an event replayed from a DLQ days later is one bounce, and exhausts nothing. A soft bounce of an earlier
    attempt (late, or redelivered) counts, but decides nothing about the attempt now under way."""
    settings, now = ctx.settings, ctx.clock()
    addresses = [suppression_key(_normalised(r["emailAddress"])) for r in event.detail.get("bouncedRecipients", [])]
    addresses = [address for address in addresses if address not in erased]  # an erased address keeps no history
    if not addresses:
        return
    first_at, bounces = now, 0
    for address in addresses:
        history = _count_soft_bounce(ctx, address, event, now)
        first_at = min(first_at, float(history["suppressed_at"]["N"]))
        bounces = max(bounces, int(history["bounces"]["N"]))
    try:
        message = Message.get(event.message_id, consistent_read=True)
    except Message.DoesNotExist:
        return
    current = int(message.retry or 0)
    if event.retry is not None and event.retry != current:
        return
    request = None
    if message.stream in settings.soft_bounce_retry_streams:
        try:
            request = EmailEvent.get(event.message_id, REQUEST)
        except EmailEvent.DoesNotExist:
            request = None
    attempt = current + 1
    due_at = now + retry_delay(attempt, settings.soft_bounce_first_retry_seconds)
    window_ends = first_at + settings.soft_bounce_window_seconds
    if request is not None and due_at <= window_ends:
        if not _request_retry(ctx, event.message_id, current, attempt, due_at):
            return  # this attempt's retry was asked for already (the event came twice)
        try:
            how = schedule_retry(
                ctx.sqs,
                ctx.scheduler,
                queue_url=settings.inbound_queue_urls[message.stream],
                group=settings.schedule_group,
                role_arn=settings.scheduler_role_arn,
                message_id=event.message_id,
                body=json.dumps(request.detail),
                attempt=attempt,
                due_at=due_at,
                now=now,
                dead_letter_arn=settings.schedule_dlq_arn,
            )
        except Exception:
            _withdraw_retry_request(ctx, event.message_id, attempt)  # so the event's redelivery asks again
            raise
        _note(ctx, event.message_id, "retry_scheduled", {"attempt": attempt, "due_at": due_at, "via": how})
    elif bounces >= 2 and (request is not None or now >= window_ends):
        since = datetime.fromtimestamp(first_at, timezone.utc).isoformat()
        for address in addresses:
            Suppression(
                address,
                SUPPRESSION_SCOPE_ALL,
                reason="soft_bounce_exhausted",
                suppressed_at=now,
                source="ses:Bounce",
                detail=f"{bounces} soft bounces since {since}",
            ).save()
        _note(
            ctx, event.message_id, "soft_bounce_exhausted", {"first_soft_bounce_at": first_at, "soft_bounces": bounces}
        )


def _count_soft_bounce(ctx: EventsContext, address: str, event: SesEvent, now: float) -> dict[str, Any]:
    """Add the bounce to the address's run (its first one starts the run at ``now``) and return the run. The
    bounce's feedback id is kept, so the same event applied twice counts once."""
    feedback = event.detail.get("feedbackId") or f"{event.ses_message_id}@{event.at:.3f}"
    try:
        return ctx.dynamodb.update_item(
            TableName=ctx.settings.suppressions_table,
            Key={"email": {"S": address}, "scope": {"S": SOFT_BOUNCES}},
            UpdateExpression="SET reason = :reason, suppressed_at = if_not_exists(suppressed_at, :now), "
            "last_at = :now, last_event_at = :at, last_feedback = :feedback, #source = :source "
            "ADD bounces :one",
            ConditionExpression="attribute_not_exists(last_feedback) OR last_feedback <> :feedback",
            ExpressionAttributeNames={"#source": "source"},
            ExpressionAttributeValues={
                ":reason": {"S": SOFT_BOUNCES},
                ":now": {"N": repr(round(now, 3))},
                ":at": {"N": repr(round(event.at, 3))},
                ":feedback": {"S": feedback},
                ":source": {"S": "ses:Bounce"},
                ":one": {"N": "1"},
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )["Attributes"]
    except ClientError as error:
        if not condition_failed(error):
            raise
        return error.response["Item"]  # counted already


def _request_retry(ctx: EventsContext, message_id: str, current: int, attempt: int, due_at: float) -> bool:
    """Mark on the record that retry ``attempt`` is asked for, unless it was already (a conditional write before
    queuing: the retry is queued once, however often the soft bounce is applied)."""
    condition = "(attribute_not_exists(retry_requested) OR retry_requested < :attempt) AND " + (
        "#retry = :current" if current else "attribute_not_exists(#retry)"
    )
    values = {":attempt": {"N": str(attempt)}, ":due": {"N": repr(round(due_at, 3))}}
    if current:
        values[":current"] = {"N": str(current)}
    try:
        ctx.dynamodb.update_item(
            TableName=ctx.settings.messages_table,
            Key={"message_id": {"S": message_id}},
            UpdateExpression="SET retry_requested = :attempt, retry_due_at = :due",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#retry": "retry"},
            ExpressionAttributeValues=values,
        )
    except ClientError as error:
        if condition_failed(error):
            return False
        raise
    return True


def _withdraw_retry_request(ctx: EventsContext, message_id: str, attempt: int) -> None:
    try:
        ctx.dynamodb.update_item(
            TableName=ctx.settings.messages_table,
            Key={"message_id": {"S": message_id}},
            UpdateExpression="REMOVE retry_requested, retry_due_at",
            ConditionExpression="retry_requested = :attempt",
            ExpressionAttributeValues={":attempt": {"N": str(attempt)}},
        )
    except Exception as error:  # noqa: BLE001 - the retry is then lost, and said so
        logger.error(
            "a soft-bounce retry could not be queued nor its request withdrawn: it will not be sent",
            extra={"message_id": message_id, "attempt": attempt, "error": loggable(describe_error(error))},
        )


def _note(ctx: EventsContext, message_id: str, event_type: str, detail: dict[str, Any]) -> None:
    now = ctx.clock()
    EmailEvent(
        message_id,
        f"{now:.3f}#{event_type}",
        type=event_type,
        at=now,
        detail=detail,
        expires_at=int(now + ctx.settings.event_ttl_days * 86400),
    ).save()


# The statuses a message passes through once SES has it, in order. A status is only ever replaced by one
# further along; FAILED (an SES Reject or rendering failure) can only replace statuses before delivery. UNKNOWN
# (parked by the send stage) stands where SENDING does: an SES event about the email settles it.
_PATH = [RENDERED, SENDING, UNKNOWN, SENT, FAILED, DELIVERED, BOUNCED, COMPLAINED]
_REPLACES = {
    SENT: (RENDERED, SENDING, UNKNOWN),
    FAILED: (RENDERED, SENDING, UNKNOWN, SENT),
    DELIVERED: (RENDERED, SENDING, UNKNOWN, SENT),
    BOUNCED: (RENDERED, SENDING, UNKNOWN, SENT, DELIVERED),
    COMPLAINED: (RENDERED, SENDING, UNKNOWN, SENT, DELIVERED, BOUNCED),
}


def _advance_all(
    ctx: EventsContext, moves: list[tuple[str, SesEvent]], now: float
) -> tuple[dict[tuple[str, int | None], str | None], set[str], dict[str, dict[str, Any]]]:
    """Move each message forward with its own conditional UpdateItem (1 write unit; a transaction would cost two
    and buys nothing here, each move stands alone). A condition that fails means "already further along", or
    "another attempt's".

    Returns the moves applied (message and attempt -> the status they started from); the messages whose record
    holds their delivery: moved to ``delivered`` now (the move writes the delivery's details too, so the common
    case needs no event row), or delivered before (a repeat); and each message's record as it was before the move
    (DynamoDB's ``ALL_OLD``, empty when there is none).
    """
    table = ctx.settings.messages_table
    applied, on_record, recorded = {}, set(), {}
    for status, event in moves:
        try:
            old = (
                ctx.dynamodb.update_item(**_advance(table, event, status, now)["Update"], ReturnValues="ALL_OLD").get(
                    "Attributes"
                )
                or {}
            )
            applied[(event.message_id, event.retry)] = records.old_status(old)
            delivered_now = status == DELIVERED
        except ClientError as error:
            if not condition_failed(error):
                raise RetryLater(f"could not record {event.type} for {event.message_id}: {error}") from error
            old, delivered_now = error.response.get("Item") or {}, False
        if delivered_now or "delivered_at" in old:
            on_record.add(event.message_id)
        recorded[event.message_id] = old
    return applied, on_record, recorded


def _past_sent(ctx: EventsContext, moves: list[tuple[str, SesEvent]]) -> dict[str, dict[str, Any]]:
    """The records, as read, of the messages a Send event would move to ``sent`` that are already past it.

    Send events reach postline held back (``send_event_delay_seconds``), so the email's Delivery or bounce has
    usually been applied by then: one batched read (half a read unit an email) then spares a write (a write unit)
    that could only fail its condition. A read that is behind can only show an earlier status, and then the Send
    is written, conditionally, as before; a record not found is written too (the condition decides).
    """
    sends = sorted({event.message_id for status, event in moves if status == SENT})
    if not sends:
        return {}
    table = ctx.settings.messages_table
    try:
        found = batch_get(ctx.dynamodb, {table: [{"message_id": {"S": message_id}} for message_id in sends]})[table]
    except ClientError as error:
        raise RetryLater(f"could not read the records of Send events: {error}") from error
    return {
        item["message_id"]["S"]: item
        for item in found
        if records.old_status(item) is not None and records.old_status(item) not in _REPLACES[SENT]
    }


def _as_given(event: AppEvent, record: dict[str, Any] | None) -> AppEvent:
    """The event with the template, campaign and tags the application gave, from the message's record: SES's
    copies in the event's tags read ``_`` for every character SES does not take in a tag (``ses._tag``)."""
    if not record or "template" not in record:
        return event  # no record (expired, or never written): SES's copies are all there is
    tags = {name: value["S"] for name, value in record.get("tags", {}).get("M", {}).items() if "S" in value}
    return replace(event, template=record["template"].get("S"), campaign=record.get("campaign", {}).get("S"), tags=tags)


def _advance(table: str, event: SesEvent, status: str, now: float) -> dict[str, Any]:
    """Move the message to ``status`` if it is not already further along and is still the attempt the event is
    about (a Send settles the claim, which ends it). Any event sets ``sent_at`` when it is missing: a Delivery
    that overtook its Send still leaves the time SES took it."""
    replaces = _REPLACES[status]
    names = [f":c_{i}" for i in range(len(replaces))]
    values = {"status": status, "ses_message_id": event.ses_message_id, "updated_at": now}
    if status == DELIVERED:
        values["delivered_at"] = event.at
        if details := _summary(event):
            values["delivery"] = details
    condition = f"#status IN ({', '.join(names)})"
    condition_values: dict[str, Any] = dict(zip(names, replaces, strict=True))
    if event.retry is not None:  # only the attempt that sent the email: a retry's record has its number
        condition += " AND " + ("#c_retry = :c_retry" if event.retry else "attribute_not_exists(#c_retry)")
        if event.retry:
            condition_values[":c_retry"] = event.retry
    marker = _marker(event)  # counted with the move (``_count``)
    entry = records.update(
        table,
        event.message_id,
        set_values=values,
        set_once={"sent_at": event.sent_at or event.at},
        remove=("claim",),
        add={"counted": {marker}} if marker else None,
        condition=condition,
        condition_values=condition_values,
    )
    if event.retry is not None:
        entry["Update"]["ExpressionAttributeNames"]["#c_retry"] = "retry"
    return entry


def _normalised(address: str) -> str:
    try:
        return normalise_address(address)
    except InvalidAddress:
        return address.strip()


def _suppressions(event: SesEvent) -> list[tuple[str, str]]:
    """The (suppression key, reason) pairs a hard bounce or complaint asks for."""
    if event.type == "Bounce" and event.detail.get("bounceType") == "Permanent":
        return [
            (suppression_key(_normalised(r["emailAddress"])), "hard_bounce")
            for r in event.detail.get("bouncedRecipients", [])
        ]
    if event.type == "Complaint":
        return [
            (suppression_key(_normalised(r["emailAddress"])), "complaint")
            for r in event.detail.get("complainedRecipients", [])
        ]
    return []


def _diagnostic(event: SesEvent, address: str) -> str | None:
    for recipient in event.detail.get("bouncedRecipients", []):
        if suppression_key(_normalised(recipient.get("emailAddress", ""))) == address:
            return recipient.get("diagnosticCode")
    return event.detail.get("complaintFeedbackType")


def _summary(event: SesEvent) -> dict[str, Any]:
    keep = (
        "bounceType",
        "bounceSubType",
        "complaintFeedbackType",
        "reason",
        "delayType",
        "expirationTime",
        "link",
        "userAgent",
        "smtpResponse",
        "processingTimeMillis",
        "errorMessage",
        "templateName",
        "source",
    )
    return {k: event.detail[k] for k in keep if k in event.detail}


def _batch_put(dynamodb, puts: dict[tuple[str, str, str], Any]) -> None:
    pending = list(puts.items())
    for start in range(0, len(pending), 25):
        request: dict[str, list] = {}
        for (table, _, _), model in pending[start : start + 25]:
            request.setdefault(table, []).append({"PutRequest": {"Item": model.serialize()}})
        for attempt in range(5):
            response = dynamodb.batch_write_item(RequestItems=request)
            request = response.get("UnprocessedItems") or {}
            if not request:
                break
            time.sleep(0.05 * 2**attempt)
        if request:
            raise RetryLater("DynamoDB left writes unprocessed")
