"""SQS batches as the functions see them, and the per-record outcome that becomes the partial batch response.

Every batch consumer runs its stage through ``run_isolated``, which keeps one record's trouble from reaching its
neighbours: an exception that escapes the stage is retried record by record, so only the record that raises it
fails; a record that fails for a reason retrying cannot fix, or on its last receive, is moved to its queue's
DLQ by postline itself, with the reason as a message attribute (SQS's own redrive would move it without one).
"""

from __future__ import annotations

import builtins
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from .dynamo import RetryLater
from .queues import enqueue

logger = Logger(child=True)

REASON_ATTRIBUTE = "postline_reason"  # on a record postline moved to a DLQ: why
MESSAGE_ID_ATTRIBUTE = "postline_message_id"
_REASON_LIMIT = 1000
_LOGGED_REASON_LIMIT = 300
# What a reason or an error may quote from the input that caused it: an email address anywhere (SES and SMTP relays
# name the recipient in their refusals), and any quoted text (Python, Jinja and the contract quote the value at fault).
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"'@]+@[^\s<>()\[\],;:\"'@]+\.[^\s<>()\[\],;:\"'@]+")
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
REDACTED = "<redacted>"


@dataclass(frozen=True)
class QueueRecord:
    record_id: str
    body: str
    queue_name: str
    sent_at: float
    receive_count: int
    receipt_handle: str = ""
    attributes: dict[str, str] = field(default_factory=dict)  # string message attributes
    # The message attributes as SendMessage takes them, so a record moved or put back keeps them.
    message_attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_event_record(cls, record: Any) -> QueueRecord:
        """From a Powertools ``SQSRecord`` (or a plain Lambda SQS record dict)."""
        raw = record.raw_event if hasattr(record, "raw_event") else record
        attributes = raw.get("attributes", {})
        given = raw.get("messageAttributes") or {}
        return cls(
            record_id=raw["messageId"],
            body=raw["body"],
            queue_name=raw["eventSourceARN"].rsplit(":", 1)[-1],
            sent_at=int(attributes.get("SentTimestamp", "0")) / 1000,
            receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
            receipt_handle=raw.get("receiptHandle", ""),
            attributes={
                name: value["stringValue"] for name, value in given.items() if value.get("stringValue") is not None
            },
            message_attributes={
                name: {"DataType": value["dataType"], "StringValue": value["stringValue"]}
                for name, value in given.items()
                if value.get("stringValue") is not None and value.get("dataType")
            },
        )


class RecordFailed(Exception):
    """Raised for a record Lambda must keep on the queue (it is retried, and reaches the DLQ in the end)."""


@dataclass
class Outcome:
    message_id: str | None
    result: str  # what happened, e.g. "rendered", "sent", "suppressed", "rejected", "duplicate", "retry"
    reason: str | None = None
    retry: bool = False
    dead_letter: bool = False  # move the record to its queue's DLQ now, with the reason: retrying cannot help


@dataclass
class BatchResult:
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def set(self, record_id: str, outcome: Outcome) -> None:
        self.outcomes[record_id] = outcome

    @property
    def failed(self) -> builtins.set[str]:  # (``set`` here is the method above)
        return {rid for rid, outcome in self.outcomes.items() if outcome.retry}

    def raise_if_failed(self, record: Any) -> str:
        """Powertools record handler: the batch was processed as a whole, this reports each record's fate."""
        record_id = record.message_id if hasattr(record, "message_id") else record["messageId"]
        outcome = self.outcomes.get(record_id)
        if outcome is None or outcome.retry:
            raise RecordFailed(outcome.reason if outcome else "record was not processed")
        return outcome.result


def log_outcomes(logger: Any, stage: str, result: BatchResult, expected: str) -> None:
    """One line for the batch, naming the messages that went as ``expected`` (CloudWatch bills log bytes and
    most batches are all alike), then one warning for each message that did not, with its reason."""
    done = [o.message_id for o in result.outcomes.values() if o.result == expected]
    counts: dict[str, int] = {}
    for outcome in result.outcomes.values():
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    logger.info(f"{stage} batch", extra={"outcomes": counts, expected: done})
    for outcome in result.outcomes.values():
        if outcome.result != expected:
            logger.warning(
                f"{stage}: {outcome.result}",
                extra={"message_id": outcome.message_id, "result": outcome.result, "reason": loggable(outcome.reason)},
            )


def loggable(text: str | None) -> str | None:
    """``text`` (a reason, an error) as a log line may carry it: every address and quoted value in it replaced by
    ``<redacted>``, and short. Logs are read widely and kept long; the full reason stays where only operators read
    it, on the message's record and on its DLQ message, which the log line's message id leads to."""
    if text is None:
        return None
    return _QUOTED.sub(REDACTED, _ADDRESS.sub(REDACTED, text))[:_LOGGED_REASON_LIMIT]


def describe_for_log(error: BaseException) -> str:
    """The error and where it was raised (file, line, function of each frame), without the values it quotes."""
    frames = traceback.extract_tb(error.__traceback__)
    where = " < ".join(f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}" for frame in reversed(frames))
    return loggable(describe_error(error)) + (f" at {where}"[:_LOGGED_REASON_LIMIT] if where else "")


