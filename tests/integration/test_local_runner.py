"""The local event source mapping honours partial batch responses and the redrive policy, like Lambda + SQS."""
from __future__ import annotations

import json
import threading
import time

import boto3
import pytest
from moto import mock_aws

from postline_cli.local.runner import QueuePoller


@pytest.fixture
def sqs(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def make_queue(sqs, max_receive_count: int = 2, visibility: int = 0):
    dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName="work", Attributes={
        "VisibilityTimeout": str(visibility),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
    })["QueueUrl"]
    return queue, dlq


def bodies(sqs, queue_url):
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted(m["Body"] for m in messages)


def test_only_reported_failures_stay_and_they_reach_the_dlq_after_the_redrive_count(sqs):
    queue, dlq = make_queue(sqs)
    for body in ("good-1", "bad", "good-2"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    seen: list[list[str]] = []

    def handler(event, context):
        seen.append([r["body"] for r in event["Records"]])
        assert context.get_remaining_time_in_millis() > 0
        assert all(r["eventSource"] == "aws:sqs" and r["eventSourceARN"].endswith(":work") for r in event["Records"])
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]}
                                      for r in event["Records"] if r["body"] == "bad"]}

    poller = QueuePoller(sqs, queue, "work", "fn", handler, threading.Event())
    assert poller.poll_once() == 3
    assert sorted(seen[0]) == ["bad", "good-1", "good-2"]
    assert poller.poll_once() == 1  # only the failed record came back
    assert poller.poll_once() == 0  # received twice = the redrive count: moved to the DLQ
    assert bodies(sqs, dlq) == ["bad"]


def test_a_crashed_invocation_deletes_nothing(sqs):
    queue, _ = make_queue(sqs, max_receive_count=5)
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    def handler(event, context):
        raise MemoryError("the function ran out of memory")

    QueuePoller(sqs, queue, "work", "fn", handler, threading.Event()).poll_once()
    assert bodies(sqs, queue) == ["a", "b"]


def test_a_batch_is_not_handed_to_another_invocation_while_its_handler_still_runs(sqs):
    """The queue's visibility (3 s) is shorter than the invocation (5 s): as in AWS, where visibility outlasts a
    function's timeout, no other poller gets a copy of the batch meanwhile; once it fails, it comes back."""
    queue, _ = make_queue(sqs, max_receive_count=5, visibility=3)
    sqs.send_message(QueueUrl=queue, MessageBody="slow")
    stop, running, copies = threading.Event(), threading.Event(), []

    def slow(event, context):
        running.set()
        stop.wait(5)
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    def other(event, context):
        copies.append([r["body"] for r in event["Records"]])

    first = threading.Thread(target=QueuePoller(sqs, queue, "work", "fn", slow, stop).poll_once)
    first.start()
    assert running.wait(10)  # the first poller has the batch
    rival = QueuePoller(sqs, queue, "work", "fn", other, stop)
    while first.is_alive():
        rival.poll_once(wait_seconds=1)
    assert copies == []
    first.join()
    while not copies:  # the failed record is visible again after the visibility timeout
        rival.poll_once(wait_seconds=1)
    assert copies == [["slow"]]


def test_a_batching_window_gathers_what_arrives_within_it_into_one_invocation_of_more_than_ten(sqs):
    """As a Lambda mapping with a batching window: messages arriving after the first, while the window is open,
    join its batch, past SQS's ten a receive; a batch that fills closes the window at once."""
    queue, _ = make_queue(sqs, max_receive_count=5, visibility=30)
    sqs.send_message(QueueUrl=queue, MessageBody="first")
    seen: list[list[str]] = []

    def handler(event, context):
        seen.append(sorted(r["body"] for r in event["Records"]))

    def later() -> None:
        time.sleep(0.3)  # while the window is open
        for start in range(0, 14, 7):
            sqs.send_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "MessageBody": f"late-{i:02d}"} for i in range(start, start + 7)])

    sender = threading.Thread(target=later)
    sender.start()
    poller = QueuePoller(sqs, queue, "work", "fn", handler, threading.Event(), batch_size=100,
                         batching_window_seconds=1.0)
    assert poller.poll_once() == 15
    sender.join()
    assert seen == [sorted(["first", *(f"late-{i:02d}" for i in range(14))])]
    assert bodies(sqs, queue) == []  # all deleted: the handler reported no failure

    for i in range(12):
        sqs.send_message(QueueUrl=queue, MessageBody=f"full-{i:02d}")
    small = QueuePoller(sqs, queue, "work", "fn", handler, threading.Event(), batch_size=12,
                        batching_window_seconds=600.0)
    assert small.poll_once() == 12  # full: invoked without waiting out the ten minutes
    assert seen[-1] == [f"full-{i:02d}" for i in range(12)]

