"""The send stage: check the suppression list, claim each message, send through SES, record the result.

Exactly once: a message is claimed with a conditional write (status ``sending`` with the claim's time) before SES
is called. A redelivered or repeated message finds the claim and SES is not called again. An email SES accepted
keeps its claim: SES's Send event (tagged with postline's message id) settles it as ``sent`` about a minute later,
unless the email's Delivery has settled it first (see ``events``). Those writes are needed anyway for a process
that dies after SES accepted the email, so the send stage does not make one too: one single-item write per email
instead of a transactional one. Only a claim still unsettled after ``stale_claim_seconds`` is sent again, and only
by a copy of the job that made it (its redelivery); the send queue keeps that copy invisible until then. A repeat
of the message (the same id sent again by the application) is a duplicate as soon as it finds the claim, so it
never depends on how soon SES's events are applied. For marketing mail the claim also creates the record (render
left it to the claim, ``records.recorded_at_claim``), so a message that exists in any state other than ``rendered``
or a stale ``sending`` is never claimed.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from . import records
from .app_events import AppEvent, publish
from .batch import BatchResult, Outcome, QueueRecord, log_outcomes
from .clients import client
from .dynamo import DUPLICATE_ITEM, ConditionFailed, RetryLater, Withdrawn, insert_new, transact_write
from .models import FAILED, RENDERED, SENDING, SENT, SUPPRESSED
from .queues import SendJob
from .ses import PERMANENT, SENT as SES_SENT, TRANSIENT, SendResult, send_raw
from .settings import SEND_EVENT_MARGIN_SECONDS, Settings
from .suppression import describe, find_suppressions

logger = Logger(child=True)

MAX_BACKOFF_SECONDS = 900
SQS_MAX_VISIBILITY_SECONDS = 43_200


@dataclass
class SendContext:
    settings: Settings
    dynamodb: Any = field(default_factory=lambda: client("dynamodb"))
    sqs: Any = field(default_factory=lambda: client("sqs"))
    s3: Any = field(default_factory=lambda: client("s3"))
    sesv2: Any = field(default_factory=lambda: client("sesv2"))
    events: Any = field(default_factory=lambda: client("events"))
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=self.settings.send_concurrency, thread_name_prefix="ses")
        self._queue_urls = {url.rsplit("/", 1)[-1]: url for url in self.settings.send_queue_urls.values()}

    def queue_url(self, queue_name: str) -> str | None:
        return self._queue_urls.get(queue_name)


def claim_wait_seconds(claimed_at: float, now: float, *, stale_claim_seconds: int,
                       send_event_delay_seconds: int) -> int:
    """How long a copy of a job that finds its claim held waits before it looks again. An earlier attempt holds
    it: one that SES accepted is settled by SES's Send event once its queue has held it back
    (``send_event_delay_seconds``) and it is applied, or sooner by the email's Delivery, so a young claim is looked
    at again once that has had time (SQS delivering a message twice, a common case, then ends as a duplicate
    within two minutes); an older one is left until it is stale, when the look takes it over (the attempt died
    before SES had the email) or finds it settled."""
    settled_by = claimed_at + send_event_delay_seconds + SEND_EVENT_MARGIN_SECONDS
    next_look = settled_by if now < settled_by else claimed_at + stale_claim_seconds
    return int(max(1, next_look - now)) + 1


def backoff_seconds(receive_count: int) -> int:
    """30 s, 60 s, 2 min, ... capped at 15 min."""
    return min(MAX_BACKOFF_SECONDS, 30 * 2 ** max(0, receive_count - 1))


def send_batch(batch: list[QueueRecord], ctx: SendContext) -> BatchResult:
    result = BatchResult()
    jobs: dict[str, SendJob] = {}
    repeats: list[str] = []
    for record in batch:
        try:
            job = SendJob.from_body(record.body)
        except (ValueError, KeyError, TypeError) as error:
            result.set(record.record_id, Outcome(None, "retry", f"unreadable send job: {error}", retry=True))
            continue
        if any(other.message_id == job.message_id for other in jobs.values()):
            result.set(record.record_id, Outcome(job.message_id, "duplicate", "repeated in the same batch"))
            repeats.append(job.message_id)
        else:
            jobs[record.record_id] = job
    by_id = {record.record_id: record for record in batch}
    delays: dict[str, int] = {}
    try:
        claimed = _claim(jobs, by_id, ctx, result, delays, repeats)
        sent = _deliver(claimed, ctx)
        _settle(claimed, sent, by_id, ctx, result, delays)
    except RetryLater as error:
        for rid, job in jobs.items():
            if rid not in result.outcomes:
                result.set(rid, Outcome(job.message_id, "retry", str(error), retry=True))
        delays.update({rid: backoff_seconds(by_id[rid].receive_count) for rid in jobs if rid not in delays})
    _delay(delays, by_id, ctx)
    log_outcomes(logger, "send", result, expected=SENT)
    return result


def _claim(jobs, by_id, ctx: SendContext, result: BatchResult, delays: dict[str, int],
           duplicates: list[str]) -> dict[str, SendJob]:
    """Check suppressions and claim the rest: marketing mail's first claims with one batch of PartiQL
    ``INSERT``s (``_insert_first_claims``), every other claim in one transaction (plus one read for the streams
    that check first). This is the check that guards every email: render checks only critical mail, as it
    records it.

    For the streams in ``records.CHECKED_IN_TRANSACTION`` (critical) the check is part of the claim: the
    transaction holds a ConditionCheck that no suppression exists for each of the recipient's scopes, so a claim
    is only ever written while its address is not suppressed. A failed check withdraws the claims that depend on
    it; those messages are then recorded as suppressed (a second write, only on that path). The other streams
    read their suppressions first, in one batched read for the batch.
    """
    settings, now = ctx.settings, ctx.clock()
    blocked = find_suppressions(ctx.dynamodb, settings.suppressions_table,
                                {(job.recipient, job.stream) for job in jobs.values()
                                 if job.stream not in records.CHECKED_IN_TRANSACTION},
                                {job.recipient: job.suppression_names for job in jobs.values()}.__getitem__)
    inserted = _insert_first_claims(jobs, blocked, ctx, now)
    entries: list[dict[str, Any]] = []
    order = []
    for rid, job in jobs.items():
        if rid in inserted:
            continue
        suppression = blocked.get((job.recipient, job.stream))
        if suppression is not None:
            entries.append(_suppressed(settings.messages_table, job, describe(suppression), now,
                                       erased=suppression.email != job.recipient))
        else:
            entries.append(_claim_entry(settings.messages_table, job, now, now - settings.stale_claim_seconds))
        order.append((rid, job, suppression, len(entries) - 1))
    checks = records.SuppressionChecks(settings.suppressions_table, first_index=len(entries))
    checks_of = {index: checks.require(index, job.suppression_names, job.stream)
                 for _, job, suppression, index in order
                 if suppression is None and job.stream in records.CHECKED_IN_TRANSACTION}
    outcomes = transact_write(ctx.dynamodb, entries + checks.entries, checks.dependents)

    def not_written(rid: str, job: SendJob, failed: ConditionFailed) -> None:
        previous = records.old_status(failed.old)
        if previous is None:
            result.set(rid, Outcome(job.message_id, "retry", "no message record", retry=True))
            delays[rid] = backoff_seconds(by_id[rid].receive_count)
        elif previous == SENDING and not _same_job(job, failed.old):
            result.set(rid, Outcome(job.message_id, "duplicate", "already claimed by another copy of the message"))
            duplicates.append(job.message_id)
        elif previous == SENDING:
            claimed_at = float(failed.old.get("claimed_at", {}).get("N", now))
            result.set(rid, Outcome(job.message_id, "retry", "claimed by an earlier attempt", retry=True))
            delays[rid] = claim_wait_seconds(claimed_at, now, stale_claim_seconds=settings.stale_claim_seconds,
                                             send_event_delay_seconds=settings.send_event_delay_seconds)
        else:
            result.set(rid, Outcome(job.message_id, "duplicate", f"already {previous}"))
            duplicates.append(job.message_id)

    claimed: dict[str, SendJob] = {rid: jobs[rid] for rid in inserted}
    late: list[tuple[str, SendJob, str]] = []  # suppressed according to the claim's condition checks
    for rid, job, suppression, index in order:
        failed = outcomes[index]
        if failed is None:
            if suppression is not None:
                result.set(rid, Outcome(job.message_id, SUPPRESSED, describe(suppression)))
            else:
                claimed[rid] = job
        elif isinstance(failed, Withdrawn):
            found = [outcomes[c] for c in checks_of[index] if isinstance(outcomes[c], ConditionFailed)]
            late.append((rid, job, records.describe_suppression(found[0].old if found else None)))
        else:
            not_written(rid, job, failed)
    if late:
        entries = [_suppressed(settings.messages_table, job, reason, now) for _, job, reason in late]
        try:
            written = transact_write(ctx.dynamodb, entries)
        except RetryLater as error:  # not claimed, so not lost: the redelivery checks again
            for rid, job, _ in late:
                result.set(rid, Outcome(job.message_id, "retry", str(error), retry=True))
                delays[rid] = backoff_seconds(by_id[rid].receive_count)
            written = []
        for (rid, job, reason), failed in zip(late, written):
            if failed is None:
                result.set(rid, Outcome(job.message_id, SUPPRESSED, reason))
            else:
                not_written(rid, job, failed)
    if duplicates:
        transact_write(ctx.dynamodb, records.count_duplicates(settings.messages_table, duplicates, now))
    return claimed


def _insert_first_claims(jobs: dict[str, SendJob], blocked: dict, ctx: SendContext, now: float) -> set[str]:
    """Claim with a PartiQL ``INSERT`` each, in one call, the emails whose record the claim creates (marketing
    mail, ``records.recorded_at_claim``) and that are not suppressed; returns the ones claimed.

    A first claim's whole condition is that no record exists, which is what an ``INSERT`` checks: it writes the
    same record ``_claim_entry`` would create, for one write unit instead of a transaction's two. Every email it
    does not write (a redelivery or a repeat finds its record: ``DuplicateItem``; or DynamoDB did not take the
    statement) goes on to the claim's transaction, whose conditions decide as before. A retried call whose first
    attempt did write leaves that email to the transaction too, which finds the claim held and waits for it to go
    stale: later, never twice.
    """
    first = [(rid, job) for rid, job in jobs.items()
             if job.record is not None and job.stream not in records.CHECKED_IN_TRANSACTION
             and (job.recipient, job.stream) not in blocked]
    if not first:
        return set()
    codes = insert_new(ctx.dynamodb, ctx.settings.messages_table, [_first_claim(job, now) for _, job in first])
    unexpected = sorted({code for code in codes if code not in (None, DUPLICATE_ITEM)})
    if unexpected:  # an operator should see it: each such claim costs a transaction instead
        logger.warning("claims left to the transaction", extra={"codes": unexpected})
    return {rid for (rid, _), code in zip(first, codes) if code is None}


def _claimed(now: float) -> dict[str, Any]:
    """What a claim sets on the record, whether it updates the record or creates it."""
    return {"status": SENDING, "claimed_at": now, "updated_at": now}


def _first_claim(job: SendJob, now: float) -> dict[str, Any]:
    """The record a first claim creates: ``_claim_entry``'s write where no record exists."""
    fields = {**job.record, **_claimed(now), "attempts": 1}
    return {"message_id": {"S": job.message_id}, **{name: records.attribute_value(value)
                                                   for name, value in fields.items()}}


