"""The send stage: check the suppression list, claim each message, send through SES, record the result.

Each stream sends through its transport (postline.transports): SES's API, or an SMTP relay (postline.smtp) whose
replies are classified as SES's answers are, so everything below holds for both. A relay's user-unknown reply
also suppresses the address, as SES's hard Bounce event would.

Exactly once: a message is claimed with a conditional write (status ``sending``, the claim's time and a token of
its own) before SES is called. A redelivered or repeated message finds the claim and SES is not called again. As
soon as SES accepts an email, the thread that sent it records ``sent`` with SES's message id (a conditional write
on its own claim), so a copy of the job arriving any time later is a duplicate. The crash window (SES accepted,
``sent`` not written) is settled by SES's Send event, tagged with postline's message id and attempt (see
``events``). Just before its SES call, the attempt marks its claim as handed to SES (it removes the claim's
``awaiting_handoff``, a conditional write on its own claim; SES is not called if the write fails). A claim still
awaiting its handoff is one SES never saw: a copy of the job that finds it open once the attempt had time to settle
(``claim_wait_seconds``) takes it back and sends the email (an attempt that died between its claim and SES, as a
killed or timed-out function does). A handed-over claim that neither settles is never taken over on a timer: a copy
of the job that finds it still open once ``stale_claim_seconds`` have passed parks it (status ``unknown``, the job
in the send DLQ with the reason, an alarm), for a later SES event or an operator (``postline resolve``) to decide.

SES refusals: a permanent one ends the message as ``failed``, announced once its record says so; a passing one
(throttling, the daily quota, sending paused, an identity SES has not verified yet) releases the claim and puts the
job back on its queue with a delay, so the email waits as long as the refusal lasts (up to
``max_send_wait_seconds``) without spending receives. An email held for an unverified identity says so in its
record's reason and is counted in the ``HeldUnverified`` metric, which alarms.

For marketing mail the claim also creates the record (render left it to the claim, ``records.recorded_at_claim``),
so a message that exists in any state other than ``rendered`` is never claimed.

A campaign's emails first pass its gate (``campaigns.gate``): while the campaign is paused, waiting or outside
its window they wait on their queue, unclaimed; once it is cancelled they end as ``cancelled``, never claimed.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, cast

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from . import records
from .analytics import Analytics, Fact, emit_metric
from .app_events import AccountEvent, AppEvent, publish
from .batch import (
    BatchResult,
    DeadLetters,
    Outcome,
    QueueRecord,
    describe_error,
    describe_for_log,
    log_outcomes,
    run_isolated,
)
from .campaigns import store as campaigns
from .campaigns.gate import DROP, HOLD, CampaignGate
from .clients import client
from .dynamo import DUPLICATE_ITEM, ConditionFailed, RetryLater, Withdrawn, condition_failed, insert_new, transact_write
from .limiter import RATE, Limiter, Quota, WarmupPlan
from .models import CANCELLED, FAILED, RENDERED, SENDING, SENT, SUPPRESSED, SUPPRESSION_SCOPE_ALL, UNKNOWN, Suppression
from .queues import SendJob
from .retries import REQUEST, SQS_MAX_DELAY_SECONDS
from .ses import PERMANENT, QUOTA_THROTTLE, RATE_THROTTLE, TRANSIENT, SendResult
from .ses import SENT as SES_SENT
from .ses import UNKNOWN as SES_UNKNOWN
from .settings import SEND_EVENT_MARGIN_SECONDS, STREAMS, Settings
from .suppression import describe, find_suppressions, first_blocking, is_erased_name, suppression_key
from .transports import SES_API, Email, SesApiTransport, Transport

logger = Logger(child=True)

MAX_BACKOFF_SECONDS = 900
SQS_MAX_VISIBILITY_SECONDS = 43_200
WAITING_SINCE_ATTRIBUTE = "postline_waiting_since"  # on a job put back on its queue: since when SES refuses it
RATE_THROTTLE_WAIT_SECONDS = 2  # a job SES throttled for the rate is back this soon (the limiter slows down)
# Emails held because SES has not verified an identity they use (per stream): the HeldUnverified alarms watch it.
HELD_UNVERIFIED_METRIC = "HeldUnverified"
# Set by a claim, removed just before the email goes to SES: a claim that still has it was never sent.
HANDOFF_PENDING = "awaiting_handoff"


@dataclass
class SendContext:
    settings: Settings
    dynamodb: Any = field(default_factory=lambda: client("dynamodb"))
    sqs: Any = field(default_factory=lambda: client("sqs"))
    s3: Any = field(default_factory=lambda: client("s3"))
    sesv2: Any = field(default_factory=lambda: client("sesv2"))
    events: Any = field(default_factory=lambda: client("events"))
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    limiter: Limiter | None = None  # the shared sending-rate limiter; built from the settings when not given
    # stream -> its SMTP transport (the other streams send through SES's API); built from the settings when not
    # given, once per container, so their connections stay open across warm invocations.
    relays: dict[str, Transport] | None = None
    secrets: Any = None  # the Secrets Manager client the relays' credentials are read with (made if needed)

    def __post_init__(self) -> None:
        if self.relays is None:
            self.relays = {}
            if self.settings.smtp_relays:
                from .smtp import SmtpTransport, parse_relays  # only a deployment with a relay imports smtplib

                relays = parse_relays(self.settings.smtp_relays, STREAMS)
                if any(relay.secret for relay in relays.values()) and self.secrets is None:
                    self.secrets = client("secretsmanager")
                self.relays = {stream: SmtpTransport(relay, secrets=self.secrets) for stream, relay in relays.items()}
        self.pool = ThreadPoolExecutor(max_workers=self.settings.send_concurrency, thread_name_prefix="ses")
        self.campaigns = CampaignGate(self.dynamodb, self.settings.campaigns_table, self.clock)
        self.analytics = Analytics(self.settings, dynamodb=self.dynamodb, events=self.events, clock=self.clock)
        self._queue_urls = {url.rsplit("/", 1)[-1]: url for url in self.settings.send_queue_urls.values()}
        if self.limiter is None:
            settings = self.settings
            self.limiter = Limiter(
                self.dynamodb,
                self.sesv2,
                settings.rate_limits_table,
                marketing_share=settings.marketing_rate_share,
                max_send_rate=settings.max_send_rate,
                max_24_hour_send=settings.max_24_hour_send,
                quota_refresh_seconds=settings.quota_refresh_seconds,
                warmup=WarmupPlan.from_json(settings.warmup_plan) if settings.warmup_plan else None,
                clock=self.clock,
                on_quota_low=self._announce_quota_low,
            )

    def _announce_quota_low(self, level: int, quota: Quota) -> None:
        stopped = ("marketing", "transactional", "critical")[:level]
        event = AccountEvent(
            "sending.quota_low",
            self.clock(),
            {
                "level": level,
                "stopped_streams": list(stopped),
                "max_24_hour_send": quota.max_24_hour_send,
                "sent_last_24_hours": quota.sent_last_24_hours,
            },
        )
        publish(self.events, self.settings.event_bus, [event], (event.name,))

    def queue_url(self, queue_name: str) -> str | None:
        return self._queue_urls.get(queue_name)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(
            self.sqs,
            self.settings.send_dlq_urls,
            max_receives=self.settings.max_receive_count,
            note_given_up=lambda outcomes: records.note_dead_lettered(
                self.dynamodb, self.settings.messages_table, outcomes, self.clock()
            ),
        )


def claim_settled_by(claimed_at: float, send_event_delay_seconds: int) -> float:
    """When an attempt that claimed at ``claimed_at`` has been settled, if anything settles it: by itself, or by
    SES's Send event once its queue held it back (``send_event_delay_seconds``) and it was applied."""
    return claimed_at + send_event_delay_seconds + SEND_EVENT_MARGIN_SECONDS


