"""Per-record outcomes of an SQS batch: what Lambda deletes and what it keeps for a retry."""
from __future__ import annotations

import pytest

from postline.batch import BatchResult, Outcome, RecordFailed


def record(record_id: str) -> dict:
    return {"messageId": record_id, "body": "{}", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q"}


def result(**outcomes: Outcome) -> BatchResult:
    batch = BatchResult()
    for record_id, outcome in outcomes.items():
        batch.set(record_id, outcome)
    return batch


@pytest.mark.parametrize("outcome", [Outcome("m1", "rendered"), Outcome("m1", "rejected", "to: invalid address"),
                                     Outcome("m1", "duplicate", "already sent"), Outcome(None, "ignored")])
def test_finished_records_report_their_result(outcome):
    assert result(r1=outcome).raise_if_failed(record("r1")) == outcome.result


def test_retry_outcomes_raise_so_the_record_stays_on_the_queue():
    batch = result(r1=Outcome("m1", "retry", "SES Throttling", retry=True))
    with pytest.raises(RecordFailed, match="SES Throttling"):
        batch.raise_if_failed(record("r1"))


def test_records_the_batch_did_not_process_raise():
    batch = result(r1=Outcome("m1", "sent"))
    with pytest.raises(RecordFailed, match="not processed"):
        batch.raise_if_failed(record("r2"))


def test_failed_lists_only_retries():
    batch = result(r1=Outcome("m1", "sent"), r2=Outcome("m2", "retry", "x", retry=True),
                   r3=Outcome(None, "retry", "y", retry=True))
    assert batch.failed == {"r2", "r3"}


def test_a_later_outcome_replaces_an_earlier_one():
    batch = result(r1=Outcome("m1", "rendered"))
    batch.set("r1", Outcome("m1", "retry", "could not enqueue", retry=True))
    with pytest.raises(RecordFailed):
        batch.raise_if_failed(record("r1"))


def test_works_with_powertools_records():
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    batch = result(r1=Outcome("m1", "sent"), r2=Outcome("m2", "retry", "later", retry=True))
    assert batch.raise_if_failed(SQSRecord(record("r1"))) == "sent"
    with pytest.raises(RecordFailed):
        batch.raise_if_failed(SQSRecord(record("r2")))


def test_partial_batch_response_lists_exactly_the_records_to_retry():
    from postline.batch import partial_batch_response
    from postline_cli.local.runner import LambdaContext, lambda_sqs_record

    messages = [{"MessageId": f"r{i}", "ReceiptHandle": f"h{i}", "Body": f'{{"n": {i}}}'} for i in range(4)]
    event = {"Records": [lambda_sqs_record(m, "postline-critical") for m in messages]}
    seen = []

    def process(records):
        seen.extend(r.record_id for r in records)
        return result(r0=Outcome("m0", "rendered"), r1=Outcome("m1", "retry", "later", retry=True),
                      r2=Outcome("m2", "rejected", "bad"))  # r3 left out: not processed

    answer = partial_batch_response(event, LambdaContext("render"), process)
    assert seen == ["r0", "r1", "r2", "r3"]
    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == ["r1", "r3"]


def test_a_batch_logs_one_line_for_its_sent_messages_and_one_warning_per_exception():
    class Recorder:
        def __init__(self):
            self.lines = []

        def info(self, message, extra):
            self.lines.append(("INFO", message, extra))

        def warning(self, message, extra):
            self.lines.append(("WARNING", message, extra))

    from postline.batch import log_outcomes

    logger = Recorder()
    log_outcomes(logger, "send", result(r0=Outcome("m0", "sent"), r1=Outcome("m1", "sent"),
                                        r2=Outcome("m2", "suppressed", "hard bounce")), expected="sent")
    assert logger.lines[0] == ("INFO", "send batch", {"outcomes": {"sent": 2, "suppressed": 1}, "sent": ["m0", "m1"]})
    assert logger.lines[1:] == [("WARNING", "send: suppressed",
                                 {"message_id": "m2", "result": "suppressed", "reason": "hard bounce"})]
