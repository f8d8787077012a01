"""The local runner hands the real handlers SQS records in exactly the shape Lambda's event source mapping uses."""
from __future__ import annotations

import hashlib
import json

import pytest

from postline.batch import QueueRecord
from postline_cli.local.runner import lambda_sqs_record

SENT_MS = "1718000000123"


def received(**overrides) -> dict:
    """A message as boto3's receive_message returns it (AttributeNames and MessageAttributeNames = All)."""
    message = {
        "MessageId": "5fea7756-0ea4-451a-a703-a558b933e274",
        "ReceiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
        "MD5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "Body": json.dumps({"template": "welcome", "to": "ada@example.com"}),
        "Attributes": {"SentTimestamp": SENT_MS, "ApproximateReceiveCount": "3", "SenderId": "AIDAEXAMPLE",
                       "ApproximateFirstReceiveTimestamp": "1718000000456"},
        "MessageAttributes": {"postline_reason": {"StringValue": "to: invalid address", "DataType": "String"}},
    }
    message.update(overrides)
    return message


def test_record_has_exactly_the_lambda_sqs_keys():
    record = lambda_sqs_record(received(), "postline-transactional")
    assert set(record) == {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                           "eventSource", "eventSourceARN", "awsRegion"}


def test_record_values_come_from_the_received_message():
    message = received()
    record = lambda_sqs_record(message, "postline-send-critical")
    assert record["messageId"] == message["MessageId"]
    assert record["receiptHandle"] == message["ReceiptHandle"]
    assert record["body"] == message["Body"]
    assert record["md5OfBody"] == message["MD5OfBody"]
    assert record["attributes"] == message["Attributes"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:postline-send-critical"
    assert record["awsRegion"] == "us-east-1"


def test_message_attributes_use_lambdas_camel_case():
    record = lambda_sqs_record(received(), "postline-critical")
    attribute = record["messageAttributes"]["postline_reason"]
    assert attribute["stringValue"] == "to: invalid address"
    assert attribute["dataType"] == "String"
    assert attribute["stringListValues"] == [] and attribute["binaryListValues"] == []


def test_md5_of_body_is_computed_when_sqs_did_not_send_it():
    message = received()
    del message["MD5OfBody"]
    record = lambda_sqs_record(message, "postline-critical")
    assert record["md5OfBody"] == hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest()


def test_message_without_attributes_gives_empty_maps():
    message = received()
    del message["Attributes"], message["MessageAttributes"]
    record = lambda_sqs_record(message, "postline-critical")
    assert record["attributes"] == {} and record["messageAttributes"] == {}


def test_record_is_plain_json_like_a_lambda_event():
    record = lambda_sqs_record(received(), "postline-critical")
    assert json.loads(json.dumps(record)) == record


def test_string_attribute_has_exactly_lambdas_keys():
    attribute = lambda_sqs_record(received(), "postline-critical")["messageAttributes"]["postline_reason"]
    assert set(attribute) == {"stringValue", "stringListValues", "binaryListValues", "dataType"}


# --- read back by the library ---------------------------------------------------------------------------------------

def test_queue_record_reads_queue_name_sent_time_and_receive_count():
    record = QueueRecord.from_event_record(lambda_sqs_record(received(), "postline-send-marketing"))
    assert record.queue_name == "postline-send-marketing"
    assert record.sent_at == pytest.approx(1_718_000_000.123)  # seconds, not milliseconds
    assert record.receive_count == 3
    assert record.record_id == "5fea7756-0ea4-451a-a703-a558b933e274"
    assert record.receipt_handle == "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a..."
    assert json.loads(record.body)["template"] == "welcome"


def test_queue_record_reads_a_powertools_sqs_record_the_same_way():
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    raw = lambda_sqs_record(received(), "postline-critical")
    assert QueueRecord.from_event_record(SQSRecord(raw)) == QueueRecord.from_event_record(raw)


def test_queue_record_defaults_when_attributes_are_absent():
    raw = lambda_sqs_record(received(Attributes={}), "postline-critical")
    record = QueueRecord.from_event_record(raw)
    assert record.receive_count == 1 and record.sent_at == 0
