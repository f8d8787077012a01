"""Per-record outcomes of an SQS batch: what Lambda deletes and what it keeps for a retry."""
from __future__ import annotations

import logging

import pytest
from botocore.exceptions import EndpointConnectionError

from postline.batch import BatchResult, DeadLetters, Outcome, QueueRecord, RecordFailed, run_isolated


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


# --- run_isolated: one record's trouble stays its own -------------------------------------------------------------


class FakeSqs:
    def __init__(self, refuse: bool = False) -> None:
        self.sent: list[dict] = []
        self.refuse = refuse

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        if self.refuse:
            return {"Failed": [{"Id": e["Id"], "Code": "InternalError"} for e in Entries]}
        self.sent += [{"QueueUrl": QueueUrl, **e} for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def queue_record(record_id: str, body: str = "{}", receive_count: int = 1) -> QueueRecord:
    return QueueRecord(record_id, body, "q", 1.0, receive_count,
                       message_attributes={"postline_retry": {"DataType": "Number", "StringValue": "1"}})


def letters(sqs: FakeSqs) -> DeadLetters:
    return DeadLetters(sqs, {"q": "https://sqs/q-dlq"}, max_receives=5)


def processes_unless(poison: str, error: Exception):
    def process(records):
        if any(r.body == poison for r in records):
            raise error
        return BatchResult({r.record_id: Outcome(f"m-{r.record_id}", "rendered") for r in records})
    return process


def test_an_exception_from_one_record_dead_letters_it_alone_with_the_error_as_its_reason():
    sqs = FakeSqs()
    batch = [queue_record("a.1"), queue_record("b.2", body="poison"), queue_record("c.3")]
    result = run_isolated(batch, processes_unless("poison", ValueError("bad input")), letters(sqs))
    assert {rid: o.result for rid, o in result.outcomes.items()} == {
        "a.1": "rendered", "b.2": "error", "c.3": "rendered"}
    assert not result.failed
    (moved,) = sqs.sent
    assert moved["QueueUrl"] == "https://sqs/q-dlq" and moved["MessageBody"] == "poison"
    assert moved["MessageAttributes"]["postline_reason"]["StringValue"] == "ValueError: bad input"
    assert moved["MessageAttributes"]["postline_retry"] == {"DataType": "Number", "StringValue": "1"}


def test_an_aws_error_fails_the_batch_for_a_retry_without_running_each_record_again():
    calls = []

    def unreachable(records):
        calls.append(len(records))
        raise EndpointConnectionError(endpoint_url="https://dynamodb")

    sqs = FakeSqs()
    result = run_isolated([queue_record("a"), queue_record("b")], unreachable, letters(sqs))
    assert calls == [2] and result.failed == {"a", "b"} and sqs.sent == []


def test_a_record_failing_on_its_last_receive_is_moved_with_its_reason():
    sqs = FakeSqs()

    def throttled(records):
        return BatchResult({r.record_id: Outcome("m", "retry", "DynamoDB throttled", retry=True) for r in records})

    result = run_isolated([queue_record("early", receive_count=4), queue_record("last", receive_count=5)],
                          throttled, letters(sqs))
    assert result.failed == {"early"} and result.outcomes["last"].result == "dead-lettered"
    assert [m["MessageAttributes"]["postline_reason"]["StringValue"] for m in sqs.sent] == ["DynamoDB throttled"]


def test_a_record_that_cannot_be_moved_stays_on_its_queue():
    result = run_isolated([queue_record("x", body="poison")], processes_unless("poison", KeyError("k")),
                          letters(FakeSqs(refuse=True)))
    assert result.failed == {"x"}


def test_a_reason_that_cannot_be_encoded_is_escaped_before_it_is_queued():
    sqs = FakeSqs()
    # Not logged here: pytest would keep the traceback, whose lone surrogate pytest-xdist cannot pass between
    # processes.
    logging.disable(logging.ERROR)
    try:
        run_isolated([queue_record("x", body="poison")], processes_unless("poison", ValueError("half \ud83d emoji")),
                     letters(sqs))
    finally:
        logging.disable(logging.NOTSET)
    reason = sqs.sent[0]["MessageAttributes"]["postline_reason"]["StringValue"]
    assert reason == "ValueError: half \\ud83d emoji" and reason.encode("utf-8")
