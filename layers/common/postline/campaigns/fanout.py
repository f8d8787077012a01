"""The fan-out: one control message, one run that hands a campaign's recipients on to the marketing queue.

A run streams the normalised audience from its checkpoint (an S3 ``Range`` GET read line by line: memory stays
flat whatever the audience's size) in pages of 100. For each page: one batched, strongly consistent read of the
suppression list (the marketing and ``all`` scopes, the address and its erased form, as the send stage reads
them), then the rest as ordinary send messages on ``postline-marketing`` (SendMessageBatch, 10 a call), then the
checkpoint, conditional on its version and on the campaign still running. Messages first, checkpoint second: a
run that dies between them repeats the page, whose message ids (``audience.recipient_id``) render recognises as
duplicates, so nobody is skipped and nobody gets two emails.

A run stops when the audience ends (the campaign is ``done``), when the checkpoint is refused (paused, cancelled,
or another run moved on: that one carries on), when the window closes (``waiting``, woken at the next window's
start), when the marketing queues hold their bound of backlog (``campaign_backlog_seconds`` of sending at the
marketing rate, at least 1,000), or when it has used its time budget; in the last two it hands on with a new
control message (delayed 30 s for a full backlog). A control message whose version is behind the checkpoint's is
stale and does nothing, unless it is the one whose run wrote that checkpoint, delivered again after its run died.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from typing import Any

from aws_lambda_powertools import Logger

from ..batch import BatchResult, DeadLetters, QueueRecord, describe_error, run_isolated
from ..batch import Outcome as RecordOutcome
from ..clients import client
from ..dynamo import RetryLater
from ..limiter import Limiter
from ..settings import Settings
from ..suppression import find_suppressions, first_blocking, suppression_names
from ..tokens import RefreshingKeyRing, load_keyring
from . import control, store
from .audience import Recipient, read_recipients, recipient_id
from .control import ControlMessage
from .store import DONE, RUNNING, SCHEDULED, WAITING, Campaign, CampaignStateError

logger = Logger(child=True)

PAGE = 100  # recipients per suppression read and checkpoint
RUN_SECONDS = 60  # a run's time budget, well within the function's timeout
SAFETY_MS = 15_000  # left of the invocation when a run stops at the latest: a page and the hand-on take far less
BACKLOG_FULL_DELAY_SECONDS = 30  # a run that found the backlog full hands on this much later
MIN_BACKLOG = 1_000
STREAM = "marketing"
DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
_BATCH_ENTRIES = 10
_BATCH_BYTES = 250_000  # within SendMessageBatch's payload limit, attributes and all
_ENQUEUE_ATTEMPTS = 3


@dataclass
class CampaignContext:
    """What the campaign function needs, built once per container; every client can be swapped in tests."""

    settings: Settings
    dynamodb: Any = field(default_factory=lambda: client("dynamodb"))
    sqs: Any = field(default_factory=lambda: client("sqs"))
    s3: Any = field(default_factory=lambda: client("s3"))
    scheduler: Any = field(default_factory=lambda: client("scheduler"))
    events: Any = field(default_factory=lambda: client("events"))
    sesv2: Any = field(default_factory=lambda: client("sesv2"))
    secrets: Any = field(default_factory=lambda: client("secretsmanager"))
    clock: Callable[[], float] = time.time
    limiter: Limiter | None = None  # for the account's rate (the deploy config's, or SES's); built when not given

    def __post_init__(self) -> None:
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
                clock=self.clock,
            )

    @cached_property
    def keys(self) -> RefreshingKeyRing:
        return RefreshingKeyRing(lambda: load_keyring(self.settings.signing_keys_secret, self.secrets))

    @cached_property
    def marketing_queue_urls(self) -> tuple[str, str]:
        """The inbound queue (where recipients go) and the send queue: together, the backlog."""
        return self.settings.inbound_queue_urls[STREAM], self.settings.send_queue_urls[STREAM]

    def backlog_bound(self) -> int:
        """Messages the marketing queues may hold: ``campaign_backlog_seconds`` at the marketing rate."""
        settings = self.settings
        rate = self.limiter.quota().max_send_rate * settings.marketing_rate_share
        return max(MIN_BACKLOG, int(rate * settings.campaign_backlog_seconds))

    def backlog(self) -> int:
        """Messages on the marketing queues: visible, in flight and delayed (SQS's approximate counts)."""
        total = 0
        for url in self.marketing_queue_urls:
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(DEPTH_ATTRIBUTES))
            total += sum(int(attributes["Attributes"].get(name, 0)) for name in DEPTH_ATTRIBUTES)
        return total


@dataclass
class Outcome:
    """What a run did: ``result`` is why it stopped (done, waiting, handed-on, backlog-full, stopped, stale,
    superseded, not-running, missing, not-started)."""

    result: str
    campaign_id: str
    state: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # what this run added to the campaign's counts
    pages: int = 0


