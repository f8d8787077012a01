"""Erasure: every trace of the address goes, its suppressions stay in force as keyed hashes."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from postline.contract import message_id_for
from postline.models import Message, Suppression
from postline.tokens import KeyRing
from postline_cli import suppressions as manage
from postline_cli.erase import erase
from postline_cli.local import resources

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "gone@example.com"


def example(name):
    return json.loads((ROOT / "templates" / name / "example.json").read_text())


def everything_stored(pipeline) -> str:
    dynamodb = pipeline.session.client("dynamodb")
    dump = []
    for table in dynamodb.list_tables()["TableNames"]:
        dump += dynamodb.scan(TableName=table)["Items"]
    return json.dumps(dump)


def erasure_key(pipeline) -> bytes:
    secret = pipeline.session.client("secretsmanager").get_secret_value(SecretId=resources.SIGNING_SECRET)
    return KeyRing.from_secret(secret["SecretString"]).erasure_key


def test_erase_forgets_the_address_and_keeps_it_suppressed(pipeline):
    pipeline.enqueue("transactional", {"template": "welcome", "to": ADDRESS, "data": example("welcome"), "id": "w"})
    pipeline.enqueue("marketing", {"template": "newsletter", "to": ADDRESS, "data": example("newsletter"), "id": "n"})
    pipeline.drain()
    pipeline.publish_ses_events()
    manage.add(ADDRESS, "marketing", "unsubscribe", "one-click")
    assert ADDRESS in everything_stored(pipeline)

    report = erase(ADDRESS, erasure_key(pipeline), pipeline.session.client("s3"), resources.CLAIM_CHECK_BUCKET)
    assert (report.messages, report.kept_suppressed) == (2, ["marketing"])
    assert report.events >= 1  # the send message kept for retries (deliveries are kept on the records)
    assert ADDRESS not in everything_stored(pipeline)
    assert list(Suppression.query(ADDRESS)) == []

    pipeline.enqueue("marketing", {"template": "newsletter", "to": ADDRESS, "data": example("newsletter"), "id": "n2"})
    pipeline.enqueue("critical", {"template": "password-reset", "to": ADDRESS, "data": example("password-reset"),
                                  "id": "r2"})
    pipeline.drain()
    assert Message.get(message_id_for("n2")).status == "suppressed"  # still unsubscribed, through the hash
    assert Message.get(message_id_for("r2")).status == "sent"  # and only from marketing


def test_erasing_an_unsuppressed_address_leaves_only_a_mark_that_stops_what_was_queued_before(pipeline):
    pipeline.enqueue("transactional", {"template": "welcome", "to": ADDRESS, "data": example("welcome"), "id": "w"})
    pipeline.drain()
    report = erase(ADDRESS, erasure_key(pipeline))
    assert (report.messages, report.kept_suppressed) == (1, [])
    (mark,) = manage.iterate()
    assert (mark.reason, mark.scope) == ("erased", "all") and ADDRESS not in mark.email
    # Mail the application queues after the erasure is sent as usual: the address is forgotten, not blocked.
    time.sleep(0.01)  # SQS's SentTimestamp (what "queued after" is judged by) counts milliseconds
    pipeline.enqueue("transactional", {"template": "welcome", "to": ADDRESS, "data": example("welcome"),
                                       "id": "w-after"})
    pipeline.drain()
    assert Message.get(message_id_for("w-after")).status == "sent"


@pytest.mark.parametrize("stream, template, scope", [("marketing", "newsletter", "marketing"),
                                                     ("transactional", "welcome", "all"),
                                                     ("critical", "password-reset", "all")])
def test_a_message_waiting_on_a_send_queue_when_its_address_is_suppressed_and_erased_is_not_sent(
        pipeline, stream, template, scope):
    """The send stage's check finds the suppression that erasure keeps as a keyed hash (render put the
    recipient's erased form in the send job), and the address does not come back with the record."""
    pipeline.enqueue(stream, {"template": template, "to": ADDRESS, "data": example(template), "id": "waiting"})
    pipeline.run_render()
    manage.add(ADDRESS, scope, "complaint" if scope == "all" else "unsubscribe", "test")
    erase(ADDRESS, erasure_key(pipeline))
    pipeline.run_send()
    assert pipeline.ses.sends == []
    assert ADDRESS not in everything_stored(pipeline)
