"""The render stage: an SQS batch of send messages in, finished MIME messages on the send queues out.

Per batch: one transaction recording the messages' status (marketing mail is recorded by the send stage's claim
instead; critical mail is checked against the suppression list in it), one queue write per destination queue.
Rejected messages are recorded with their reason and moved to the inbound queue's DLQ with that reason, so they
are never retried forever and never block their neighbours: whatever a message's content makes any step raise
(parsing, rendering, tracking, MIME, its queue entry) rejects that message alone. Suppressions are the send
stage's to check, before its claim, for every stream.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from aws_lambda_powertools import Logger

from . import records, retries
from .batch import (
    BatchResult,
    DeadLetters,
    Outcome,
    QueueRecord,
    describe_error,
    describe_for_log,
    is_transient,
    log_outcomes,
    run_isolated,
    safe_text,
)
from .clients import client
from .contract import Rejected, SendMessage, identifier_of, message_id_for, parse_send_message
from .dynamo import ConditionFailed, RetryLater, Withdrawn, transact_write
from .mime import build_mime
from .models import REJECTED, RENDERED, SUPPRESSED, Message
from .queues import SendJob, enqueue
from .retries import RETRY_ATTRIBUTE
from .ses import MESSAGE_ID_HEADER, RETRY_HEADER
from .settings import Settings
from .suppression import is_erased_name, suppression_names
from .templates import CompiledTemplate, TemplateProblem, TemplateStore
from .tokens import UNSUBSCRIBE, RefreshingKeyRing, load_keyring
from .tracking import add_tracking

logger = Logger(child=True)

# Streams whose emails get an open pixel and tracked links. Critical mail (password resets, sign-in codes)
# carries its links untouched: they are security-sensitive and must work even if tracking is down.
TRACKED_STREAMS = ("transactional", "marketing")
DUPLICATE = "duplicate"
DROPPED = "dropped"


@dataclass
class RenderContext:
    """What the render stage needs, built once per container; every client can be swapped in tests."""

    settings: Settings
    dynamodb: Any = field(default_factory=lambda: client("dynamodb"))
    sqs: Any = field(default_factory=lambda: client("sqs"))
    s3: Any = field(default_factory=lambda: client("s3"))
    secrets: Any = field(default_factory=lambda: client("secretsmanager"))
    clock: Callable[[], float] = time.time

    @cached_property
    def templates(self) -> TemplateStore:
        return TemplateStore(self.settings.templates_table, self.dynamodb, self.settings.template_pointer_ttl_seconds)

    @cached_property
    def keys(self) -> RefreshingKeyRing:
        return RefreshingKeyRing(lambda: load_keyring(self.settings.signing_keys_secret, self.secrets))

    @cached_property
    def domain_check(self):
        # Imported here: dnspython costs a cold start a fifth of a second, and only checked streams need it.
        from .domains import DomainCheck, make_resolver

        settings = self.settings
        return DomainCheck(
            make_resolver(settings.dns_nameserver, settings.dns_timeout_seconds),
            self.dynamodb,
            settings.events_table,
            settings.domain_check_ttl_seconds,
            self.clock,
        )

    @cached_property
    def analytics(self):
        from .analytics import Analytics  # only a batch with an undeliverable domain counts here

        return Analytics(self.settings, dynamodb=self.dynamodb, clock=self.clock)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(
            self.sqs,
            self.settings.inbound_dlq_urls,
            max_receives=self.settings.max_receive_count,
            note_given_up=lambda outcomes: records.note_dead_lettered(
                self.dynamodb, self.settings.messages_table, outcomes, self.clock()
            ),
        )


@dataclass
class _Item:
    record: QueueRecord
    message_id: str
    message: SendMessage | None = None
    template: CompiledTemplate | None = None
    status: str | None = None
    reason: str | None = None
    job: SendJob | None = None
    checked: bool = False  # suppressions checked by the record transaction, rendered after it
    kept: bool = False  # its request kept for soft-bounce retries by the record transaction
    erased: bool = False  # suppressed under its erased name: its record must not hold the address
    undeliverable: bool = False  # rejected because its recipient's domain receives no mail (postline.domains)
    recorded: bool = False  # its record written by this render

    def reject(self, reason: str) -> None:
        self.status, self.reason, self.job = REJECTED, safe_text(reason), None


@contextmanager
def _rejected_on_error(item: _Item, step: str):
    """Around a step done for one message: an error its content causes rejects that message, with the error as
    the reason; an AWS error (the same for every message) goes on up, and the batch is retried."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - whatever this message makes the step raise is its own
        if is_transient(error):
            raise
        logger.warning("a message's content failed a step", extra={"message_id": item.message_id, "step": step})
        item.reject(f"could not {step} it: {describe_error(error)}")


