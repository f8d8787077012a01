"""postline.client never puts a template on a queue other than its stream's: the application names the stream, or
the client reads it from the template's record (once), and refuses a named stream that is not the template's."""
from __future__ import annotations

import json

import pytest

from postline.client import PostlineClient, UnknownTemplate, WrongStream

QUEUES = {stream: f"https://sqs.test/postline-{stream}" for stream in ("critical", "transactional", "marketing")}
TABLE = "postline-templates"


class RecordingSqs:
    def __init__(self):
        self.sent: list[dict] = []

    def send_message(self, **request):
        self.sent.append(request)
        return {"MessageId": "sqs-1"}


class TemplatesTable:
    """DynamoDB's GetItem over {(name, version): stream}; version 0 is the active pointer, as publish writes it."""

    def __init__(self, streams: dict[tuple[str, int], str]):
        self.streams = streams
        self.reads: list[tuple[str, int]] = []

    def get_item(self, TableName, Key, **_projection):
        assert TableName == TABLE
        key = (Key["name"]["S"], int(Key["version"]["N"]))
        self.reads.append(key)
        return {"Item": {"stream": {"S": self.streams[key]}}} if key in self.streams else {}


@pytest.fixture
def sqs():
    return RecordingSqs()


@pytest.fixture
def templates():
    return TemplatesTable({("password-reset", 0): "critical", ("newsletter", 0): "marketing",
                           ("welcome", 0): "transactional", ("welcome", 2): "marketing"})


def queued_on(sqs) -> list[str]:
    return [request["QueueUrl"].rsplit("/", 1)[1] for request in sqs.sent]


def test_without_a_stream_or_a_templates_table_the_client_refuses_to_guess(sqs):
    mail = PostlineClient(QUEUES, sqs)
    with pytest.raises(WrongStream) as refused:
        mail.send("password-reset", "ada@example.com", {"name": "Ada"})
    assert str(refused.value) == ("which stream is template 'password-reset' in? Pass stream=, or give the client "
                                  "templates_table= to read it from the template")
    assert sqs.sent == []


def test_the_named_stream_decides_the_queue_when_there_is_no_table(sqs):
    PostlineClient(QUEUES, sqs).send("password-reset", "ada@example.com", stream="critical")
    assert queued_on(sqs) == ["postline-critical"]


def test_the_templates_stream_is_read_once_and_decides_the_queue(sqs, templates):
    mail = PostlineClient(QUEUES, sqs, templates_table=TABLE, dynamodb=templates)
    mail.send("password-reset", "ada@example.com", {"name": "Ada"})
    mail.send("password-reset", "alan@example.com", {"name": "Alan"})
    mail.send("newsletter", "ada@example.com")

    assert queued_on(sqs) == ["postline-critical", "postline-critical", "postline-marketing"]
    assert templates.reads == [("password-reset", 0), ("newsletter", 0)]
    assert json.loads(sqs.sent[0]["MessageBody"])["template"] == "password-reset"


def test_a_pinned_version_goes_by_that_versions_stream(sqs, templates):
    mail = PostlineClient(QUEUES, sqs, templates_table=TABLE, dynamodb=templates)
    mail.send("welcome@2", "ada@example.com")
    mail.send("welcome", "ada@example.com")
    assert queued_on(sqs) == ["postline-marketing", "postline-transactional"]


def test_a_named_stream_that_is_not_the_templates_is_refused_and_nothing_is_queued(sqs, templates):
    mail = PostlineClient(QUEUES, sqs, templates_table=TABLE, dynamodb=templates)
    with pytest.raises(WrongStream) as refused:
        mail.send("password-reset", "ada@example.com", stream="marketing")
    assert str(refused.value) == ("template 'password-reset' is in the critical stream, not marketing: "
                                  "it goes on the critical queue")
    mail.send("password-reset", "ada@example.com", stream="critical")  # the right one is accepted
    assert queued_on(sqs) == ["postline-critical"]


def test_the_templates_stream_without_a_queue_here_is_refused(sqs, templates):
    mail = PostlineClient({"transactional": QUEUES["transactional"]}, sqs, templates_table=TABLE, dynamodb=templates)
    with pytest.raises(WrongStream, match=r"^no queue configured for stream 'critical' \(template 'password-reset'\)$"):
        mail.send("password-reset", "ada@example.com")
    assert sqs.sent == []


def test_an_unpublished_template_is_refused_and_looked_up_again_next_time(sqs, templates):
    mail = PostlineClient(QUEUES, sqs, templates_table=TABLE, dynamodb=templates)
    with pytest.raises(UnknownTemplate, match=r"^template 'invoice' is not published$"):
        mail.send("invoice", "ada@example.com")
    templates.streams[("invoice", 0)] = "transactional"  # pushed since
    mail.send("invoice", "ada@example.com")
    assert queued_on(sqs) == ["postline-transactional"]
    assert templates.reads == [("invoice", 0), ("invoice", 0)]


def test_an_unknown_stream_name_is_refused(sqs):
    with pytest.raises(WrongStream, match=r"^unknown stream 'bulk'; streams are critical, transactional, marketing$"):
        PostlineClient(QUEUES, sqs).send("welcome", "ada@example.com", stream="bulk")
