"""The local endpoint's moto patches (``aws_endpoint``) keep moto's answers: every scenario here runs on plain moto
and on the patched one with the same expectations, but for what moto keeps in memory after answering."""
from __future__ import annotations

import gc
import json
import threading
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import responses as core_responses
from moto.core.common_models import BaseModel
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.parsing.validators import ActionCountValidator, OverlappingPathsValidator
from moto.dynamodb.responses import DynamoHandler
from moto.moto_api._internal.moto_random import MotoRandom
from moto.ses import models as ses_models
from moto.sqs import models as sqs_models

from postline_cli.local import aws_endpoint

COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible"]
# Every module and class a patch changes, put back after each test.
PATCHED = [sqs_models, sqs_models.Queue, sqs_models.SQSBackend, dynamodb_models, dynamodb_models.DynamoDBBackend,
           DynamoHandler, UpdateExpressionParser, ConditionExpressionParser, DepthFirstTraverser, Node,
           ActionCountValidator, OverlappingPathsValidator, core_responses, MotoRandom, ses_models,
           ses_models.SESBackend, BaseModel]


@pytest.fixture(params=["plain moto", "patched"])
def aws(request, monkeypatch):
    """A boto3 session against moto, as it is or with every patch of the local endpoint."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    saved = [(owner, dict(vars(owner))) for owner in PATCHED]
    if request.param == "patched":
        for patch in (aws_endpoint.serialise_dynamodb, aws_endpoint.lighten_dynamodb_expressions,
                      aws_endpoint.lighten_dispatch, aws_endpoint.speed_up_sqs, aws_endpoint.receive_each_message_once,
                      aws_endpoint.read_raw_email_headers_only, aws_endpoint.insert_as_dynamodb_does,
                      aws_endpoint.keep_no_list_of_every_object, aws_endpoint.keep_no_copy_of_sent_emails):
            patch()
    try:
        with mock_aws():
            yield boto3.session.Session(region_name="us-east-1")
    finally:
        for owner, attributes in saved:
            for name in set(vars(owner)) - set(attributes):
                delattr(owner, name)
            for name, value in attributes.items():
                if vars(owner).get(name) is not value:
                    setattr(owner, name, value)


@pytest.fixture
def sqs(aws):
    return aws.client("sqs")


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


def test_a_long_poll_gets_a_message_sent_while_it_waits(sqs):
    url = sqs.create_queue(QueueName="long-poll")["QueueUrl"]
    timer = threading.Timer(0.5, lambda: sqs.send_message(QueueUrl=url, MessageBody="late"))
    timer.start()
    received = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5).get("Messages", [])
    timer.join()
    assert [m["Body"] for m in received] == ["late"]
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []  # waits, then nothing


def test_concurrent_receives_hand_each_message_to_one_of_them(aws, monkeypatch):
    """Plain moto hands a message to two receives that race between its visibility check and its mark (the
    endpoint's request threads do; here a short sleep in the mark makes the race happen every time): the patch
    hands each to one."""
    mark = sqs_models.Message.mark_received

    def slow_mark(self, *args, **kwargs):
        time.sleep(0.002)  # lets the other receives' threads run between the check and the mark
        return mark(self, *args, **kwargs)

    monkeypatch.setattr(sqs_models.Message, "mark_received", slow_mark)
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="raced", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    for start in range(0, 200, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)}
                                                      for i in range(start, start + 10)])
    received: list[str] = []

    def drain() -> None:
        client = aws.client("sqs")
        while batch := client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            received.extend(m["Body"] for m in batch)

    threads = [threading.Thread(target=drain) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(received) == {str(i) for i in range(200)}
    patched = sqs_models.SQSBackend.receive_message.__module__ == aws_endpoint.__name__
    assert (len(received) == 200) is patched  # plain moto handed some out twice


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


def test_received_messages_carry_the_attributes_asked_for_and_the_queue_keeps_them_all(sqs):
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m", MessageAttributes={
        "kept": {"DataType": "String", "StringValue": "1"}, "other": {"DataType": "String", "StringValue": "2"}})
    first = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["kept"], VisibilityTimeout=0)["Messages"][0]
    assert set(first["MessageAttributes"]) == {"kept"}
    again = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], AttributeNames=["All"])["Messages"][0]
    assert set(again["MessageAttributes"]) == {"kept", "other"}
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    assert again["ReceiptHandle"] != first["ReceiptHandle"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    assert counts(sqs, url) == (0, 0, 0)


def test_request_ids_are_new_for_every_request(sqs):
    ids = {sqs.list_queues()["ResponseMetadata"]["RequestId"] for _ in range(20)}
    assert len(ids) == 20


def alive(kind: type) -> int:
    gc.collect()
    return sum(type(thing) is kind for thing in gc.get_objects())


def test_messages_and_items_let_go_are_freed_where_plain_moto_keeps_them_all(aws, request):
    """Plain moto lists every object it makes for its dashboard, so a long-running endpoint grows with every
    request; patched, what the queues and tables no longer hold is freed."""
    sqs, dynamodb = aws.client("sqs"), aws.client("dynamodb")
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    dynamodb.create_table(TableName="work", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    messages_before, items_before = alive(sqs_models.Message), alive(Item)
    for i in range(50):
        sqs.send_message(QueueUrl=url, MessageBody=f"email {i}")
        key = {"id": {"S": f"email {i}"}}
        dynamodb.put_item(TableName="work", Item={**key, "status": {"S": "queued"}})
        dynamodb.update_item(TableName="work", Key=key, UpdateExpression="SET #s = :s",
                             ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "sent"}})
        dynamodb.delete_item(TableName="work", Key=key)
    while received := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(received)])
    assert counts(sqs, url) == (0, 0, 0) and dynamodb.scan(TableName="work")["Count"] == 0
    kept_messages, kept_items = alive(sqs_models.Message) - messages_before, alive(Item) - items_before
    if request.node.callspec.params["aws"] == "plain moto":
        assert kept_messages >= 50 and kept_items >= 50
    else:
        assert (kept_messages, kept_items) == (0, 0)


@pytest.fixture
def dynamodb(aws):
    client = aws.client("dynamodb")
    client.create_table(TableName="records", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")
    for key in ("a", "b", "c"):
        client.put_item(TableName="records", Item={"id": {"S": key}, "status": {"S": "rendered"}})
    return client


CLAIM = {"UpdateExpression": "SET #st = :new, claimed_at = :at ADD attempts :one", "ConditionExpression": "#st = :old",
         "ExpressionAttributeNames": {"#st": "status"}}


def claim(key: str, new: str, at: int) -> dict:
    return {"Update": {"TableName": "records", "Key": {"id": {"S": key}}, **CLAIM, "ExpressionAttributeValues": {
        ":new": {"S": new}, ":old": {"S": "rendered"}, ":at": {"N": str(at)}, ":one": {"N": "1"}}}}


def item(dynamodb, key: str) -> dict:
    return dynamodb.get_item(TableName="records", Key={"id": {"S": key}}, ConsistentRead=True)["Item"]


def test_one_expression_text_with_different_values_updates_each_item_with_its_own(dynamodb):
    dynamodb.transact_write_items(TransactItems=[claim("a", "sending", 1), claim("b", "sent", 2)])
    dynamodb.update_item(**claim("c", "held", 3)["Update"])
    assert [(item(dynamodb, k)["status"]["S"], item(dynamodb, k)["claimed_at"]["N"]) for k in "abc"] == [
        ("sending", "1"), ("sent", "2"), ("held", "3")]


def test_a_condition_read_from_a_remembered_expression_still_decides(dynamodb):
    dynamodb.update_item(**claim("a", "sending", 1)["Update"])
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(**claim("a", "sending", 2)["Update"])
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
        dynamodb.transact_write_items(TransactItems=[claim("b", "sending", 3), claim("a", "sending", 3)])
    reasons = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert item(dynamodb, "a")["claimed_at"]["N"] == "1" and item(dynamodb, "a")["attempts"]["N"] == "1"
    assert "claimed_at" not in item(dynamodb, "b")  # the whole transaction was rolled back


def test_an_insert_writes_only_where_no_item_has_its_key(dynamodb, request):
    """A first claim (postline.send): DynamoDB refuses a PartiQL INSERT of a key that exists, per statement of a
    batch, and writes the others. Plain moto overwrites the item instead, which is why the endpoint patches it."""
    if request.node.callspec.params["aws"] == "plain moto":
        pytest.skip("moto's INSERT overwrites an existing item: insert_as_dynamodb_does corrects it")
    from postline.dynamo import insert_new

    new = {"id": {"S": "d"}, "status": {"S": "sending"}, "tags": {"M": {"plan": {"S": "pro"}}}, "n": {"N": "1"}}
    again = {"id": {"S": "a"}, "status": {"S": "sending"}}
    assert insert_new(dynamodb, "records", [new, again]) == [None, "DuplicateItem"]
    assert item(dynamodb, "d") == new
    assert item(dynamodb, "a") == {"id": {"S": "a"}, "status": {"S": "rendered"}}  # untouched
    assert insert_new(dynamodb, "records", [new]) == ["DuplicateItem"]
    assert insert_new(dynamodb, "missing", [new]) == ["ResourceNotFound"]


def test_a_claim_that_creates_its_item_keeps_what_an_existing_item_has(dynamodb):
    """The send stage's claim of a marketing message: record fields only where absent, a counter added."""
    creating = {"TableName": "records", "UpdateExpression": "SET #st = :new, #f0 = if_not_exists(#f0, :f0), "
                "#f1 = if_not_exists(#f1, :f1), tags = if_not_exists(tags, :tags) ADD attempts :one",
                "ConditionExpression": "attribute_not_exists(id) OR #st = :old",
                "ExpressionAttributeNames": {"#st": "status", "#f0": "recipient", "#f1": "queued_at"}}
    values = {":new": {"S": "sending"}, ":old": {"S": "rendered"}, ":one": {"N": "1"}, ":f0": {"S": "ada@example.com"},
              ":f1": {"N": "5"}, ":tags": {"M": {"plan": {"S": "pro"}}}}
    dynamodb.update_item(Key={"id": {"S": "new"}}, ExpressionAttributeValues=values, **creating)
    dynamodb.put_item(TableName="records", Item={"id": {"S": "d"}, "status": {"S": "rendered"},
                                                 "queued_at": {"N": "1"}})
    dynamodb.update_item(Key={"id": {"S": "d"}}, ExpressionAttributeValues=values, **creating)
    assert item(dynamodb, "new") == {"id": {"S": "new"}, "status": {"S": "sending"},
                                     "recipient": {"S": "ada@example.com"}, "queued_at": {"N": "5"},
                                     "tags": {"M": {"plan": {"S": "pro"}}}, "attempts": {"N": "1"}}
    assert item(dynamodb, "d")["queued_at"] == {"N": "1"} and item(dynamodb, "d")["recipient"]["S"] == "ada@example.com"
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(Key={"id": {"S": "new"}}, ExpressionAttributeValues=values, **creating)


@pytest.mark.parametrize("expression", ["SET a = :v SET b = :v", "SET a = :v REMOVE b SET c = :v", "SET id = :v",
                                        "SET a = :v, b = :v, a = :v", "SET a.b = :v, a = :v ADD n :n",
                                        "SET a = :v ADD n :n REMOVE c ADD m :n"])
def test_invalid_update_expressions_are_refused_every_time(dynamodb, expression):
    for _ in range(2):  # the second time from what was remembered of the first
        with pytest.raises(dynamodb.exceptions.ClientError, match="ValidationException"):
            dynamodb.update_item(TableName="records", Key={"id": {"S": "a"}}, UpdateExpression=expression,
                                 ExpressionAttributeValues={":v": {"S": "x"}} | (
                                     {":n": {"N": "1"}} if ":n" in expression else {}))
    assert item(dynamodb, "a") == {"id": {"S": "a"}, "status": {"S": "rendered"}}


@pytest.mark.parametrize("expression", ["SET m = zz", "SET m = :missing", "SET id = :v", "SET m.x = :v",
                                        "SET m = if_not_exists(zz, :v), n = zz"])
def test_an_invalid_update_of_a_missing_item_creates_nothing(dynamodb, expression):
    for _ in range(2):
        with pytest.raises(dynamodb.exceptions.ClientError, match="ValidationException"):
            dynamodb.update_item(TableName="records", Key={"id": {"S": "new"}}, UpdateExpression=expression,
                                 ExpressionAttributeValues={":v": {"S": "x"}})
    assert "Item" not in dynamodb.get_item(TableName="records", Key={"id": {"S": "new"}}, ConsistentRead=True)


def test_updates_that_create_their_items_each_get_their_own_values(dynamodb):
    def create(key: str, value: str) -> dict:
        return {"Update": {"TableName": "records", "Key": {"id": {"S": key}},
                           "UpdateExpression": "SET v = if_not_exists(v, :v), w = :v ADD n :one",
                           "ExpressionAttributeValues": {":v": {"S": value}, ":one": {"N": "1"}}}}

    dynamodb.transact_write_items(TransactItems=[create("x", "1"), claim("a", "sending", 1), create("y", "2")])
    dynamodb.update_item(**create("x", "3")["Update"])
    assert item(dynamodb, "x") == {"id": {"S": "x"}, "v": {"S": "1"}, "w": {"S": "3"}, "n": {"N": "2"}}
    assert item(dynamodb, "y") == {"id": {"S": "y"}, "v": {"S": "2"}, "w": {"S": "2"}, "n": {"N": "1"}}
    assert item(dynamodb, "a")["status"] == {"S": "sending"}


def test_a_raw_email_is_checked_and_counted_by_its_headers(aws):
    from postline.mime import build_mime

    sesv2 = aws.client("sesv2")
    sesv2.create_email_identity(EmailIdentity="mail.example.com")
    mime = build_mime(sender="News <hello@mail.example.com>", recipient="ada@example.com", subject="Hi",
                      text="Hello\n" * 500, html="<p>Hello</p>" * 500)
    mime = mime.replace(b"To: ada@example.com", b"To: ada@example.com\r\nCc: Bob <bob@example.org>")
    sent = sesv2.send_email(Destination={"ToAddresses": ["ada@example.com"]}, Content={"Raw": {"Data": mime}})
    assert sent["MessageId"]
    # moto counts the envelope's recipient and each one in the To and Cc headers
    assert aws.client("ses").get_send_quota()["SentLast24Hours"] == 3
    forged = mime.replace(b"hello@mail.example.com", b"someone@elsewhere.example")
    with pytest.raises(sesv2.exceptions.MessageRejected):
        sesv2.send_email(Content={"Raw": {"Data": forged}})
    assert aws.client("ses").get_send_quota()["SentLast24Hours"] == 3


def test_accepted_emails_are_counted_and_kept_whole_only_by_plain_moto(aws, request):
    sesv2 = aws.client("sesv2")
    sesv2.create_email_identity(EmailIdentity="example.com")
    for n in range(3):
        sesv2.send_email(FromEmailAddress="news@example.com", Destination={"ToAddresses": [f"reader{n}@example.net"]},
                         Content={"Raw": {"Data": b"Subject: hi\r\n\r\n" + b"hello\r\n" * 2000}})
    assert aws.client("ses").get_send_quota()["SentLast24Hours"] == 3
    kept = ses_models.ses_backends["123456789012"]["us-east-1"].sent_messages
    assert len(kept) == (3 if request.node.callspec.params["aws"] == "plain moto" else 0)


def test_the_local_ses_refuses_a_send_whose_tags_ses_would_refuse(tmp_path, monkeypatch):
    from moto.sesv2 import urls as sesv2_urls
    from moto.sesv2.responses import SESV2Response

    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(SESV2Response, "send_email", SESV2Response.send_email)  # put back after the test
    monkeypatch.setattr(SESV2Response, "get_account", None, raising=False)  # likewise GetAccount and its route
    monkeypatch.setattr(sesv2_urls, "url_paths", dict(sesv2_urls.url_paths))
    send_log = tmp_path / "sends.jsonl"
    aws_endpoint.install_ses_recorder(str(tmp_path / "outbox"), str(send_log))
    with mock_aws():
        ses = boto3.client("sesv2", region_name="us-east-1")
        ses.create_email_identity(EmailIdentity="example.com")

        def send(value: str):
            return ses.send_email(FromEmailAddress="a@example.com", Destination={"ToAddresses": ["b@example.net"]},
                                  Content={"Raw": {"Data": b"Subject: hi\r\n\r\nhello\r\n"}},
                                  EmailTags=[{"Name": "postline_campaign", "Value": value}])

        for refused_value in ("2026.12", "ops@example.com", "spring sale"):
            with pytest.raises(ClientError) as refused:
                send(refused_value)
            assert refused.value.response["Error"]["Code"] == "BadRequestException"
            assert "only alphanumeric ASCII characters" in refused.value.response["Error"]["Message"]
        send("2026-12_spring")
    assert [json.loads(line)["tags"] for line in send_log.read_text().splitlines()] == [
        {"postline_campaign": "2026-12_spring"}]