def _same_job(job: SendJob, record: dict[str, Any]) -> bool:
    """Whether the claim on ``record`` was made by a copy of ``job`` (always, for jobs that do not say)."""
    return job.rendered_by is None or record.get("rendered_by", {}).get("S") == job.rendered_by


def _claim_entry(table: str, job: SendJob, now: float, stale_before: float) -> dict[str, Any]:
    """Claim a message that render recorded, or one whose record the claim creates (``job.record``), unless
    another attempt holds a fresh claim or the message has moved on. A stale claim is taken over only by a copy
    of the job that made it (same ``rendered_by``: a redelivery after a crash, or a dead-lettered job redriven),
    never by a repeat of the message: a repeat cannot know whether SES took the first one."""
    stale = "#status = :c_sending AND claimed_at < :c_stale"
    values = {":c_rendered": RENDERED, ":c_sending": SENDING, ":c_stale": stale_before}
    if job.rendered_by is not None:  # jobs queued before jobs carried it keep the rule they were queued under
        stale += " AND rendered_by = :c_by"
        values[":c_by"] = job.rendered_by
    return records.update(table, job.message_id, set_values=_claimed(now),
                          initial=job.record, add={"attempts": 1}, condition=f"#status = :c_rendered OR ({stale})",
                          condition_values=values)


