"""The local endpoint's moto SQS patch (aws_endpoint.speed_up_sqs) keeps moto's answers: every scenario here runs
on plain moto and on the patched one with the same expectations."""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from moto.sqs import models as sqs_models

from postline_cli.local.aws_endpoint import speed_up_sqs

COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible"]


@pytest.fixture(params=["plain moto", "patched"])
def sqs(request, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    saved = {cls: dict(vars(cls)) for cls in (sqs_models.Queue, sqs_models.SQSBackend)}
    if request.param == "patched":
        speed_up_sqs()
    try:
        with mock_aws():
            yield boto3.client("sqs", region_name="us-east-1")
    finally:
        for cls, attributes in saved.items():
            for name, value in attributes.items():
                if vars(cls).get(name) is not value:
                    setattr(cls, name, value)


def counts(sqs, url) -> tuple[int, int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=COUNTS)["Attributes"]
    return tuple(int(attributes[name]) for name in COUNTS)


def backend_queue(name: str):
    return sqs_models.sqs_backends["123456789012"]["us-east-1"].queues[name]


def test_counts_follow_sends_receives_deletes_and_visibility(sqs):
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)])
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    assert counts(sqs, url) == (10, 1, 0)

    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4)["Messages"]
    assert len(received) == 4
    assert counts(sqs, url) == (6, 1, 4)

    answer = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": received[0]["ReceiptHandle"]},
        {"Id": "b", "ReceiptHandle": received[1]["ReceiptHandle"]},
        {"Id": "bad", "ReceiptHandle": "not-a-handle"}])
    assert sorted(s["Id"] for s in answer["Successful"]) == ["a", "b"]
    assert [(f["Id"], f["Code"]) for f in answer["Failed"]] == [("bad", "ReceiptHandleIsInvalid")]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])  # again: accepted, as in SQS
    assert counts(sqs, url) == (6, 1, 2)

    for message in received[2:]:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    assert counts(sqs, url) == (8, 1, 0)

    every = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert {name: every[name] for name in COUNTS} == {COUNTS[0]: "8", COUNTS[1]: "1", COUNTS[2]: "0"}
    assert every["VisibilityTimeout"] == "30" and every["MessageRetentionPeriod"] == "345600"
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        bodies += [m["Body"] for m in batch]
    assert sorted(bodies) == sorted(f"m{i}" for i in range(2, 10))


def test_redrive_to_the_dead_letter_queue(sqs):
    dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "0", "RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["poison"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    assert counts(sqs, url) == (0, 0, 0)
    assert counts(sqs, dlq) == (1, 0, 0)


def test_retention_period_expires_messages(sqs):
    url = sqs.create_queue(QueueName="work", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="old")
    backend_queue("work")._messages[0].sent_timestamp -= 61_000
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    sqs.send_message(QueueUrl=url, MessageBody="new")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["new"]


def test_fifo_deduplication(sqs):
    url = sqs.create_queue(QueueName="work.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "1", "MessageBody": "same", "MessageGroupId": "g"},
        {"Id": "2", "MessageBody": "other", "MessageGroupId": "g", "MessageDeduplicationId": "d"}])
    assert counts(sqs, url) == (2, 0, 0)
    every = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert every["ContentBasedDeduplication"] == "true" and every["FifoQueue"] == "true"