def render_batch(batch: list[QueueRecord], ctx: RenderContext) -> BatchResult:
    return run_isolated(batch, lambda records: _render_batch(records, ctx), ctx.dead_letters)


def _render_batch(batch: list[QueueRecord], ctx: RenderContext) -> BatchResult:
    result = BatchResult()
    items = [_parse(record, ctx.settings.max_message_bytes) for record in batch]
    first_seen: set[str] = set()
    for item in items:  # the same message twice in one batch: the first one is the message
        if item.message_id in first_seen:
            item.status, item.reason = DUPLICATE, "repeated in the same batch"
        first_seen.add(item.message_id)
    valid = [item for item in items if item.status is None]

    resolved = ctx.templates.resolve({(i.message.template_name, i.message.template_version) for i in valid})
    for item in valid:
        template = resolved[(item.message.template_name, item.message.template_version)]
        if isinstance(template, TemplateProblem):
            item.reject(str(template))
        elif missing := template.missing(item.message.data):
            item.reject(f"missing data the template {template.ref} needs: {', '.join(missing)}")
        else:
            item.template = template
    _check_domains(valid, ctx)

    # The streams in records.CHECKED_IN_TRANSACTION are checked against the suppression list by ConditionChecks in
    # the transaction that records them. The others are not read here: the send stage checks every message before
    # its claim, and a read here too would cost more than rendering the few suppressed ones does.
    for item in items:
        if item.template is None or item.status is not None:
            continue
        if item.template.stream in records.CHECKED_IN_TRANSACTION:
            item.status, item.checked = RENDERED, True  # recorded as rendered with its check, rendered right after
        else:
            with _rejected_on_error(item, "render"):
                _render(item, ctx)

    try:
        _record(items, ctx, result)
        _render_checked(items, ctx)
    except RetryLater as error:
        for item in items:
            result.set(item.record.record_id, Outcome(item.message_id, "retry", str(error), retry=True))
        return result
    _keep_requests(items, ctx)
    _count_undeliverable(items, ctx)
    _forward(items, ctx, result)
    log_outcomes(logger, "render", result, expected=RENDERED)
    return result


def _check_domains(items: list[_Item], ctx: RenderContext) -> None:
    """Recipient-domain hygiene for the streams that ask for it (``settings.domain_check_streams``): a message to a
    domain that cannot receive mail is rejected as ``undeliverable_domain`` before SES is asked and a bounce counts
    against the sender. A DNS that does not answer in time lets the message go (counted as a metric)."""
    checked = [
        i
        for i in items
        if i.template is not None and i.status is None and i.template.stream in ctx.settings.domain_check_streams
    ]
    if not checked:
        return
    answers = ctx.domain_check.check(
        {_domain_of(item) for item in checked},
        on_shared_error=lambda error: logger.warning(
            "the shared domain cache failed", extra={"error": describe_for_log(error)}
        ),
    )
    unanswered: dict[str, int] = defaultdict(int)
    for item in checked:
        answer = answers[_domain_of(item)]
        if answer.deliverable is None:
            unanswered[item.template.stream] += 1
        elif not answer.deliverable:
            item.reject(answer.reason())
            item.undeliverable = True
    if unanswered:
        from .analytics import emit_metric

        logger.warning(
            "recipient domains not checked: the DNS did not answer in time",
            extra={"messages": sum(unanswered.values())},
        )
        for stream, count in unanswered.items():
            emit_metric("DomainCheckTimeouts", stream, count)