def _suppressed(table: str, job: SendJob, reason: str, now: float, erased: bool = False) -> dict[str, Any]:
    initial = job.record  # set when render did not record it: this write creates the record
    if initial is not None and erased:  # the address was erased since rendering: the record must not bring it back
        initial = {name: value for name, value in initial.items() if name != "recipient"}
    return records.update(table, job.message_id, initial=initial, condition="#status = :c_rendered",
                          set_values={"status": SUPPRESSED, "reason": reason, "finished_at": now, "updated_at": now},
                          condition_values={":c_rendered": RENDERED})


def _deliver(claimed: dict[str, SendJob], ctx: SendContext) -> dict[str, SendResult]:
    """Send the claimed messages concurrently (SES calls are I/O; a batch takes about one call's time)."""
    settings = ctx.settings

    def one(job: SendJob) -> SendResult:
        return send_raw(
            ctx.sesv2, message_id=job.message_id, sender=job.sender, recipient=job.recipient,
            mime=job.load_mime(ctx.s3, settings.claim_check_bucket),
            configuration_set=settings.configuration_sets[job.stream], stream=job.stream,
            template=job.template, campaign=job.campaign, tags=job.tags,
        )

    futures = {rid: ctx.pool.submit(one, job) for rid, job in claimed.items()}
    return {rid: future.result() for rid, future in futures.items()}