def safe_text(text: str, limit: int = _REASON_LIMIT) -> str:
    """``text`` as every store and queue takes it: anything not encodable (a lone surrogate) escaped, and short."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


def is_transient(error: BaseException) -> bool:
    """Whether an error may pass if the same work is tried again later: AWS answering with an error or not at
    all. Anything else (a value postline cannot handle, a bug) fails the same way every time."""
    return isinstance(error, (ClientError, BotoCoreError, RetryLater))


def describe_error(error: BaseException) -> str:
    return safe_text(f"{type(error).__name__}: {error}")


@dataclass
class DeadLetters:
    """Where each consumed queue's records go when postline gives up on them (queue name -> DLQ URL)."""

    sqs: Any
    urls: dict[str, str]
    default_url: str | None = None  # for a queue not named in ``urls``
    max_receives: int = 5  # the queues' redrive policy: the last receive before SQS moves a record itself
    # Called with the messages postline gave up retrying, once moved: notes the reason on their records.
    note_given_up: Callable[[list[Outcome]], None] | None = None

    def url_for(self, queue_name: str) -> str | None:
        return self.urls.get(queue_name, self.default_url)

    def move(self, moves: list[tuple[QueueRecord, Outcome]]) -> set[str]:
        """Send each record to its DLQ with its outcome's reason (and its own attributes); returns the record ids
        that could not be moved, which stay on their queue."""
        by_url: dict[str, list[dict[str, Any]]] = {}
        unmoved: set[str] = set()
        for index, (record, outcome) in enumerate(moves):
            url = self.url_for(record.queue_name)
            if url is None:
                unmoved.add(record.record_id)
                continue
            attributes = dict(record.message_attributes)
            attributes[REASON_ATTRIBUTE] = {
                "DataType": "String",
                "StringValue": safe_text(outcome.reason or outcome.result),
            }
            if outcome.message_id:
                attributes[MESSAGE_ID_ATTRIBUTE] = {"DataType": "String", "StringValue": outcome.message_id}
            # Entry ids by position: SQS takes only [A-Za-z0-9_-] there, and a record id may hold more.
            by_url.setdefault(url, []).append(
                {"Id": str(index), "MessageBody": record.body or "(empty body)", "MessageAttributes": attributes}
            )
        for url, entries in by_url.items():
            unmoved.update(moves[int(index)][0].record_id for index in enqueue(self.sqs, url, entries))
        return unmoved


def run_isolated(
    batch: list[QueueRecord], process: Callable[[list[QueueRecord]], BatchResult], dead_letters: DeadLetters
) -> BatchResult:
    """Run a stage over the batch so that no record can fail its neighbours, then move to the DLQ, with their
    reasons, the records the stage gave up on and those failing on their last receive."""
    result = _each_alone_if_it_raises(batch, process)
    moves = []
    for record in batch:
        outcome = result.outcomes.get(record.record_id)
        if outcome is not None and (
            outcome.dead_letter or (outcome.retry and record.receive_count >= dead_letters.max_receives)
        ):
            moves.append((record, outcome))
    unmoved = dead_letters.move(moves) if moves else set()
    given_up = [
        outcome
        for record, outcome in moves
        if record.record_id not in unmoved and not outcome.dead_letter and outcome.message_id
    ]
    if given_up and dead_letters.note_given_up is not None:
        dead_letters.note_given_up(given_up)
    for record, outcome in moves:
        if record.record_id in unmoved:
            result.set(record.record_id, Outcome(outcome.message_id, "retry", outcome.reason, retry=True))
        else:  # a message refused keeps saying so ("rejected"); one postline gave up retrying says that
            result.set(
                record.record_id,
                Outcome(outcome.message_id, outcome.result if outcome.dead_letter else "dead-lettered", outcome.reason),
            )
            logger.warning(
                "moved to the DLQ",
                extra={
                    "message_id": outcome.message_id,
                    "reason": loggable(outcome.reason),
                    "receive_count": record.receive_count,
                },
            )
    return result


def _each_alone_if_it_raises(batch: list[QueueRecord], process) -> BatchResult:
    """``process(batch)``; if it raises, an AWS error fails every record for a retry (it would fail each alone
    too), anything else has the records processed one by one, so that only the one that raises it fails."""
    try:
        return process(batch)
    except Exception as error:  # noqa: BLE001 - whatever one record does, the others go on
        if is_transient(error):
            logger.warning(
                "a batch failed on AWS: its records are retried", extra={"error": loggable(describe_error(error))}
            )
            return BatchResult({r.record_id: Outcome(None, "retry", describe_error(error), retry=True) for r in batch})
        if len(batch) == 1:
            # Not logger.exception: a traceback's last line quotes the error's message, and so its values.
            logger.error("a record failed its stage", extra={"error": describe_for_log(error)})
            return BatchResult({batch[0].record_id: Outcome(None, "error", describe_error(error), dead_letter=True)})
        logger.warning(
            "a batch failed its stage: its records go again one by one",
            extra={"error": describe_for_log(error), "records": len(batch)},
        )
    result = BatchResult()
    for record in batch:
        result.outcomes.update(_each_alone_if_it_raises([record], process).outcomes)
    return result


def partial_batch_response(event: dict, context: Any, process) -> dict:
    """Run ``process`` over the whole SQS batch, then report each record to Lambda through Powertools' batch
    processor: records that failed stay on the queue, the rest are deleted."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    outcome = process([QueueRecord.from_event_record(record) for record in event.get("Records", [])])
    return dict(
        process_partial_response(
            event=event,
            record_handler=outcome.raise_if_failed,
            processor=BatchProcessor(EventType.SQS),
            context=context,
        )
    )