def _domain_of(item: _Item) -> str:
    return item.message.to.rpartition("@")[2].lower()


def _count_undeliverable(items: list[_Item], ctx: RenderContext) -> None:
    """Count, in the stats, the messages rejected for their domain whose record this render wrote (a redelivery
    finds the record and counts nothing). A count DynamoDB refuses is lost, never doubled: logged."""
    from .analytics import Fact

    facts = [
        Fact(
            "undeliverable_domain",
            item.message_id,
            ctx.clock(),
            item.template.stream,
            item.template.name,
            item.message.campaign,
        )
        for item in items
        if item.undeliverable and item.recorded
    ]
    if facts:
        try:
            ctx.analytics.record(facts)
        except Exception as error:  # noqa: BLE001 - the rejections are recorded; only their count is lost
            logger.warning(
                "undeliverable domains not counted", extra={"error": describe_for_log(error), "messages": len(facts)}
            )


def _parse(record: QueueRecord, max_bytes: int) -> _Item:
    try:
        message = parse_send_message(record.body, max_bytes)
    except Exception as error:  # noqa: BLE001 - a Rejected, or whatever else this body makes parsing raise
        key = identifier_of(record.body)
        message_id = message_id_for(key) if key else message_id_for(record.record_id, "sqs")
        item = _Item(record, message_id)
        item.reject(str(error) if isinstance(error, Rejected) else f"could not read it: {describe_error(error)}")
        return item
    message_id = message_id_for(message.id) if message.id else message_id_for(record.record_id, "sqs")
    return _Item(record, message_id, message)


def _render(item: _Item, ctx: RenderContext) -> None:
    message, template, settings = item.message, item.template, ctx.settings
    erasure_key = ctx.keys.current.erasure_key
    erased_recipients = tuple(n for n in suppression_names(message.to, erasure_key) if is_erased_name(n))
    erased_recipient = erased_recipients[0] if erased_recipients else None  # its key's erased form
    provided: dict[str, Any] = {}
    list_headers: dict[str, list[str]] = {
        MESSAGE_ID_HEADER: [item.message_id],
        RETRY_HEADER: [str(_retry_number(item.record) or 0)],
    }
    if template.stream == "marketing":
        # The recipient's erased name in the link lets it unsubscribe after the message's record has expired.
        unsubscribe_token = ctx.keys.sign(UNSUBSCRIBE, item.message_id, erased_recipient)
        unsubscribe_url = f"{settings.tracking_base_url}/u/{unsubscribe_token}"
        provided["unsubscribe_url"] = unsubscribe_url
        # RFC 2369 + RFC 8058: one-click unsubscribe that mail providers show next to the sender.
        list_headers["List-Unsubscribe"] = [
            f"<{unsubscribe_url}>",
            f"<mailto:{settings.unsubscribe_mailto}?subject=unsubscribe%20{unsubscribe_token}>",
        ]
        list_headers["List-Unsubscribe-Post"] = ["List-Unsubscribe=One-Click"]
    try:
        rendered = template.render(message.data, provided, message.locale)
    except TemplateProblem as problem:
        item.reject(str(problem))
        return
    html = rendered.html
    if template.stream in TRACKED_STREAMS:
        untracked = frozenset(provided.values())
        html = add_tracking(html, item.message_id, ctx.keys, settings.tracking_base_url, untracked)
    sender = template.from_address or settings.default_from
    mime = build_mime(
        sender=sender,
        recipient=message.to,
        subject=rendered.subject,
        text=rendered.text,
        html=html,
        reply_to=message.reply_to,
        list_headers=list_headers,
    )
    item.status = RENDERED
    item.job = SendJob(
        message_id=item.message_id,
        stream=template.stream,
        sender=sender,
        recipient=message.to,
        template=template.name,
        campaign=message.campaign,
        tags=dict(message.tags or {}),
        mime=mime,
        erased_recipients=erased_recipients,
        rendered_by=item.record.record_id,
        retry=_retry_number(item.record) or 0,
        queued_at=_queued_at(item.record, ctx.clock()),
    )


