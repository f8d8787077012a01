"""Critical mail checks suppressions inside the stages' transactions (ConditionChecks) instead of a read before
them: the same promises as the read path, never send to a suppressed address and never twice."""
from __future__ import annotations

import json
from pathlib import Path

from postline.contract import message_id_for
from postline.models import Message, Suppression

ROOT = Path(__file__).resolve().parents[2]


def reset(to: str, key: str, **data) -> dict:
    example = json.loads((ROOT / "templates" / "password-reset" / "example.json").read_text())
    return {"template": "password-reset", "to": to, "data": {**example, **data}, "id": key}


def record(key: str) -> Message:
    return Message.get(message_id_for(key), consistent_read=True)


def calls(pipeline, operation: str) -> list:
    """Count a DynamoDB operation the stages make from now on."""
    made = []
    pipeline.session.events.register(f"before-call.dynamodb.{operation}", lambda **kw: made.append(kw))
    return made


def test_a_suppressed_address_is_recorded_suppressed_at_render_and_never_rendered(pipeline):
    Suppression("gone@example.com", "all", reason="hard_bounce", suppressed_at=1.0).save()
    pipeline.enqueue("critical", reset("gone@example.com", "c-gone"))
    pipeline.drain()
    assert record("c-gone").status == "suppressed"
    assert record("c-gone").reason == "suppressed: hard_bounce (scope all)"
    assert pipeline.ses.sends == []
    assert pipeline.receive("postline-send-critical") == []


def test_the_scope_all_is_reported_when_both_scopes_block(pipeline):
    Suppression("both@example.com", "critical", reason="manual", suppressed_at=1.0).save()
    Suppression("both@example.com", "all", reason="complaint", suppressed_at=1.0).save()
    pipeline.enqueue("critical", reset("both@example.com", "c-both"))
    pipeline.drain()
    assert record("c-both").reason == "suppressed: complaint (scope all)"


def test_a_stream_scope_blocks_only_its_stream(pipeline):
    Suppression("resets-off@example.com", "critical", reason="manual", suppressed_at=1.0).save()
    Suppression("news-off@example.com", "marketing", reason="unsubscribe", suppressed_at=1.0).save()
    pipeline.enqueue("critical", reset("resets-off@example.com", "c-off"))
    pipeline.enqueue("critical", reset("news-off@example.com", "c-news-off"))
    pipeline.drain()
    assert record("c-off").reason == "suppressed: manual (scope critical)"
    assert record("c-news-off").status == "sent"
    assert [s["Destination"]["ToAddresses"] for s in pipeline.ses.sends] == [["news-off@example.com"]]


def test_a_suppression_added_after_rendering_is_honoured_by_the_claim(pipeline):
    pipeline.enqueue("critical", reset("late@example.com", "c-late"))
    pipeline.run_render()
    assert record("c-late").status == "rendered"
    Suppression("late@example.com", "all", reason="complaint", suppressed_at=1.0).save()
    results = pipeline.run_send()
    assert pipeline.ses.sends == []
    assert record("c-late").status == "suppressed"
    assert record("c-late").reason == "suppressed: complaint (scope all)"
    assert [o.result for r in results for o in r.outcomes.values()] == ["suppressed"]
    assert not any(r.failed for r in results)


def test_neighbours_of_a_suppressed_message_are_sent_once(pipeline):
    pipeline.enqueue("critical", reset("a@example.com", "c-a"))
    pipeline.enqueue("critical", reset("b@example.com", "c-b"))
    pipeline.enqueue("critical", reset("c@example.com", "c-c"))
    pipeline.run_render()
    Suppression("b@example.com", "all", reason="manual", suppressed_at=1.0).save()
    pipeline.run_send()
    assert sorted(s["Destination"]["ToAddresses"][0] for s in pipeline.ses.sends) == ["a@example.com", "c@example.com"]
    assert [record(k).status for k in ("c-a", "c-b", "c-c")] == ["sent", "suppressed", "sent"]
    assert pipeline.ses.count(message_id_for("c-a")) == 1


def test_two_messages_to_one_address_share_its_checks(pipeline):
    """A transaction may touch an item once: the checks of an address are written once for all its messages."""
    for key in ("c-twin-1", "c-twin-2"):
        pipeline.enqueue("critical", reset("twin@example.com", key))
    pipeline.drain()
    assert pipeline.ses.count(message_id_for("c-twin-1")) == 1
    assert pipeline.ses.count(message_id_for("c-twin-2")) == 1

    Suppression("twin2@example.com", "all", reason="manual", suppressed_at=1.0).save()
    for key in ("c-twin-3", "c-twin-4"):
        pipeline.enqueue("critical", reset("twin2@example.com", key))
    pipeline.drain()
    assert [record(k).status for k in ("c-twin-3", "c-twin-4")] == ["suppressed", "suppressed"]


