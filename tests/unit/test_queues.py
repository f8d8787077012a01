"""The send queues: a rendered message travels to the send stage intact, large bodies by way of S3."""
from __future__ import annotations

import base64
import json
import os
import zlib

import pytest

from postline.mime import build_mime
from postline.queues import SendJob, enqueue

from .fakes import FakeS3

BUCKET = "pl-claim-check"
MIME = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Hi\r\n\r\nHello\r\n"


def job(mime: bytes = MIME, **overrides) -> SendJob:
    fields = dict(message_id="mabc123", stream="marketing", sender="Lumen <hello@mail.example.com>",
                  recipient="ada@example.com", template="newsletter", campaign="june-2025",
                  tags={"plan": "pro", "cohort": "b"}, mime=mime, rendered_by="sqs-message-1")
    fields.update(overrides)
    return SendJob(**fields)


def test_small_body_travels_inline_and_round_trips():
    s3 = FakeS3()
    original = job()
    entry = original.to_entry("rec-1", s3, BUCKET, threshold=10_000)
    assert entry["Id"] == "rec-1"
    assert s3.puts == []
    back = SendJob.from_body(entry["MessageBody"])
    assert back == original
    assert back.load_mime(s3, BUCKET) == MIME


def test_job_without_campaign_or_tags_round_trips():
    original = job(campaign=None, tags={})
    back = SendJob.from_body(original.to_entry("r", FakeS3(), BUCKET, 10_000)["MessageBody"])
    assert back.campaign is None and back.tags == {}
    assert back == original