def _record(items: list[_Item], ctx: RenderContext, result: BatchResult) -> None:
    """One transaction for the batch: each message's record is created, or found to exist already. A message
    whose record its claim creates (``records.recorded_at_claim``) carries the record's fields to the send stage
    instead, and costs no write here."""
    now = ctx.clock()
    table = ctx.settings.messages_table
    entries, written, left_to_claim = [], [], []
    for item in items:
        if item.status == DUPLICATE:
            continue
        message, template = item.message, item.template
        if (
            item.status == RENDERED
            and not item.checked
            and records.recorded_at_claim(
                template.stream, ctx.settings.soft_bounce_retry_streams, _retry_number(item.record)
            )
        ):
            item.job.record = _record_fields(item, now, ctx.settings)
            left_to_claim.append(item)
            continue
        record = Message(
            item.message_id,
            status=item.status,
            reason=item.reason,
            recipient=message.to if message and not item.erased else None,
            template=template.name if template else (message.template_name if message else None),
            template_version=template.version if template else None,
            stream=template.stream if template else None,
            campaign=message.campaign if message else None,
            tags=dict(message.tags) if message and message.tags else None,
            queued_at=_queued_at(item.record, now),
            rendered_at=now if item.status == RENDERED else None,
            finished_at=now if item.status != RENDERED else None,
            updated_at=now,
            attempts=0,
            retry=_retry_number(item.record),
            expires_at=int(now + ctx.settings.message_ttl_days * 86400),
            rendered_by=item.record.record_id,
        )
        # A rendered record may be rewritten by a redelivery of the same SQS message (the render was interrupted
        # before the send queue got it), and an earlier attempt's by the soft-bounce retry it asked for.
        replaceable = (RENDERED,) if item.status in (RENDERED, SUPPRESSED) else ()
        retry = _retry_number(item.record) if replaceable else None
        entries.append(records.put_new(table, record, replaceable, retry))
        written.append(item)
    checks = records.SuppressionChecks(ctx.settings.suppressions_table, first_index=len(entries))
    erasure_key = ctx.keys.current.erasure_key if any(item.checked for item in written) else None
    checks_of = {
        item.message_id: checks.require(
            position,
            suppression_names(item.message.to, erasure_key),
            item.template.stream,
            _queued_at(item.record, now),
        )
        for position, item in enumerate(written)
        if item.checked
    }
    kept = _kept_in_transaction(written, ctx, len(entries) + len(checks.entries), checks.dependents)
    outcomes = transact_write(ctx.dynamodb, entries + checks.entries + kept, checks.dependents)
    withdrawn, redelivered = [], set()
    for item, failed in zip(written, outcomes, strict=False):  # the suppression checks' outcomes follow
        if failed is None:
            item.recorded = True
            continue
        if isinstance(failed, Withdrawn):  # its recipient is suppressed: recorded so below, never rendered
            checks_made = [outcomes[c] for c in checks_of[item.message_id]]
            found = [check for check in checks_made if isinstance(check, ConditionFailed)]
            old = found[0].old if found else None
            item.status, item.checked, item.kept = SUPPRESSED, False, False
            item.reason, item.erased = records.describe_suppression(old), records.erased_suppression(old)
            withdrawn.append(item)
            continue
        item.checked = False
        previous = records.old_status(failed.old)
        if previous is None and _retry_number(item.record):
            # The record a retry would replace is gone: erased (nothing may bring the address back) or expired.
            item.status, item.job = DROPPED, None
            item.reason = "a retry whose message record is gone (erased or expired)"
            continue
        if item.status == REJECTED:
            # The id belongs to a message postline already knows: keep its record, still dead-letter this body.
            item.reason = f"{item.reason} (id already used by a message that is {previous})"
            continue
        item.status, item.reason, item.job = DUPLICATE, f"already {previous}", None
        if records.rendered_from(failed.old) == item.record.record_id:
            redelivered.add(item.record.record_id)
            item.reason = f"SQS delivered this message again; it is already {previous}"
    # Repeats within the batch of a message whose claim will create its record are counted by that claim. SQS's
    # redelivery of the very message that made the record is not the application's repeat: not counted.
    at_claim = {item.message_id: item.job.record for item in left_to_claim}
    duplicates = []
    for item in items:
        if item.status == DUPLICATE and item.message_id in at_claim:
            claim_record = at_claim[item.message_id]
            claim_record["repeats"] = claim_record.get("repeats", set()) | {item.record.record_id}
            claim_record["last_duplicate_at"] = now
        elif item.status == DUPLICATE and item.record.record_id not in redelivered:
            duplicates.append((item.message_id, item.record.record_id))
    if withdrawn:
        _record(withdrawn, ctx, result)
    if duplicates:
        transact_write(ctx.dynamodb, records.count_duplicates(table, duplicates, now))