def _settle(claimed, sent: dict[str, SendResult], by_id, ctx: SendContext, result: BatchResult,
            delays: dict[str, int]) -> None:
    """Record the SES answers that SES will not: an accepted email keeps its claim for SES's Send event to
    settle (module docstring); refusals and transient errors are written in one transaction, each expecting the
    claim still in place. A message SES refused for good is announced to the application (``email.failed``)
    once its record says so."""
    table, now = ctx.settings.messages_table, ctx.clock()
    entries = []
    refused: dict[int, AppEvent] = {}  # entry index -> the announcement, made if that write succeeds
    for rid, job in claimed.items():
        answer = sent[rid]
        holding = {"condition": "#status = :c_sending", "condition_values": {":c_sending": SENDING}}
        if answer.kind == SES_SENT:
            result.set(rid, Outcome(job.message_id, SENT))
        elif answer.kind == PERMANENT:
            refused[len(entries)] = AppEvent("email.failed", job.message_id, now, to=job.recipient,
                                             template=job.template, campaign=job.campaign, tags=job.tags,
                                             detail={"reason": answer.reason})
            entries.append(records.update(table, job.message_id, set_values={
                "status": FAILED, "reason": answer.reason, "finished_at": now, "updated_at": now,
            }, **holding))
            result.set(rid, Outcome(job.message_id, FAILED, answer.reason))
        elif answer.kind == TRANSIENT:
            entries.append(records.update(table, job.message_id, set_values={
                "status": RENDERED, "reason": answer.reason, "updated_at": now,
            }, remove=("claimed_at",), **holding))
            result.set(rid, Outcome(job.message_id, "retry", answer.reason, retry=True))
            delays[rid] = backoff_seconds(by_id[rid].receive_count)
        else:  # UNKNOWN: keep the claim; the Send event or the stale-claim rule decides
            result.set(rid, Outcome(job.message_id, "retry", answer.reason, retry=True))
            delays[rid] = ctx.settings.stale_claim_seconds + 1
    outcomes = transact_write(ctx.dynamodb, entries)
    announced = [event for index, event in refused.items() if outcomes[index] is None]
    if announced:
        publish(ctx.events, ctx.settings.event_bus, announced, ctx.settings.app_events)


def _delay(delays: dict[str, int], by_id: dict[str, QueueRecord], ctx: SendContext) -> None:
    """Keep records that will be retried invisible for their backoff (best effort: on failure SQS's own
    visibility timeout applies)."""
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for rid, seconds in delays.items():
        record = by_id[rid]
        url = ctx.queue_url(record.queue_name)
        if url and record.receipt_handle:
            by_queue.setdefault(url, []).append({
                "Id": rid, "ReceiptHandle": record.receipt_handle,
                "VisibilityTimeout": min(SQS_MAX_VISIBILITY_SECONDS, seconds),
            })
    for url, entries in by_queue.items():
        for start in range(0, len(entries), 10):
            try:
                ctx.sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries[start:start + 10])
            except Exception as error:  # noqa: BLE001 - the retry still happens, only sooner
                logger.warning("could not delay retries", extra={"error": str(error)})
