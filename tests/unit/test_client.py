"""postline.client: an application validates and enqueues in one call, and a bad message never reaches the queue."""
from __future__ import annotations

import json

import pytest

from postline.client import PostlineClient
from postline.contract import Rejected, message_id_for, parse_send_message

QUEUES = {"critical": "https://sqs.test/postline-critical", "transactional": "https://sqs.test/postline-transactional"}


class RecordingSqs:
    def __init__(self):
        self.sent: list[dict] = []

    def send_message(self, **request):
        self.sent.append(request)
        return {"MessageId": "sqs-1"}


@pytest.fixture
def sqs():
    return RecordingSqs()


def test_send_enqueues_the_validated_message_on_the_stream_queue(sqs):
    mail = PostlineClient.from_queue_urls(QUEUES, sqs)
    message_id = mail.send("password-reset", " Ada@EXAMPLE.com", {"name": "Ada"}, stream="critical",
                           id="reset-1", tags={"plan": "pro"})

    [request] = sqs.sent
    assert request["QueueUrl"] == QUEUES["critical"]
    assert json.loads(request["MessageBody"]) == {"template": "password-reset", "to": "Ada@example.com",
                                                  "data": {"name": "Ada"}, "id": "reset-1", "tags": {"plan": "pro"}}
    assert message_id == message_id_for("reset-1")
    assert parse_send_message(request["MessageBody"], 64_000).to == "Ada@example.com"  # render accepts it as is


def test_every_message_gets_an_id_so_a_retried_send_is_not_sent_twice(sqs):
    mail = PostlineClient(QUEUES, sqs)
    first, second = (mail.send("welcome", "ada@example.com", stream="transactional"),
                     mail.send("welcome", "ada@example.com", stream="transactional"))
    ids = [json.loads(request["MessageBody"])["id"] for request in sqs.sent]
    assert all(ids) and ids[0] != ids[1]
    assert [first, second] == [message_id_for(key) for key in ids]


def test_an_invalid_message_is_refused_in_the_application_and_never_enqueued(sqs):
    mail = PostlineClient(QUEUES, sqs)
    with pytest.raises(Rejected) as refused:
        mail.send("Welcome!", "not-an-address", tags={"bad name": "v"})
    reason = str(refused.value)
    assert "template: must be a template name" in reason and "to: invalid address" in reason
    assert "tags.bad name" in reason
    assert sqs.sent == []


def test_a_stream_without_a_queue_is_refused(sqs):
    with pytest.raises(ValueError, match="no queue configured for stream 'marketing'"):
        PostlineClient(QUEUES, sqs).send("welcome", "ada@example.com", stream="marketing")
    with pytest.raises(ValueError, match="unknown streams"):
        PostlineClient({"bulk": "https://sqs.test/x"}, sqs)