def _record_fields(item: _Item, now: float, settings: Settings) -> dict[str, Any]:
    """What the claim writes into the record it creates (as ``Message`` names them)."""
    message, template = item.message, item.template
    fields = {
        "recipient": message.to,
        "template": template.name,
        "template_version": template.version,
        "stream": template.stream,
        "campaign": message.campaign,
        "tags": dict(message.tags or {}) or None,
        "queued_at": _queued_at(item.record, now),
        "rendered_at": now,
        "expires_at": int(now + settings.message_ttl_days * 86400),
        "rendered_by": item.record.record_id,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _queued_at(record: QueueRecord, now: float) -> float:
    """When the application queued the message (SQS's SentTimestamp; a retry: when postline queued it again)."""
    return record.sent_at or now


def _retry_number(record: QueueRecord) -> int | None:
    value = record.attributes.get(RETRY_ATTRIBUTE)
    return int(value) if value and value.isdigit() else None


def _keep_requests(items: list[_Item], ctx: RenderContext) -> None:
    """Keep what the application sent for the streams whose soft bounces are retried (see ``retries``); best
    effort: without it a soft bounce is counted but not retried."""
    settings, now = ctx.settings, ctx.clock()
    kept = [
        _request_to_keep(i, settings, now)
        for i in items
        if i.status == RENDERED and _keeps_request(i, settings) and not i.kept
    ]
    for start in range(0, len(kept), 25):
        request = {settings.events_table: [{"PutRequest": {"Item": k.serialize()}} for k in kept[start : start + 25]]}
        try:
            unprocessed = ctx.dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems")
            if unprocessed:
                ctx.dynamodb.batch_write_item(RequestItems=unprocessed)
        except Exception as error:  # noqa: BLE001 - the email goes out either way
            # (these items hold addresses and data, which a DynamoDB error message may quote)
            logger.warning(
                "could not keep send messages for soft-bounce retries", extra={"error": describe_for_log(error)}
            )


def _kept_in_transaction(
    written: list[_Item], ctx: RenderContext, offset: int, dependents: dict[int, list[int]]
) -> list[dict[str, Any]]:
    """For the messages recorded with their suppression checks, the request a soft-bounce retry needs (see
    ``_keep_requests``) rides in the same transaction, written only if the record is: no call of its own."""
    settings, now = ctx.settings, ctx.clock()
    entries: list[dict[str, Any]] = []
    for position, item in enumerate(written):
        if item.checked and _keeps_request(item, settings):
            dependents.setdefault(position, []).append(offset + len(entries))
            entries.append(
                {"Put": {"TableName": settings.events_table, "Item": _request_to_keep(item, settings, now).serialize()}}
            )
            item.kept = True
    return entries


def _keeps_request(item: _Item, settings: Settings) -> bool:
    """Whether a soft bounce of this message is retried, so its request must be kept (a retry keeps none)."""
    return item.template.stream in settings.soft_bounce_retry_streams and not _retry_number(item.record)


def _request_to_keep(item: _Item, settings: Settings, now: float):
    return retries.request_item(
        item.message_id, item.record.body, now, settings.soft_bounce_window_seconds + 86_400
    )  # the window, and a day's margin


def _render_checked(items: list[_Item], ctx: RenderContext) -> None:
    """Render the messages recorded together with their suppression checks. One whose data the template cannot
    render after all (the common problems were caught before recording) is recorded as rejected instead."""
    rejected: list[tuple[_Item, dict[str, Any] | None]] = []
    for item in items:
        if item.checked and item.status == RENDERED and item.job is None:
            with _rejected_on_error(item, "render"):
                _render(item, ctx)
            if item.status == REJECTED:
                rejected.append((item, None))
    if rejected:
        _record_rejected(rejected, ctx)


def _record_rejected(rejected: list[tuple[_Item, dict[str, Any] | None]], ctx: RenderContext) -> None:
    """Record as rejected messages found unsendable after their record said rendered (or, with the fields of the
    record their claim would have created, where there is none yet)."""
    now = ctx.clock()
    transact_write(
        ctx.dynamodb,
        [
            records.update(
                ctx.settings.messages_table,
                item.message_id,
                initial=fields,
                set_values={"status": REJECTED, "reason": item.reason, "finished_at": now, "updated_at": now},
                remove=("rendered_at",),
                condition="#status = :c_rendered",
                condition_values={":c_rendered": RENDERED},
            )
            for item, fields in rejected
        ],
    )


def _forward(items: list[_Item], ctx: RenderContext, result: BatchResult) -> None:
    """Rendered messages to their stream's send queue; the outcome of the rest (a rejected one is moved to its
    inbound queue's DLQ with its reason, ``batch.run_isolated``)."""
    settings = ctx.settings
    by_queue: dict[str, list[tuple[_Item, dict[str, Any]]]] = defaultdict(list)
    late: list[tuple[_Item, dict[str, Any] | None]] = []
    for item in items:
        rid = item.record.record_id
        if item.status == RENDERED:
            fields = item.job.record
            try:
                entry = item.job.to_entry(
                    rid, ctx.s3, settings.claim_check_bucket, settings.claim_check_threshold_bytes
                )
            except Exception as error:  # noqa: BLE001 - this message's trouble, or S3's (then it is retried)
                if is_transient(error):
                    result.set(rid, Outcome(item.message_id, "retry", describe_error(error), retry=True))
                    continue
                item.reject(f"could not queue it: {describe_error(error)}")
                late.append((item, fields))
                continue
            by_queue[settings.send_queue_urls[item.job.stream]].append((item, entry))
        else:
            # An undeliverable domain is the address's, not the message's: nothing to redrive (docs/decisions.md).
            result.set(
                rid,
                Outcome(
                    item.message_id,
                    item.status,
                    item.reason,
                    dead_letter=item.status == REJECTED and not item.undeliverable,
                ),
            )
    if late:
        try:
            _record_rejected(late, ctx)
        except RetryLater as error:  # still rendered on its record: a redelivery renders it again
            for item, _ in late:
                result.set(item.record.record_id, Outcome(item.message_id, "retry", str(error), retry=True))
        else:
            for item, _ in late:
                result.set(item.record.record_id, Outcome(item.message_id, REJECTED, item.reason, dead_letter=True))
    for queue_url, pairs in by_queue.items():
        failed = enqueue(ctx.sqs, queue_url, [entry for _, entry in pairs])
        for item, _ in pairs:
            rid = item.record.record_id
            if rid in failed:
                result.set(rid, Outcome(item.message_id, "retry", failed[rid], retry=True))
            else:
                result.set(rid, Outcome(item.message_id, item.status, item.reason))