def run_batch(batch: list[QueueRecord], ctx: CampaignContext, remaining_ms: Callable[[], int]) -> BatchResult:
    """The campaign function's batch (one control message, as its event source mapping delivers them)."""
    url = ctx.settings.campaign_queue_url
    dead_letters = DeadLetters(
        ctx.sqs, {url.rsplit("/", 1)[-1]: url + "-dlq"}, max_receives=ctx.settings.max_receive_count
    )
    return run_isolated(batch, lambda records: _run_records(records, ctx, remaining_ms), dead_letters)


def _run_records(records: list[QueueRecord], ctx: CampaignContext, remaining_ms: Callable[[], int]) -> BatchResult:
    result = BatchResult()
    for record in records:
        try:
            message = ControlMessage.from_body(record.body, record.record_id)
        except (ValueError, KeyError, TypeError) as error:
            result.set(
                record.record_id,
                RecordOutcome(
                    None, "unreadable", f"unreadable control message: {describe_error(error)}", dead_letter=True
                ),
            )
            continue
        outcome = run(message, ctx, remaining_ms)
        logger.info(
            "campaign run",
            extra={
                "campaign": outcome.campaign_id,
                "result": outcome.result,
                "state": outcome.state,
                "counts": outcome.counts,
                "pages": outcome.pages,
            },
        )
        result.set(record.record_id, RecordOutcome(None, outcome.result))
    return result


def run(message: ControlMessage, ctx: CampaignContext, remaining_ms: Callable[[], int]) -> Outcome:
    settings = ctx.settings
    campaign = store.get(ctx.dynamodb, settings.campaigns_table, message.campaign_id)
    if campaign is None:
        return Outcome("missing", message.campaign_id)
    redelivered = message.delivery_id is not None and message.delivery_id == campaign.run_by
    if message.version < campaign.version and not redelivered:
        return Outcome("stale", campaign.campaign_id, campaign.state)
    if campaign.state not in (SCHEDULED, RUNNING, WAITING):
        return Outcome("not-running", campaign.campaign_id, campaign.state)
    now = ctx.clock()
    try:
        if now < campaign.start_at:  # early (a clock ahead of this one): the run waits for the start time
            _wake_at(ctx, campaign, campaign.start_at)
            return Outcome("not-started", campaign.campaign_id, campaign.state)
        if campaign.window is not None and not campaign.window.contains(now):
            return _wait_for_window(ctx, campaign)
        if campaign.state != RUNNING:
            campaign = _move(ctx, campaign, RUNNING)
        return _hand_on(message, ctx, campaign, remaining_ms)
    except CampaignStateError as error:  # paused or cancelled meanwhile: whoever did it decides what comes next
        return Outcome("stopped", campaign.campaign_id, error.state)


def _hand_on(
    message: ControlMessage, ctx: CampaignContext, campaign: Campaign, remaining_ms: Callable[[], int]
) -> Outcome:
    settings, started = ctx.settings, ctx.clock()
    outcome = Outcome("handed-on", campaign.campaign_id, RUNNING, counts={"queued": 0, "suppressed": 0, "rejected": 0})
    bound = ctx.backlog_bound()
    room = 0  # how many more the queues take, as last read
    with _audience(ctx, campaign) as recipients:
        while True:
            if campaign.offset >= campaign.audience_bytes:
                outcome.result = DONE
                break
            if ctx.clock() - started >= RUN_SECONDS or remaining_ms() < SAFETY_MS:
                break
            if campaign.window is not None and not campaign.window.contains(ctx.clock()):
                return _add(_wait_for_window(ctx, campaign), outcome)
            if room < PAGE:  # read the queues only when what is known of them may not take another page
                room = bound - ctx.backlog()
                if room < PAGE:
                    outcome.result = "backlog-full"
                    break
            page = list(islice(recipients, PAGE))
            if not page:  # the audience ended before its recorded size: done all the same
                outcome.result = DONE
                break
            counts = _hand_on_page(page, ctx, campaign)
            offset, position = page[-1][1], campaign.position + len(page)
            if not store.checkpoint(
                ctx.dynamodb,
                settings.campaigns_table,
                campaign.campaign_id,
                seen_version=campaign.version,
                offset=offset,
                position=position,
                counts=counts,
                now=ctx.clock(),
                run_by=message.delivery_id,
            ):
                outcome.result = "superseded"  # paused, cancelled, or another run moved on: this one stops
                return outcome
            campaign.version, campaign.offset, campaign.position = campaign.version + 1, offset, position
            for name, amount in counts.items():
                campaign.counts[name] = campaign.counts.get(name, 0) + amount
                outcome.counts[name] += amount
            outcome.pages += 1
            room -= counts["queued"]
    if outcome.result == DONE:
        outcome.state = _move(ctx, campaign, DONE).state
    else:
        control.start_now(
            ctx.sqs,
            settings.campaign_queue_url,
            campaign,
            delay_seconds=BACKLOG_FULL_DELAY_SECONDS if outcome.result == "backlog-full" else 0,
        )
    return outcome