def claim_wait_seconds(
    claimed_at: float, now: float, *, stale_claim_seconds: int, send_event_delay_seconds: int
) -> int:
    """How long a copy of a job that finds its own claim open waits before it looks again. An attempt SES accepted
    is settled at once by the attempt itself, or else by SES's Send event once its queue has held it back
    (``send_event_delay_seconds``) and it is applied, or by the email's Delivery: a young claim is looked at again
    once that has had time; an older one when it is stale, when the look parks it if it is still open."""
    settled_by = claim_settled_by(claimed_at, send_event_delay_seconds)
    next_look = settled_by if now < settled_by else claimed_at + stale_claim_seconds
    return int(max(1, next_look - now)) + 1


def backoff_seconds(receive_count: int) -> int:
    """30 s, 60 s, 2 min, ... capped at 15 min."""
    return min(MAX_BACKOFF_SECONDS, 30 * 2 ** max(0, receive_count - 1))


def send_batch(batch: list[QueueRecord], ctx: SendContext) -> BatchResult:
    return run_isolated(batch, lambda records: _send(records, ctx), ctx.dead_letters)


@dataclass
class _Batch:
    """One invocation's work: the jobs by record id, and what happens to each."""

    records: dict[str, QueueRecord]
    jobs: dict[str, SendJob] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # record id -> the token its claim carries
    result: BatchResult = field(default_factory=BatchResult)
    delays: dict[str, int] = field(default_factory=dict)  # record id -> seconds until it is received again
    requeue: dict[str, int] = field(default_factory=dict)  # record id -> seconds its job waits on its queue
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (message id, the repeat's SQS message id)
    claimed: set[str] = field(default_factory=set)  # record ids whose claim this invocation holds
    held: set[str] = field(default_factory=set)  # record ids held for their campaign (not waiting for SES)
    # record ids waiting for a sending slot or an earlier attempt's claim: not a refusal, so not waiting for SES
    paced: set[str] = field(default_factory=set)
    unhanded: set[str] = field(default_factory=set)  # record ids whose claim could not be marked: SES not called

    def retry(self, rid: str, reason: str, seconds: int) -> None:
        self.result.set(rid, Outcome(self.jobs[rid].message_id, "retry", reason, retry=True))
        self.delays[rid] = seconds

    def wait_as_new_message(self, rid: str, reason: str, seconds: int) -> None:
        """Put the job back on its queue as a new message, seen again in ``seconds``: unlike ``retry`` it spends
        none of the job's receives (a claim's waits and take-backs must not carry a job to SQS's DLQ unexplained)."""
        self.result.set(rid, Outcome(self.jobs[rid].message_id, "waiting", reason))
        self.requeue[rid] = min(SQS_MAX_DELAY_SECONDS, seconds)
        self.paced.add(rid)


def _send(batch: list[QueueRecord], ctx: SendContext) -> BatchResult:
    work = _Batch({record.record_id: record for record in batch})
    for record in batch:
        try:
            job = SendJob.from_body(record.body)
        except Exception as error:  # noqa: BLE001 - no copy of it could ever be read: to the DLQ with why
            work.result.set(
                record.record_id,
                Outcome(None, "unreadable", f"unreadable send job: {describe_error(error)}", dead_letter=True),
            )
            continue
        if any(other.message_id == job.message_id for other in work.jobs.values()):
            work.result.set(record.record_id, Outcome(job.message_id, "duplicate", "repeated in the same batch"))
            work.duplicates.append(_repeat(job, record))
        else:
            work.jobs[record.record_id] = job
            work.tokens[record.record_id] = secrets.token_hex(8)
    jobs = dict(work.jobs)  # the steps below take jobs off as they settle them
    try:
        _gate_campaigns(work, ctx)
        _hold_back(work, ctx)
        claimed = _claim(work, ctx)
        slots = _take_slots(claimed, work, ctx)
    except (RetryLater, ClientError, BotoCoreError) as error:
        _release(work, ctx)  # claims made before DynamoDB failed: SES was not called for them
        _retry_the_rest(work, error)
    else:
        try:
            _settle(claimed, _deliver(claimed, slots, work, ctx), work, ctx)
        except (RetryLater, ClientError, BotoCoreError) as error:
            _retry_the_rest(work, error)
    _requeue(work, ctx)
    _delay(work.delays, work.records, ctx)
    _count(work.result, jobs, ctx)
    log_outcomes(logger, "send", work.result, expected=SENT)
    return work.result


_COUNTED = {SENT: "sent", SUPPRESSED: "suppressed", FAILED: "failed"}


def _count(result: BatchResult, jobs: dict[str, SendJob], ctx: SendContext) -> None:
    """Count the batch's sent, suppressed and failed emails (postline.analytics). Best effort: the emails' fates
    are recorded already, and a send is never retried for its counters; a failure here costs their counts alone."""
    now = ctx.clock()
    facts = [
        Fact(_COUNTED[outcome.result], job.message_id, now, job.stream, job.template, job.campaign)
        for rid, job in jobs.items()
        if (outcome := result.outcomes.get(rid)) is not None and outcome.result in _COUNTED
    ]
    try:
        ctx.analytics.record(facts)
    except Exception as error:  # noqa: BLE001
        logger.warning("sends not counted", extra={"error": describe_for_log(error), "emails": len(facts)})


def _retry_the_rest(work: _Batch, error: Exception) -> None:
    for rid in work.jobs:
        if rid not in work.result.outcomes:
            work.retry(rid, describe_error(error), backoff_seconds(work.records[rid].receive_count))


def _gate_campaigns(work: _Batch, ctx: SendContext) -> None:
    """Leave on their queue, unclaimed, the marketing emails of a campaign that is paused, waiting or outside its
    window; drop, unclaimed, those of a cancelled campaign. Emails naming no campaign postline runs go on."""
    names = {job.campaign for job in work.jobs.values() if job.stream == "marketing" and job.campaign}
    if not names:
        return
    verdicts = ctx.campaigns.verdicts(names)
    dropped: list[tuple[str, SendJob]] = []
    for rid, job in list(work.jobs.items()):
        verdict = verdicts.get(job.campaign) if job.stream == "marketing" else None
        if verdict == HOLD:
            work.result.set(rid, Outcome(job.message_id, "waiting", "waiting for its campaign"))
            work.requeue[rid] = ctx.campaigns.hold_seconds(job.campaign)
            work.held.add(rid)
            del work.jobs[rid]
        elif verdict == DROP:
            dropped.append((rid, work.jobs.pop(rid)))
    if dropped:
        _cancel(dropped, work, ctx)


def _cancel(dropped: list[tuple[str, SendJob]], work: _Batch, ctx: SendContext) -> None:
    """Record the emails of a cancelled campaign as ``cancelled`` (their records did not exist or were rendered),
    and count them in their campaigns, once per batch each. A copy of one already recorded is not counted again."""
    settings, now, reason = ctx.settings, ctx.clock(), "its campaign was cancelled"
    entries = [
        records.update(
            settings.messages_table,
            job.message_id,
            initial=job.record,
            set_values={"status": CANCELLED, "reason": reason, "finished_at": now, "updated_at": now},
            condition="#status = :c_rendered",
            condition_values={":c_rendered": RENDERED},
        )
        for _, job in dropped
    ]
    try:
        outcomes = transact_write(ctx.dynamodb, entries)
    except (RetryLater, ClientError, BotoCoreError) as error:  # not recorded: the redelivery drops it again
        for rid, job in dropped:
            work.result.set(rid, Outcome(job.message_id, "retry", describe_error(error), retry=True))
            work.delays[rid] = backoff_seconds(work.records[rid].receive_count)
        return
    cancelled: dict[str, int] = {}
    for (rid, job), failed in zip(dropped, outcomes, strict=True):
        # cast: written without dependents, so nothing is Withdrawn
        previous = records.old_status(cast(ConditionFailed, failed).old) if failed is not None else None
        if failed is None:
            cancelled[job.campaign] = cancelled.get(job.campaign, 0) + 1
        work.result.set(
            rid,
            Outcome(job.message_id, "duplicate", f"already {previous}")
            if previous
            else Outcome(job.message_id, CANCELLED, reason),
        )
    for campaign, count in cancelled.items():
        try:
            campaigns.add_counts(ctx.dynamodb, settings.campaigns_table, campaign, {CANCELLED: count})
        except (ClientError, BotoCoreError) as error:  # the emails are cancelled all the same: only the count lags
            logger.warning(
                "cancelled emails not counted",
                extra={"campaign": campaign, "cancelled": count, "error": describe_for_log(error)},
            )


def _hold_back(work: _Batch, ctx: SendContext) -> None:
    """Leave on their queue, unclaimed, the jobs of streams the 24-hour quota or a warm-up cap holds back now."""
    for stream in {job.stream for job in work.jobs.values()}:
        held = ctx.limiter.held_back(stream)
        if held.waiting_for:
            for rid in [rid for rid, job in work.jobs.items() if job.stream == stream]:
                _wait_for_tokens(rid, work.jobs.pop(rid), held.waiting_for, held.retry_after, work)


def _wait_for_tokens(rid: str, job: SendJob, waiting_for: str, seconds: float, work: _Batch) -> None:
    work.result.set(rid, Outcome(job.message_id, "waiting", f"waiting for {waiting_for}"))
    work.requeue[rid] = int(min(SQS_MAX_DELAY_SECONDS, max(1, math.ceil(seconds))))
    if waiting_for == RATE:
        work.paced.add(rid)


def _take_slots(claimed: dict[str, SendJob], work: _Batch, ctx: SendContext) -> dict[str, float]:
    """The moment each claimed email may go to SES, from the shared limiter (one call per stream of the batch,
    waiting in the invocation while only the rate holds them back). The claims of emails left without a slot are
    given back, and those emails wait on their queue."""
    slots: dict[str, float] = {}
    for stream in {job.stream for job in claimed.values()}:
        rids = [rid for rid, job in claimed.items() if job.stream == stream]
        grant = ctx.limiter.acquire(
            stream, len(rids), wait_until=ctx.clock() + ctx.settings.max_token_wait_seconds, sleep=ctx.sleep
        )
        slots.update(zip(rids, sorted(grant.slots), strict=False))  # a partial grant: the rest wait
        waiting = rids[len(grant.slots) :]
        if waiting:
            _release(work, ctx, waiting)
            for rid in waiting:
                _wait_for_tokens(rid, claimed.pop(rid), grant.waiting_for, grant.retry_after, work)
    return slots


def _release(work: _Batch, ctx: SendContext, rids: Collection[str] | None = None) -> None:
    """Give back claims this invocation made (all of them by default), SES not called for them, so that a copy of
    the job claims them at once. Best effort: a claim not given back still awaits its handoff, and a copy of the
    job takes it back once it is old enough (``_take_back``)."""
    now = ctx.clock()
    for rid in list(work.claimed if rids is None else rids):
        work.claimed.discard(rid)
        try:
            ctx.dynamodb.update_item(
                **_give_back(
                    ctx.settings.messages_table, work.jobs[rid].message_id, now, **_own_claim(work.tokens[rid])
                )["Update"]
            )
        except Exception as error:  # noqa: BLE001
            logger.warning(
                "a claim was not given back: a later copy of its job takes it back",
                extra={"message_id": work.jobs[rid].message_id, "error": describe_for_log(error)},
            )


def _claim(work: _Batch, ctx: SendContext) -> dict[str, SendJob]:
    """Check suppressions and claim the rest: marketing mail's first claims with one batch of PartiQL
    ``INSERT``s (``_insert_first_claims``), every other claim in one transaction (plus one read for the streams
    that check first). This is the check that guards every email: render checks only critical mail, as it
    records it.

    For the streams in ``records.CHECKED_IN_TRANSACTION`` (critical) the check is part of the claim: the
    transaction holds a ConditionCheck that no suppression exists for each of the recipient's scopes, so a claim
    is only ever written while its address is not suppressed. A failed check withdraws the claims that depend on
    it; those messages are then recorded as suppressed (a second write, only on that path). The other streams
    read their suppressions first, in one batched, strongly consistent read for the batch.
    """
    settings, now, jobs = ctx.settings, ctx.clock(), work.jobs
    found = find_suppressions(
        ctx.dynamodb,
        settings.suppressions_table,
        {(job.recipient, job.stream) for job in jobs.values() if job.stream not in records.CHECKED_IN_TRANSACTION},
        {job.recipient: job.suppression_names for job in jobs.values()}.__getitem__,
    )
    blocked = {
        rid: suppression
        for rid, job in jobs.items()
        if (suppression := first_blocking(found.get((job.recipient, job.stream), ()), job.queued_at))
    }
    inserted = _insert_first_claims(work, blocked, ctx, now)
    work.claimed.update(inserted)
    entries: list[dict[str, Any]] = []
    order = []
    for rid, job in jobs.items():
        if rid in inserted:
            continue
        suppression = blocked.get(rid)
        if suppression is not None:
            entries.append(
                _suppressed(
                    settings.messages_table, job, describe(suppression), now, erased=is_erased_name(suppression.email)
                )
            )
        else:
            entries.append(_claim_entry(settings.messages_table, job, work.tokens[rid], now))
        order.append((rid, job, suppression, len(entries) - 1))
    checks = records.SuppressionChecks(settings.suppressions_table, first_index=len(entries))
    checks_of = {
        index: checks.require(index, job.suppression_names, job.stream, job.queued_at)
        for _, job, suppression, index in order
        if suppression is None and job.stream in records.CHECKED_IN_TRANSACTION
    }
    forgotten = [
        _forget_request(settings.events_table, job.message_id)
        for _, job, suppression, _ in order
        if suppression is not None and is_erased_name(suppression.email)
    ]
    outcomes = transact_write(ctx.dynamodb, entries + checks.entries + forgotten, checks.dependents)

    claimed: dict[str, SendJob] = {rid: jobs[rid] for rid in inserted}
    late: list[tuple[str, SendJob, str, bool]] = []  # suppressed according to the claim's condition checks
    for rid, job, suppression, index in order:
        failed = outcomes[index]
        if failed is None:
            if suppression is not None:
                work.result.set(rid, Outcome(job.message_id, SUPPRESSED, describe(suppression)))
            else:
                claimed[rid] = job
                work.claimed.add(rid)
        elif isinstance(failed, Withdrawn):
            checks_made = [outcomes[c] for c in checks_of[index]]
            found_items = [check for check in checks_made if isinstance(check, ConditionFailed)]
            old = found_items[0].old if found_items else None
            late.append((rid, job, records.describe_suppression(old), records.erased_suppression(old)))
        else:
            _not_claimed(rid, job, failed, suppression is not None, work, ctx, now)
    if late:
        entries = [_suppressed(settings.messages_table, job, reason, now, erased) for _, job, reason, erased in late]
        entries += [_forget_request(settings.events_table, job.message_id) for _, job, _, erased in late if erased]
        try:
            written = transact_write(ctx.dynamodb, entries)
        except RetryLater as error:  # not claimed, so not lost: the redelivery checks again
            for rid, _, _, _ in late:
                work.retry(rid, str(error), backoff_seconds(work.records[rid].receive_count))
            written = []
        for (rid, job, reason, _), failed in zip(late, written, strict=False):  # none when not written
            if failed is None:
                work.result.set(rid, Outcome(job.message_id, SUPPRESSED, reason))
            else:  # cast: written without dependents, so nothing is Withdrawn
                _not_claimed(rid, job, cast(ConditionFailed, failed), True, work, ctx, now)
    if work.duplicates:
        transact_write(ctx.dynamodb, records.count_duplicates(settings.messages_table, work.duplicates, now))
    return claimed


def _not_claimed(
    rid: str, job: SendJob, failed: ConditionFailed, suppressing: bool, work: _Batch, ctx: SendContext, now: float
) -> None:
    """What a job whose write did not happen becomes, from the record as it stood."""
    settings, record = ctx.settings, work.records[rid]
    previous = records.old_status(failed.old)
    if previous is None and suppressing:  # erased (or expired) while it waited: nothing left to write to
        work.result.set(rid, Outcome(job.message_id, SUPPRESSED, "suppressed, and its record is gone"))
    elif previous is None:
        work.retry(rid, "no message record", backoff_seconds(record.receive_count))
    elif previous == RENDERED and _retry_of(failed.old) != job.retry:
        work.result.set(rid, Outcome(job.message_id, "duplicate", f"superseded by attempt {_retry_of(failed.old)}"))
    elif previous == SENDING and not _same_job(job, failed.old):
        work.result.set(rid, Outcome(job.message_id, "duplicate", "already claimed by another copy of the message"))
        work.duplicates.append(_repeat(job, record))
    elif previous == SENDING:
        claimed_at = float(failed.old.get("claimed_at", {}).get("N", now))
        settled_by = claim_settled_by(claimed_at, settings.send_event_delay_seconds)
        if failed.old.get(HANDOFF_PENDING, {}).get("BOOL") and now >= settled_by:
            _take_back(rid, job, claimed_at, work, ctx, now)
        elif now < claimed_at + settings.stale_claim_seconds:
            wait = claim_wait_seconds(
                claimed_at,
                now,
                stale_claim_seconds=settings.stale_claim_seconds,
                send_event_delay_seconds=settings.send_event_delay_seconds,
            )
            if record.receive_count < settings.max_receive_count:
                work.retry(rid, "claimed by an earlier attempt", wait)
            else:  # its last receive: it waits as a new message, for a claim that may yet settle or be taken back
                work.wait_as_new_message(rid, "claimed by an earlier attempt", wait)
        else:
            _park(rid, job, claimed_at, work, ctx, now)
    elif job.rendered_by is not None and _same_job(job, failed.old):  # SQS's redelivery: not a repeat to count
        work.result.set(rid, Outcome(job.message_id, "duplicate", f"delivered again; already {previous}"))
    else:
        work.result.set(rid, Outcome(job.message_id, "duplicate", f"already {previous}"))
        work.duplicates.append(_repeat(job, record))


def _repeat(job: SendJob, record: QueueRecord) -> tuple[str, str]:
    """A repeat as ``records.count_duplicates`` counts it: by the SQS message the application sent it in (the one
    the job was rendered from; a job that does not say, by its own)."""
    return job.message_id, job.rendered_by or record.record_id


def _take_back(rid: str, job: SendJob, claimed_at: float, work: _Batch, ctx: SendContext, now: float) -> None:
    """An attempt claimed the message and stopped before it handed the email to SES (its claim still awaits the
    handoff): give the claim back, and put this job back on its queue as a new message, which claims and sends the
    email in a second.
    The write expects the claim exactly as found, still awaiting its handoff: an attempt still alive that marks it
    meanwhile keeps it (and sends), and one that tries to mark it after this write finds it gone and does not."""
    try:
        taken = transact_write(
            ctx.dynamodb,
            [
                _give_back(
                    ctx.settings.messages_table,
                    job.message_id,
                    now,
                    condition=f"#status = :c_sending AND claimed_at = :c_at AND {HANDOFF_PENDING} = :c_pending",
                    condition_values={":c_sending": SENDING, ":c_at": claimed_at, ":c_pending": True},
                )
            ],
        )
    except RetryLater as error:
        work.retry(rid, str(error), backoff_seconds(work.records[rid].receive_count))
        return
    if taken[0] is None:  # the job has spent receives on the dead attempt's claim: it starts afresh
        work.wait_as_new_message(
            rid, "an earlier attempt claimed it and stopped before handing it to SES: given back, to be sent", 1
        )
    else:  # marked or settled meanwhile: the next look finds how
        work.retry(rid, "the claim moved on while it was taken back", 1)


def _park(rid: str, job: SendJob, claimed_at: float, work: _Batch, ctx: SendContext, now: float) -> None:
    """An attempt claimed the message and nothing recorded what SES did with it: neither the attempt (it died,
    or lost SES's answer) nor an SES event. Sending again could send twice, so the message is parked: status
    ``unknown`` with the reason, and this job in the send DLQ (which alarms) until someone decides."""
    when = datetime.fromtimestamp(claimed_at, timezone.utc).isoformat(timespec="seconds")
    if job.stream in ctx.relays:  # the relay's reply was lost after the email's content went (docs/smtp.md)
        what = "no answer from the SMTP relay; the relay may"
    else:
        what = "no SES answer and no SES event settled it; SES may"
    reason = (
        f"outcome unknown: the attempt of {when} left {what} or may not have sent it. Check, then "
        f"`postline resolve {job.message_id} --sent` or `--not-sent`"
    )
    condition = "#status = :c_sending AND claimed_at = :c_at"
    values = {":c_sending": SENDING, ":c_at": claimed_at}
    try:
        parked = transact_write(
            ctx.dynamodb,
            [
                records.update(
                    ctx.settings.messages_table,
                    job.message_id,
                    set_values={"status": UNKNOWN, "reason": reason, "updated_at": now},
                    condition=condition,
                    condition_values=values,
                )
            ],
        )
    except RetryLater as error:
        work.retry(rid, str(error), backoff_seconds(work.records[rid].receive_count))
        return
    if parked[0] is None:
        work.result.set(rid, Outcome(job.message_id, UNKNOWN, reason, dead_letter=True))
    else:  # settled meanwhile: the next look finds how
        work.retry(rid, "the claim moved on while it was parked", 1)


def _retry_of(record: dict[str, Any] | None) -> int:
    return int(record.get("retry", {}).get("N", 0)) if record else 0


def _insert_first_claims(work: _Batch, blocked: dict, ctx: SendContext, now: float) -> set[str]:
    """Claim with a PartiQL ``INSERT`` each, in one call, the emails whose record the claim creates (marketing
    mail, ``records.recorded_at_claim``) and that are not suppressed; returns the ones claimed.

    A first claim's whole condition is that no record exists, which is what an ``INSERT`` checks: it writes the
    same record ``_claim_entry`` would create, for one write unit instead of a transaction's two. Every email it
    does not write (a redelivery or a repeat finds its record: ``DuplicateItem``; or DynamoDB did not take the
    statement) goes on to the claim's transaction, whose conditions decide as before. A retried call whose first
    attempt did write leaves that email to the transaction too, which finds the claim held by an earlier
    attempt: parked if nothing settles it, never sent twice.
    """
    first = [
        (rid, job)
        for rid, job in work.jobs.items()
        if job.record is not None and job.stream not in records.CHECKED_IN_TRANSACTION and rid not in blocked
    ]
    if not first:
        return set()
    codes = insert_new(
        ctx.dynamodb, ctx.settings.messages_table, [_first_claim(job, work.tokens[rid], now) for rid, job in first]
    )
    unexpected = sorted({code for code in codes if code not in (None, DUPLICATE_ITEM)})
    if unexpected:  # an operator should see it: each such claim costs a transaction instead
        logger.warning("claims left to the transaction", extra={"codes": unexpected})
    return {rid for (rid, _), code in zip(first, codes, strict=True) if code is None}


def _claimed(now: float, token: str) -> dict[str, Any]:
    """What a claim sets on the record, whether it updates the record or creates it."""
    return {"status": SENDING, "claimed_at": now, "claim": token, HANDOFF_PENDING: True, "updated_at": now}


def _own_claim(token: str) -> dict[str, Any]:
    """The condition of a write only the attempt holding the claim (its ``token``) may make."""
    return {
        "condition": "#status = :c_sending AND claim = :c_claim",
        "condition_values": {":c_sending": SENDING, ":c_claim": token},
    }


def _give_back(
    table: str, message_id: str, now: float, *, condition: str, condition_values: dict[str, Any], reason: str = ""
) -> dict[str, Any]:
    """The write that gives a claim back (the message ``rendered`` again, without the claim's attributes), so that
    the next copy of its job claims it; ``condition`` says which claim, ``reason`` why, if the record should say."""
    values: dict[str, Any] = {"status": RENDERED, "updated_at": now}
    if reason:
        values["reason"] = reason
    return records.update(
        table,
        message_id,
        set_values=values,
        remove=("claimed_at", "claim", HANDOFF_PENDING),
        condition=condition,
        condition_values=condition_values,
    )


def _hand_over(ctx: SendContext, job: SendJob, token: str) -> str | None:
    """Mark the claim as handed to SES, just before SES is called: None when marked, else why SES must not be
    called (the claim moved on: a copy took it back; or DynamoDB did not answer). The write is idempotent, so
    botocore retrying one DynamoDB applied before it failed finds its own claim and passes."""
    entry = records.update(
        ctx.settings.messages_table,
        job.message_id,
        set_values={"updated_at": ctx.clock()},
        remove=(HANDOFF_PENDING,),
        **_own_claim(token),
    )["Update"]
    try:
        ctx.dynamodb.update_item(**entry)
        return None
    except (ClientError, BotoCoreError) as error:
        if condition_failed(error):
            return "not sent: its claim moved on before it was handed to SES"
        return f"not sent: its claim could not be marked as handed to SES: {describe_error(error)}"


def _first_claim(job: SendJob, token: str, now: float) -> dict[str, Any]:
    """The record a first claim creates: ``_claim_entry``'s write where no record exists."""
    fields = {**job.record, **_claimed(now, token), "attempts": 1}
    return {
        "message_id": {"S": job.message_id},
        **{name: records.attribute_value(value) for name, value in fields.items()},
    }


def _same_job(job: SendJob, record: dict[str, Any]) -> bool:
    """Whether the claim on ``record`` was made by a copy of ``job`` (always, for jobs that do not say)."""
    return job.rendered_by is None or records.rendered_from(record) == job.rendered_by


def _claim_entry(table: str, job: SendJob, token: str, now: float) -> dict[str, Any]:
    """Claim a message that render recorded for this attempt, or one whose record the claim creates
    (``job.record``). Any other state (claimed, sent, parked, another attempt's) is left as it is."""
    condition = "#status = :c_rendered AND " + ("#retry = :c_retry" if job.retry else "attribute_not_exists(#retry)")
    values: dict[str, Any] = {":c_rendered": RENDERED}
    if job.retry:
        values[":c_retry"] = job.retry
    entry = records.update(
        table,
        job.message_id,
        set_values=_claimed(now, token),
        initial=job.record,
        add={"attempts": 1},
        condition=condition,
        condition_values=values,
    )
    entry["Update"]["ExpressionAttributeNames"]["#retry"] = "retry"
    return entry


def _suppressed(table: str, job: SendJob, reason: str, now: float, erased: bool = False) -> dict[str, Any]:
    """Record the message as suppressed. For an erased address the record must not keep (or bring back) it."""
    initial = job.record  # set when render did not record it: this write creates the record
    if initial is not None and erased:
        initial = {name: value for name, value in initial.items() if name != "recipient"}
    return records.update(
        table,
        job.message_id,
        initial=initial,
        condition="#status = :c_rendered",
        set_values={"status": SUPPRESSED, "reason": reason, "finished_at": now, "updated_at": now},
        remove=("recipient",) if erased else (),
        condition_values={":c_rendered": RENDERED},
    )


def _forget_request(events_table: str, message_id: str) -> dict[str, Any]:
    """Delete the send message render kept for soft-bounce retries: it holds the address of an erased recipient."""
    return {
        "Delete": {"TableName": events_table, "Key": {"message_id": {"S": message_id}, "time_type": {"S": REQUEST}}}
    }


def _deliver(
    claimed: dict[str, SendJob], slots: dict[str, float], work: _Batch, ctx: SendContext
) -> dict[str, tuple[SendResult, bool]]:
    """Send the claimed messages, each at its slot from the limiter. Bodies are read concurrently first; then this
    thread hands each email to the pool when its slot comes (the pool thread marks its claim as handed to SES,
    then calls SES), so a pool thread is busy only while it talks to AWS
    (one pool then serves several batches at once, as the local stack's pollers share one process, and an email
    is never late because a thread was asleep for another's slot). Each thread records ``sent`` the moment SES
    accepts, so the window in which only SES knows is one write long. Returns each answer, and whether its
    ``sent`` was recorded."""
    settings = ctx.settings

    def load(job: SendJob) -> bytes | SendResult:
        try:
            return job.load_mime(ctx.s3, settings.claim_check_bucket)
        except (ClientError, BotoCoreError) as error:
            code = error.response["Error"].get("Code", "") if isinstance(error, ClientError) else ""
            if code in ("NoSuchKey", "404"):
                return SendResult(PERMANENT, reason="its rendered body is gone from the claim-check bucket")
            return SendResult(TRANSIENT, reason=f"could not read its rendered body: {describe_error(error)}")

    ses_api = SesApiTransport(ctx.sesv2)

    def send(rid: str, job: SendJob, mime: bytes) -> tuple[SendResult, bool]:
        not_handed = _hand_over(ctx, job, work.tokens[rid])
        if not_handed is not None:
            work.unhanded.add(rid)
            return SendResult(TRANSIENT, reason=not_handed), False
        transport = ctx.relays.get(job.stream, ses_api)
        with ctx.limiter.sending(ctx.sleep):
            answer = transport.send(
                Email(
                    message_id=job.message_id,
                    sender=job.sender,
                    recipient=job.recipient,
                    mime=mime,
                    stream=job.stream,
                    configuration_set=settings.configuration_sets[job.stream],
                    template=job.template,
                    campaign=job.campaign,
                    tags=job.tags,
                    retry=job.retry,
                )
            )
        return answer, answer.kind == SES_SENT and _record_sent(ctx, job, work.tokens[rid], answer, transport.name)

    bodies = {rid: ctx.pool.submit(load, job) for rid, job in claimed.items()}
    results: dict[str, tuple[SendResult, bool]] = {}
    sending: dict[str, Future] = {}
    for rid in sorted(claimed, key=slots.__getitem__):
        mime = bodies[rid].result()
        if isinstance(mime, SendResult):  # no body to send: SES is not called
            results[rid] = mime, False
            continue
        early = slots[rid] - ctx.clock()
        if early > 0:
            ctx.sleep(early)
        sending[rid] = ctx.pool.submit(send, rid, claimed[rid], mime)
    results.update((rid, future.result()) for rid, future in sending.items())
    throttles = [answer.throttle for answer, _ in results.values() if answer.throttle]
    if throttles:
        ctx.limiter.throttled(
            len(throttles), for_the_quota=QUOTA_THROTTLE in throttles, for_the_rate=RATE_THROTTLE in throttles
        )
    return results


def _record_sent(ctx: SendContext, job: SendJob, token: str, answer: SendResult, transport: str) -> bool:
    """``sent`` and the provider's message id on the record (and the transport, when it is not SES's API), if the
    claim is still this attempt's (an SES event may have moved it further already). A write that fails leaves the
    claim for SES's Send event to settle (or, through a relay that is not SES, to be parked)."""
    now = ctx.clock()
    values = {"status": SENT, "ses_message_id": answer.ses_message_id, "sent_at": now, "updated_at": now}
    if transport != SES_API:
        values["transport"] = transport
    entry = records.update(
        ctx.settings.messages_table,
        job.message_id,
        set_values=values,
        remove=("claim",),
        **_own_claim(token),
    )["Update"]
    try:
        ctx.dynamodb.update_item(**entry)
        return True
    except Exception as error:  # noqa: BLE001 - SES took it: whatever this write does, the email is sent
        if not condition_failed(error):
            logger.warning(
                "sent not recorded: SES's Send event will settle it",
                extra={"message_id": job.message_id, "error": describe_for_log(error)},
            )
        return False


def _settle(
    claimed: dict[str, SendJob], answers: dict[str, tuple[SendResult, bool]], work: _Batch, ctx: SendContext
) -> None:
    """Record the SES answers the sending threads did not: refusals and passing errors, in one transaction, each
    expecting its own claim still in place. An outcome is reported only once its write took: a message SES
    refused for good is announced (``email.failed``) and acknowledged then, not before."""
    settings, table, now = ctx.settings, ctx.settings.messages_table, ctx.clock()
    entries, pending = [], []
    announced: list[AppEvent | AccountEvent] = []
    for rid, job in claimed.items():
        answer, recorded = answers[rid]
        own_claim = _own_claim(work.tokens[rid])
        if answer.kind == SES_SENT:
            work.result.set(rid, Outcome(job.message_id, SENT))
            if recorded:
                announced.append(_announcement("email.sent", job, now, {"ses_message_id": answer.ses_message_id}))
        elif rid in work.unhanded:  # SES was not called: give the claim back, if it is still this attempt's
            entries.append(_give_back(table, job.message_id, now, **own_claim))
            pending.append((rid, job, answer))
        elif answer.kind == SES_UNKNOWN:  # keep the claim: SES's Send event, or in the end an operator, decides
            work.retry(
                rid,
                answer.reason,
                claim_wait_seconds(
                    now,
                    now,
                    stale_claim_seconds=settings.stale_claim_seconds,
                    send_event_delay_seconds=settings.send_event_delay_seconds,
                ),
            )
        elif answer.kind == TRANSIENT and not _waited_too_long(work.records[rid], now, settings):
            if answer.unverified:  # said plainly in `postline status`: the email waits, it has not failed
                answer = replace(answer, reason=f"waiting: {answer.reason}")
            entries.append(_give_back(table, job.message_id, now, reason=answer.reason, **own_claim))
            pending.append((rid, job, answer))
        else:  # refused for good, or refused for longer than a message waits
            reason = (
                answer.reason
                if answer.kind == PERMANENT
                else (f"{answer.reason} (gave up after waiting {settings.max_send_wait_seconds // 3600} h for SES)")
            )
            entries.append(
                records.update(
                    table,
                    job.message_id,
                    set_values={"status": FAILED, "reason": reason, "finished_at": now, "updated_at": now},
                    remove=("claim",),
                    **own_claim,
                )
            )
            pending.append((rid, job, SendResult(PERMANENT, reason=reason)))
    outcomes: Sequence[ConditionFailed | Withdrawn | RetryLater | None]
    try:
        outcomes = transact_write(ctx.dynamodb, entries)
    except RetryLater as error:
        outcomes = [error] * len(entries)
    held_unverified: Counter[str] = Counter()
    for (rid, job, answer), outcome in zip(pending, outcomes, strict=True):
        if isinstance(outcome, RetryLater):
            work.retry(
                rid, f"{answer.reason}; not recorded: {outcome}", backoff_seconds(work.records[rid].receive_count)
            )
        elif outcome is not None:  # the claim moved on (an SES event settled it, a copy took it back): look again
            work.retry(rid, "the claim moved on before the SES answer was recorded", 1)
        elif rid in work.unhanded:  # its SQS message stays, seen again after the backoff
            work.retry(rid, answer.reason, backoff_seconds(work.records[rid].receive_count))
        elif answer.kind == TRANSIENT:
            work.result.set(rid, Outcome(job.message_id, "waiting", answer.reason))
            if answer.throttle == RATE_THROTTLE:
                # Back in a few seconds however long it has waited: the limiter now keeps the rate lower, and the
                # time a throttled email spent behind a backlog on its queue says nothing about SES.
                work.requeue[rid] = RATE_THROTTLE_WAIT_SECONDS
            else:
                # As long again as it has waited so far (30 s at first), at most SQS's longest delay.
                waited = now - _waiting_since(work.records[rid], now)
                work.requeue[rid] = int(min(SQS_MAX_DELAY_SECONDS, max(30, waited)))
            if answer.unverified:
                held_unverified[job.stream] += 1
        else:
            work.result.set(rid, Outcome(job.message_id, FAILED, answer.reason))
            announced.append(_announcement("email.failed", job, now, {"reason": answer.reason}))
    _emit_held_unverified(held_unverified)
    _suppress_unknown_addresses(
        [(job, answers[rid][0]) for rid, job in claimed.items() if answers[rid][0].hard_bounce], ctx
    )
    if announced:
        publish(ctx.events, settings.event_bus, announced, settings.app_events)


def _suppress_unknown_addresses(refused: list[tuple[SendJob, SendResult]], ctx: SendContext) -> None:
    """Suppress (scope all, reason hard_bounce) the addresses a relay said do not exist, as SES's hard Bounce event
    does; an address already suppressed keeps its suppression. Best effort: the email's ``failed`` and its reason
    are recorded already, and a next email to the address would be refused and suppressed the same way."""
    now = ctx.clock()
    for job, answer in refused:
        item = Suppression(
            suppression_key(job.recipient),
            SUPPRESSION_SCOPE_ALL,
            reason="hard_bounce",
            suppressed_at=now,
            source="smtp",
            detail=answer.reason,
        ).serialize()
        try:
            ctx.dynamodb.put_item(
                TableName=ctx.settings.suppressions_table, Item=item, ConditionExpression="attribute_not_exists(email)"
            )
        except ClientError as error:
            if not condition_failed(error):
                logger.warning(
                    "address not suppressed", extra={"message_id": job.message_id, "error": describe_for_log(error)}
                )
        except BotoCoreError as error:
            logger.warning(
                "address not suppressed", extra={"message_id": job.message_id, "error": describe_for_log(error)}
            )


def _emit_held_unverified(held: Counter[str]) -> None:
    """How many emails each stream holds for an unverified identity, as a CloudWatch metric (EMF): the first mail
    after a deploy waits for DKIM without a word otherwise. A metric never stops a send."""
    for stream, count in sorted(held.items()):
        try:
            emit_metric(HELD_UNVERIFIED_METRIC, stream, count)
        except Exception as error:  # noqa: BLE001
            logger.warning(
                "metric not written", extra={"metric": HELD_UNVERIFIED_METRIC, "error": describe_for_log(error)}
            )


def _announcement(name: str, job: SendJob, now: float, detail: dict[str, Any]) -> AppEvent:
    return AppEvent(
        name,
        job.message_id,
        now,
        to=job.recipient,
        template=job.template,
        campaign=job.campaign,
        tags=job.tags,
        detail=detail,
    )


def _waiting_since(record: QueueRecord, now: float) -> float:
    value = record.attributes.get(WAITING_SINCE_ATTRIBUTE)
    return float(value) if value else now


def _waited_too_long(record: QueueRecord, now: float, settings: Settings) -> bool:
    return now - _waiting_since(record, now) >= settings.max_send_wait_seconds


def _requeue(work: _Batch, ctx: SendContext) -> None:
    """Put the jobs SES refused for now back on their queue, delayed, as new messages: waiting costs them no
    receives, however long SES refuses. A job not put back stays on the queue (its receive is retried)."""
    for rid, seconds in work.requeue.items():
        record = work.records[rid]
        url = ctx.queue_url(record.queue_name)
        attributes = dict(record.message_attributes)
        # Waiting for its campaign, or for a slot at the rate, is not waiting for SES: the time counts neither
        # towards max_send_wait_seconds nor in the delay after SES refuses it (``_settle``: as long again). A hold
        # (a paused campaign, a closed window: days, maybe) ends the wait for SES: counting from a refusal before
        # it would hold the email for minutes at its next refusal, or fail it as waited too long.
        if rid in work.held:
            attributes.pop(WAITING_SINCE_ATTRIBUTE, None)
        elif rid not in work.paced:
            attributes[WAITING_SINCE_ATTRIBUTE] = {
                "DataType": "Number",
                "StringValue": repr(round(_waiting_since(record, ctx.clock()), 3)),
            }
        try:
            ctx.sqs.send_message(
                QueueUrl=url, MessageBody=record.body, MessageAttributes=attributes, DelaySeconds=seconds
            )
        except Exception as error:  # noqa: BLE001 - the received copy stays on the queue instead
            work.retry(
                rid,
                f"could not put it back on its queue: {describe_error(error)}",
                backoff_seconds(record.receive_count),
            )


def _delay(delays: dict[str, int], by_id: dict[str, QueueRecord], ctx: SendContext) -> None:
    """Keep records that will be retried invisible for their backoff (best effort: on failure SQS's own
    visibility timeout applies)."""
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for rid, seconds in delays.items():
        record = by_id[rid]
        url = ctx.queue_url(record.queue_name)
        if url and record.receipt_handle:
            by_queue.setdefault(url, []).append(
                {
                    "Id": rid,
                    "ReceiptHandle": record.receipt_handle,
                    "VisibilityTimeout": min(SQS_MAX_VISIBILITY_SECONDS, seconds),
                }
            )
    for url, entries in by_queue.items():
        for start in range(0, len(entries), 10):
            try:
                ctx.sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries[start : start + 10])
            except Exception as error:  # noqa: BLE001 - the retry still happens, only sooner
                logger.warning("could not delay retries", extra={"error": describe_for_log(error)})