def test_no_suppression_read_on_the_critical_path(pipeline):
    reads = calls(pipeline, "BatchGetItem")
    pipeline.enqueue("critical", reset("fast@example.com", "c-fast"))
    ctx = pipeline.render_context()
    ctx.templates.resolve([("password-reset", None)])  # a warm container has the template cached
    reads.clear()
    pipeline.run_render(ctx)
    pipeline.run_send()
    assert reads == [] and pipeline.ses.count(message_id_for("c-fast")) == 1
    pipeline.apply_send_events()
    assert record("c-fast").status == "sent"


def test_a_render_failure_after_recording_is_rejected_and_dead_lettered(pipeline):
    body = reset("typo@example.com", "c-typo", expires_minutes="thirty")
    pipeline.enqueue("critical", body)
    results = pipeline.run_render()
    assert not any(r.failed for r in results)
    stored = record("c-typo")
    assert stored.status == "rejected" and "cannot render" in stored.reason
    assert stored.rendered_at is None
    dlq = pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url("postline-critical-dlq"),
                                       MessageAttributeNames=["All"])["Messages"]
    assert json.loads(dlq[0]["Body"])["id"] == "c-typo"
    assert pipeline.receive("postline-send-critical") == []


def test_a_redelivered_critical_message_is_a_duplicate_and_not_rendered_again(pipeline):
    pipeline.enqueue("critical", reset("again@example.com", "c-again"))
    pipeline.drain()
    pipeline.enqueue("critical", reset("again@example.com", "c-again"))
    pipeline.drain()
    assert pipeline.ses.count(message_id_for("c-again")) == 1
    assert record("c-again").repeats_ignored == 1


def test_an_erased_address_stays_suppressed_for_critical_mail_through_its_hash(pipeline):
    from postline.suppression import erased_address
    from postline.tokens import KeyRing
    from postline_cli.local import resources

    secret = pipeline.session.client("secretsmanager").get_secret_value(SecretId=resources.SIGNING_SECRET)
    key = KeyRing.from_secret(secret["SecretString"]).erasure_key
    Suppression(erased_address("hashed@example.com", key), "all", reason="complaint", suppressed_at=1.0).save()
    pipeline.enqueue("critical", reset("hashed@example.com", "c-hashed"))
    pipeline.drain()
    assert record("c-hashed").status == "suppressed"
    assert record("c-hashed").reason == "suppressed: complaint (scope all)"
    assert pipeline.ses.sends == []


def test_the_request_kept_for_soft_bounce_retries_rides_in_the_record_transaction(pipeline):
    from postline.models import EmailEvent

    writes = calls(pipeline, "BatchWriteItem")
    pipeline.enqueue("critical", reset("kept@example.com", "c-kept"))
    pipeline.run_render()
    assert writes == []
    kept = [e for e in EmailEvent.query(message_id_for("c-kept")) if e.type == "request"]
    assert len(kept) == 1 and kept[0].detail["id"] == "c-kept"

    Suppression("kept2@example.com", "all", reason="manual", suppressed_at=1.0).save()
    pipeline.enqueue("critical", reset("kept2@example.com", "c-kept2"))
    pipeline.run_render()
    assert list(EmailEvent.query(message_id_for("c-kept2"))) == []  # nothing kept for a suppressed message


def test_a_failing_suppressed_write_does_not_hold_back_the_claimed_neighbours(pipeline, monkeypatch):
    from botocore.exceptions import ClientError

    from postline import dynamo
    from postline.send import send_batch

    monkeypatch.setattr(dynamo, "_pause", lambda attempt: None)
    pipeline.enqueue("critical", reset("ok@example.com", "c-ok"))
    pipeline.enqueue("critical", reset("blocked@example.com", "c-blocked"))
    pipeline.run_render()
    Suppression("blocked@example.com", "all", reason="manual", suppressed_at=1.0).save()
    real = pipeline.session.client("dynamodb")

    class ThrottledAfterTheClaim:
        def __init__(self):
            self.calls = 0

        def transact_write_items(self, **kwargs):
            self.calls += 1
            if self.calls <= 2:  # the claim transaction, and its retry without the failed check
                return real.transact_write_items(**kwargs)
            reasons = [{"Code": "ThrottlingError"} for _ in kwargs["TransactItems"]]
            raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "throttled"},
                               "CancellationReasons": reasons}, "TransactWriteItems")

        def __getattr__(self, name):
            return getattr(real, name)

    records = pipeline.receive("postline-send-critical", visibility=0)
    result = send_batch(records, pipeline.send_context(dynamodb=ThrottledAfterTheClaim()))
    outcomes = {o.message_id: o for o in result.outcomes.values()}
    assert pipeline.ses.count(message_id_for("c-ok")) == 1
    assert pipeline.ses.count(message_id_for("c-blocked")) == 0
    assert outcomes[message_id_for("c-blocked")].retry
    assert record("c-blocked").status == "rendered"