@contextmanager
def _audience(ctx: CampaignContext, campaign: Campaign) -> Iterator[Iterator[tuple[Recipient, int]]]:
    """The recipients from the campaign's checkpoint on, streamed from S3 (nothing when it is at the end)."""
    if campaign.offset >= campaign.audience_bytes:
        yield iter(())
        return
    body = ctx.s3.get_object(
        Bucket=ctx.settings.claim_check_bucket, Key=campaign.audience_key, Range=f"bytes={campaign.offset}-"
    )["Body"]
    try:
        yield read_recipients(body.iter_lines(), campaign.offset)
    finally:
        body.close()


def _hand_on_page(page: list[tuple[Recipient, int]], ctx: CampaignContext, campaign: Campaign) -> dict[str, int]:
    """Put the page's recipients that are not suppressed on the marketing queue; returns the counts."""
    settings = ctx.settings
    erasure_key = ctx.keys.current.erasure_key
    found = find_suppressions(
        ctx.dynamodb,
        settings.suppressions_table,
        {(recipient.email, STREAM) for recipient, _ in page},
        lambda address: suppression_names(address, erasure_key),
    )
    # An erasure blocks what was on its way before it: the audience, uploaded when the campaign was created.
    blocked = {
        address for (address, _), suppressions in found.items() if first_blocking(suppressions, campaign.created_at)
    }
    entries = [
        {"Id": str(index), "MessageBody": json.dumps(_send_message(campaign, recipient), separators=(",", ":"))}
        for index, (recipient, _) in enumerate(page)
        if recipient.email not in blocked
    ]
    rejected = _enqueue(ctx.sqs, settings.inbound_queue_urls[STREAM], entries)
    return {"queued": len(entries) - rejected, "suppressed": len(page) - len(entries), "rejected": rejected}


def _send_message(campaign: Campaign, recipient: Recipient) -> dict[str, Any]:
    return {
        "template": campaign.template,
        "to": recipient.email,
        "data": {**campaign.data, **recipient.data},
        "id": recipient_id(campaign.campaign_id, recipient.email),
        "campaign": campaign.campaign_id,
    }


def _enqueue(sqs, queue_url: str, entries: list[dict[str, Any]]) -> int:
    """SendMessageBatch, 10 a call; entries SQS refuses for their content are counted (returned), those it could
    not take now are sent again, and if they still fail the run fails (its page is repeated by the next)."""
    rejected, pending = 0, entries
    for _ in range(_ENQUEUE_ATTEMPTS):
        by_id = {entry["Id"]: entry for entry in pending}
        again = []
        for chunk in _chunks(pending):
            for failure in sqs.send_message_batch(QueueUrl=queue_url, Entries=chunk).get("Failed", []):
                if failure.get("SenderFault"):
                    rejected += 1
                    logger.warning(
                        "a campaign message was refused by the queue",
                        extra={"code": failure.get("Code"), "reason": failure.get("Message")},
                    )
                else:
                    again.append(by_id[failure["Id"]])
        if not again:
            return rejected
        pending = again
    raise RetryLater(f"the marketing queue did not take {len(pending)} messages")


def _chunks(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = len(entry["MessageBody"].encode())
        if chunk and (len(chunk) == _BATCH_ENTRIES or size + entry_size > _BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry_size
    if chunk:
        yield chunk


def _wait_for_window(ctx: CampaignContext, campaign: Campaign) -> Outcome:
    """Outside its window: the campaign waits, and a control message wakes it at the next window's start."""
    if campaign.state != WAITING:
        campaign = _move(ctx, campaign, WAITING)
    _wake_at(ctx, campaign, campaign.window.next_start(ctx.clock()))
    return Outcome(WAITING, campaign.campaign_id, WAITING)


def _wake_at(ctx: CampaignContext, campaign: Campaign, at: float) -> None:
    settings = ctx.settings
    control.wake_at(
        ctx.sqs,
        ctx.scheduler,
        group=settings.schedule_group,
        role_arn=settings.scheduler_role_arn,
        queue_url=settings.campaign_queue_url,
        campaign=campaign,
        at=at,
        now=ctx.clock(),
        dead_letter_arn=settings.schedule_dlq_arn,
    )


def _move(ctx: CampaignContext, campaign: Campaign, to: str) -> Campaign:
    moved = store.move(ctx.dynamodb, ctx.settings.campaigns_table, campaign.campaign_id, to, now=ctx.clock())
    control.announce(ctx.events, ctx.settings.event_bus, moved)
    return moved


def _add(outcome: Outcome, so_far: Outcome) -> Outcome:
    """``outcome``, with what the run handed on before it."""
    outcome.counts, outcome.pages = so_far.counts, so_far.pages
    return outcome