def incompressible(size: int) -> bytes:
    return MIME + base64.encodebytes(os.urandom(size * 3 // 4))


def test_large_body_goes_to_s3_and_is_read_back():
    s3 = FakeS3()
    big = incompressible(5_000)
    entry = job(big).to_entry("rec-1", s3, BUCKET, threshold=1_000)
    document = json.loads(entry["MessageBody"])
    assert "mime" not in document and "mime_z" not in document
    assert len(entry["MessageBody"]) < 1_000  # the queue message carries only the claim check
    assert len(s3.puts) == 1
    put = s3.puts[0]
    assert put["Bucket"] == BUCKET and put["Key"] == document["mime_key"] and put["Body"] == big
    assert put["ContentType"] == "message/rfc822"
    assert "mabc123" in put["Key"]

    back = SendJob.from_body(entry["MessageBody"])
    assert back.mime is None and back.mime_key == document["mime_key"]
    assert back.load_mime(s3, BUCKET) == big
    assert (back.message_id, back.recipient, back.tags) == ("mabc123", "ada@example.com",
                                                            {"plan": "pro", "cohort": "b"})


def test_a_body_deflated_to_exactly_the_threshold_stays_inline():
    s3 = FakeS3()
    packed = len(base64.b64encode(zlib.compress(MIME)))
    entry = job().to_entry("r", s3, BUCKET, threshold=packed)
    assert s3.puts == [] and SendJob.from_body(entry["MessageBody"]).mime == MIME
    job().to_entry("r", s3, BUCKET, threshold=packed - 1)
    assert len(s3.puts) == 1


def test_a_newsletter_travels_deflated_and_a_big_one_stays_out_of_s3():
    html = "".join(f"<tr><td style='padding:8px;font-family:Arial'>Item {i}: a story worth reading</td></tr>"
                   for i in range(3_000))
    mime = build_mime(sender="hello@mail.example.com", recipient="ada@example.com", subject="News",
                      text="News\n" * 2_000, html=f"<table>{html}</table>")
    assert len(mime) > 250_000
    s3 = FakeS3()
    entry = job(mime).to_entry("r", s3, BUCKET, threshold=200_000)
    assert s3.puts == []  # over the threshold as MIME, well under it deflated
    assert len(entry["MessageBody"]) < len(mime) / 4  # SQS bills each 64 KB of a request
    assert SendJob.from_body(entry["MessageBody"]).load_mime(s3, BUCKET) == mime


def test_a_job_queued_before_the_upgrade_is_still_sent():
    body = json.dumps({"v": 1, "message_id": "mabc123", "stream": "marketing", "from": "hello@mail.example.com",
                       "to": "ada@example.com", "template": "newsletter", "campaign": None, "tags": {},
                       "mime": MIME.decode()})
    assert SendJob.from_body(body).load_mime(FakeS3(), BUCKET) == MIME
    assert SendJob.from_body(body).rendered_by is None  # so its claim keeps the rule it was queued under


@pytest.mark.parametrize("packed", ["not base64!", base64.b64encode(b"not deflated").decode()])
def test_a_damaged_body_is_refused_as_unreadable(packed):
    document = json.loads(job().to_entry("r", FakeS3(), BUCKET, 10_000)["MessageBody"])
    document["mime_z"] = packed
    with pytest.raises(ValueError):
        SendJob.from_body(json.dumps(document))


def test_rendered_mime_with_non_ascii_content_reaches_the_send_stage():
    mime = build_mime(sender="hello@mail.example.com", recipient="ada@example.com", subject="Ihre Rechnung — 12 €",
                      text="Grüße, Jürgen\nTotal: 12,50 €\n", html="<p>Grüße — 12,50 €</p>")
    s3 = FakeS3()
    back = SendJob.from_body(job(mime).to_entry("r", s3, BUCKET, threshold=200_000)["MessageBody"])
    assert back.load_mime(s3, BUCKET) == mime


# --- enqueue --------------------------------------------------------------------------------------------------------

class FakeSQS:
    def __init__(self, fail_ids: set[str] = frozenset(), fail_calls: set[int] = frozenset()) -> None:
        self.fail_ids, self.fail_calls = fail_ids, fail_calls
        self.calls: list[list[str]] = []
        self.sent: list[dict] = []

    def send_message_batch(self, QueueUrl, Entries):
        assert QueueUrl == "https://sqs.example/1/postline-send-marketing"
        assert len(Entries) <= 10, "SendMessageBatch takes at most 10 entries"
        self.calls.append([e["Id"] for e in Entries])
        if len(self.calls) - 1 in self.fail_calls:
            raise ConnectionError("connection reset by peer")
        failed = [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
                  for e in Entries if e["Id"] in self.fail_ids]
        self.sent.extend(e for e in Entries if e["Id"] not in self.fail_ids)
        return {"Successful": [{"Id": e["Id"]} for e in Entries if e["Id"] not in self.fail_ids], "Failed": failed}


URL = "https://sqs.example/1/postline-send-marketing"


def entries(n: int, size: int = 10) -> list[dict]:
    return [{"Id": f"r{i}", "MessageBody": "x" * size} for i in range(n)]


def test_enqueue_sends_in_batches_of_ten_in_order():
    sqs = FakeSQS()
    assert enqueue(sqs, URL, entries(23)) == {}
    assert [len(c) for c in sqs.calls] == [10, 10, 3]
    assert [e["Id"] for e in sqs.sent] == [f"r{i}" for i in range(23)]


def test_enqueue_splits_by_size_too():
    sqs = FakeSQS()
    assert enqueue(sqs, URL, entries(5, size=300_000)) == {}
    assert [len(c) for c in sqs.calls] == [3, 2]  # three 300 kB bodies fill a call's 1 MB budget
    assert sorted(e["Id"] for e in sqs.sent) == [f"r{i}" for i in range(5)]


def test_enqueue_reports_entries_sqs_refused():
    sqs = FakeSQS(fail_ids={"r3", "r12"})
    failed = enqueue(sqs, URL, entries(15))
    assert set(failed) == {"r3", "r12"}
    assert "try again" in failed["r3"]
    assert len(sqs.sent) == 13


def test_enqueue_reports_every_entry_of_a_call_that_failed_and_carries_on():
    sqs = FakeSQS(fail_calls={1})
    failed = enqueue(sqs, URL, entries(25))
    assert set(failed) == {f"r{i}" for i in range(10, 20)}
    assert all("connection reset" in reason for reason in failed.values())
    assert [e["Id"] for e in sqs.sent] == [f"r{i}" for i in [*range(10), *range(20, 25)]]


def test_enqueue_nothing_makes_no_call():
    sqs = FakeSQS()
    assert enqueue(sqs, URL, []) == {}
    assert sqs.calls == []
