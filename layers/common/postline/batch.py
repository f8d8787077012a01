"""SQS batches as the functions see them, and the per-record outcome that becomes the partial batch response."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QueueRecord:
    record_id: str
    body: str
    queue_name: str
    sent_at: float
    receive_count: int
    receipt_handle: str = ""
    attributes: dict[str, str] = field(default_factory=dict)  # string message attributes

    @classmethod
    def from_event_record(cls, record: Any) -> QueueRecord:
        """From a Powertools ``SQSRecord`` (or a plain Lambda SQS record dict)."""
        raw = record.raw_event if hasattr(record, "raw_event") else record
        attributes = raw.get("attributes", {})
        return cls(
            record_id=raw["messageId"],
            body=raw["body"],
            queue_name=raw["eventSourceARN"].rsplit(":", 1)[-1],
            sent_at=int(attributes.get("SentTimestamp", "0")) / 1000,
            receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
            receipt_handle=raw.get("receiptHandle", ""),
            attributes={name: value["stringValue"] for name, value in (raw.get("messageAttributes") or {}).items()
                        if value.get("stringValue") is not None},
        )


class RecordFailed(Exception):
    """Raised for a record Lambda must keep on the queue (it is retried, and reaches the DLQ in the end)."""


@dataclass
class Outcome:
    message_id: str | None
    result: str  # what happened, e.g. "rendered", "sent", "suppressed", "rejected", "duplicate", "retry"
    reason: str | None = None
    retry: bool = False


@dataclass
class BatchResult:
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def set(self, record_id: str, outcome: Outcome) -> None:
        self.outcomes[record_id] = outcome

    @property
    def failed(self) -> set[str]:
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
            logger.warning(f"{stage}: {outcome.result}", extra={"message_id": outcome.message_id,
                                                                 "result": outcome.result, "reason": outcome.reason})


def partial_batch_response(event: dict, context: Any, process) -> dict:
    """Run ``process`` over the whole SQS batch, then report each record to Lambda through Powertools' batch
    processor: records that failed stay on the queue, the rest are deleted."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    outcome = process([QueueRecord.from_event_record(record) for record in event.get("Records", [])])
    return process_partial_response(
        event=event, record_handler=outcome.raise_if_failed, processor=BatchProcessor(EventType.SQS), context=context
    )
