"""postline's promise in every path (issue 19): one bad message never fails its neighbours, a retry never sends
twice, nothing ends without a reason, nothing goes to a suppressed or erased address. Each test is a scenario
that failed before the fix."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from postline import render as render_stage
from postline.batch import QueueRecord
from postline.contract import message_id_for
from postline.models import Message, Suppression
from postline.render import render_batch
from postline.send import send_batch
from postline_cli.local import resources

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_OF = {"critical": "password-reset", "transactional": "welcome", "marketing": "newsletter"}


def example(template: str) -> dict:
    return json.loads((ROOT / "templates" / template / "example.json").read_text())


def message(template: str, to: str, key: str, **extra) -> dict:
    return {"template": template, "to": to, "data": example(template), "id": key, **extra}


def record(key: str) -> Message:
    return Message.get(message_id_for(key), consistent_read=True)


def dlq(pipeline, queue_name: str) -> list[dict]:
    """What is in ``queue_name``'s DLQ: each body with its message attributes."""
    found = []
    while batch := pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url(f"{queue_name}-dlq"),
                                                MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                                VisibilityTimeout=60).get("Messages", []):
        found += [{"body": m["Body"], **{k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}}
                  for m in batch]
    return found


def sent_to(pipeline) -> list[str]:
    return sorted(s["Destination"]["ToAddresses"][0] for s in pipeline.ses.sends)


def ses_event(send: dict, kind: str, retry: str | None = None, **detail) -> dict:
    """An SES event for ``send`` (one of the CountingSes sends), as configuration-set publishing writes it."""
    tags = {name: [value] for name, value in send["tags"].items()}
    if retry is not None:
        tags["postline_retry"] = [retry]
    body = {"eventType": kind, "mail": {"messageId": send["MessageId"], "timestamp": "2027-01-15T08:00:00.000Z",
                                        "destination": send["Destination"]["ToAddresses"], "tags": tags}}
    body.update(detail)
    return body


class DelayOver:
    """The events stage's queue client: a soft-bounce retry it queues with SQS's delay (which moto counts in real
    time) is on the inbound queue at once, as it would be once the pipeline's clock has passed the delay."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def __getattr__(self, name):
        return getattr(self.pipeline.sqs, name)

    def send_message(self, **kw):
        return self.pipeline.sqs.send_message(**{**kw, "DelaySeconds": 0})


def apply(pipeline, *events: dict, receive_count: int = 1):
    from postline.events import apply_events

    records = [QueueRecord(f"e-{n}-{pipeline.clock()}", json.dumps(e) if isinstance(e, dict) else e,
                           resources.EVENTS_QUEUE, pipeline.clock(), receive_count) for n, e in enumerate(events)]
    ctx = pipeline.events_context()
    ctx.sqs = DelayOver(pipeline)
    return apply_events(records, ctx)


# --- one message never fails its neighbours ----------------------------------------------------------------------

LONE_SURROGATE = '{"template": "welcome", "to": "cut@example.com", "id": "poison", "data": ' \
                 '{"name": "Ada \\ud83d", "product_name": "Lumen", "dashboard_url": "https://app.example.com"}}'


def test_a_lone_surrogate_rejects_its_message_alone_and_its_five_neighbours_are_sent(pipeline):
    """JavaScript's JSON.stringify writes `\\ud83d` for a string cut inside an emoji. It used to make the render
    invocation raise, so the whole batch came back until all six went to the DLQ without a reason."""
    for n in range(3):
        pipeline.enqueue("transactional", message("welcome", f"before{n}@example.com", f"good-{n}"))
    pipeline.enqueue("transactional", LONE_SURROGATE)
    for n in range(3, 5):
        pipeline.enqueue("transactional", message("welcome", f"after{n}@example.com", f"good-{n}"))
    results = pipeline.run_render()
    assert not any(r.failed for r in results)
    pipeline.run_send()
    assert len(pipeline.ses.sends) == 5 and "cut@example.com" not in sent_to(pipeline)
    rejected = record("poison")
    assert rejected.status == "rejected" and "data.name" in rejected.reason and "surrogate" in rejected.reason
    (dead,) = dlq(pipeline, "postline-transactional")
    assert dead["body"] == LONE_SURROGATE and dead["postline_reason"] == rejected.reason


def test_any_error_one_message_causes_while_rendering_rejects_it_alone(pipeline, monkeypatch):
    """Whatever a message's content makes a step raise (here the MIME builder, for one recipient), that message
    is rejected with the error as its reason; the rest of the batch goes on."""
    real = render_stage.build_mime

    def fragile(**kwargs):
        if kwargs["recipient"] == "odd@example.com":
            raise UnicodeEncodeError("utf-8", "\ud83d", 0, 1, "surrogates not allowed")
        return real(**kwargs)

    monkeypatch.setattr(render_stage, "build_mime", fragile)
    for stream, template in TEMPLATE_OF.items():
        pipeline.enqueue(stream, message(template, "odd@example.com", f"odd-{stream}"))
        pipeline.enqueue(stream, message(template, "fine@example.com", f"fine-{stream}"))
    assert not any(r.failed for r in pipeline.run_render())
    pipeline.run_send()
    assert sent_to(pipeline) == ["fine@example.com"] * 3
    for stream in TEMPLATE_OF:
        odd = record(f"odd-{stream}")
        assert odd.status == "rejected" and odd.reason.startswith("could not render it: UnicodeEncodeError")
        assert [d["postline_reason"] for d in dlq(pipeline, f"postline-{stream}")] == [odd.reason]


def test_an_error_no_step_foresaw_fails_only_the_record_that_raises_it(pipeline, monkeypatch):
    """The last line of defence: an exception escaping the stage for one record sends the batch again record by
    record, so only that record fails, and it goes to the DLQ at once with the error as its reason."""
    real = render_stage._queued_at

    def broken_for_one(record, now):
        if "unlucky" in record.body:
            raise ZeroDivisionError("a bug")
        return real(record, now)

    monkeypatch.setattr(render_stage, "_queued_at", broken_for_one)
    pipeline.enqueue("transactional", message("welcome", "a@example.com", "n-1"))
    pipeline.enqueue("transactional", message("welcome", "unlucky@example.com", "n-2"))
    pipeline.enqueue("transactional", message("welcome", "b@example.com", "n-3"))
    results = pipeline.run_render()
    assert not any(r.failed for r in results)
    pipeline.run_send()
    assert sent_to(pipeline) == ["a@example.com", "b@example.com"]
    (dead,) = dlq(pipeline, "postline-transactional")
    assert "unlucky@example.com" in dead["body"] and dead["postline_reason"] == "ZeroDivisionError: a bug"


def test_an_unreadable_send_job_goes_to_the_dlq_at_once_with_its_reason(pipeline):
    pipeline.enqueue("transactional", message("welcome", "a@example.com", "j-1"))
    pipeline.enqueue("transactional", message("welcome", "b@example.com", "j-2"))
    pipeline.run_render()
    records = pipeline.receive("postline-send-transactional", visibility=0)
    broken = QueueRecord("broken", '{"v": 2, "message_id": "mx"', records[0].queue_name, pipeline.clock(), 1)
    result = send_batch(records + [broken], pipeline.send_context())
    assert not result.failed and sent_to(pipeline) == ["a@example.com", "b@example.com"]
    (dead,) = dlq(pipeline, "postline-send-transactional")
    assert dead["body"] == broken.body and dead["postline_reason"].startswith("unreadable send job: JSONDecodeError")


def test_an_ses_event_that_breaks_its_handling_fails_alone(pipeline):
    """A Bounce whose recipient has no address used to raise in the middle of the batch: the Delivery beside it
    was applied again and again, then dead-lettered with it."""
    pipeline.enqueue("transactional", message("welcome", "a@example.com", "ev-1"))
    pipeline.enqueue("transactional", message("welcome", "b@example.com", "ev-2"))
    pipeline.drain()
    # The batch's emails go to SES concurrently: find each by its recipient.
    first, second = sorted(pipeline.ses.sends, key=lambda send: send["Destination"]["ToAddresses"][0])
    broken = ses_event(first, "Bounce", bounce={"bounceType": "Permanent", "bouncedRecipients": [{"status": "5.1.1"}]})
    result = apply(pipeline, broken, ses_event(second, "Delivery", delivery={"recipients": ["b@example.com"]}))
    assert not result.failed
    assert record("ev-2").status == "delivered"
    (dead,) = dlq(pipeline, resources.EVENTS_QUEUE)
    assert json.loads(dead["body"]) == broken and dead["postline_reason"] == "KeyError: 'emailAddress'"


def test_a_record_still_failing_on_its_last_receive_goes_to_the_dlq_with_its_reason(pipeline):
    """SQS's redrive would move it without a word; postline moves it itself on its last receive, and says why."""
    from tests.integration.test_pipeline import Unavailable

    pipeline.enqueue("critical", message("password-reset", "ada@example.com", "exhausted"))
    ctx = pipeline.render_context(dynamodb=Unavailable(pipeline.session.client("dynamodb"), {"transact_write_items"}))
    (first,) = pipeline.receive("postline-critical", visibility=0)
    last = QueueRecord(first.record_id, first.body, first.queue_name, first.sent_at,
                       pipeline.settings.max_receive_count, first.receipt_handle)
    result = render_batch([last], ctx)
    assert not result.failed and [o.result for o in result.outcomes.values()] == ["dead-lettered"]
    (dead,) = dlq(pipeline, "postline-critical")
    assert dead["body"] == first.body and "ServiceUnavailable" in dead["postline_reason"]


def test_a_job_the_send_stage_gives_up_on_says_why_on_its_record_and_in_the_dlq(pipeline):
    from tests.integration.test_pipeline import Unavailable

    pipeline.enqueue("transactional", message("welcome", "ada@example.com", "send-exhausted"))
    pipeline.run_render()
    (job,) = pipeline.receive("postline-send-transactional", visibility=0)
    last = QueueRecord(job.record_id, job.body, job.queue_name, job.sent_at, pipeline.settings.max_receive_count,
                       job.receipt_handle)
    claims_down = Unavailable(pipeline.session.client("dynamodb"), {"transact_write_items"})
    assert not send_batch([last], pipeline.send_context(dynamodb=claims_down)).failed
    assert pipeline.ses.sends == []
    stored = record("send-exhausted")
    assert stored.status == "rendered" and stored.reason.startswith("in the DLQ after its last receive")
    (dead,) = dlq(pipeline, "postline-send-transactional")
    assert dead["postline_message_id"] == message_id_for("send-exhausted") and dead["postline_reason"]


# --- never twice -------------------------------------------------------------------------------------------------

def test_claims_made_before_dynamodb_failed_are_given_back_not_parked(pipeline):
    """A marketing email's first claim is an INSERT; the batch's transaction (here recording a suppressed
    neighbour) then fails. SES was never called: the claim is given back, and the next copy sends the email."""
    from tests.integration.test_pipeline import Unavailable

    Suppression("blocked@example.com", "all", reason="manual", suppressed_at=1.0).save()
    pipeline.enqueue("marketing", message("newsletter", "reader@example.com", "given-back"))
    pipeline.enqueue("marketing", message("newsletter", "blocked@example.com", "blocked"))
    pipeline.run_render()
    jobs = pipeline.receive("postline-send-marketing", visibility=0)
    down = Unavailable(pipeline.session.client("dynamodb"), {"transact_write_items"})
    assert send_batch(jobs, pipeline.send_context(dynamodb=down)).failed == {j.record_id for j in jobs}
    assert record("given-back").status == "rendered" and pipeline.ses.sends == []
    assert not send_batch(jobs, pipeline.send_context()).failed
    assert sent_to(pipeline) == ["reader@example.com"] and record("given-back").status == "sent"

def soft_bounce(send: dict, retry: str | None = None, feedback: str = "fb-1") -> dict:
    return ses_event(send, "Bounce", retry=retry, bounce={
        "bounceType": "Transient", "bounceSubType": "MailboxFull", "feedbackId": feedback,
        "bouncedRecipients": [{"emailAddress": send["Destination"]["ToAddresses"][0]}]})


def retries_queued(pipeline, stream: str) -> list[dict]:
    messages = pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url(resources.INBOUND_QUEUES[stream]),
                                            MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                            VisibilityTimeout=0).get("Messages", [])
    return [m for m in messages if "postline_retry" in m.get("MessageAttributes", {})]


def test_a_soft_bounce_retry_is_queued_once_when_its_events_batch_fails_after_queuing(pipeline):
    """The batch that queued the retry fails afterwards (say on the next record's write) and SQS delivers the
    soft bounce again: no second retry is queued."""
    pipeline.enqueue("transactional", message("welcome", "full@example.com", "sb-once"))
    pipeline.drain()
    bounce = soft_bounce(pipeline.ses.sends[0], retry="0")
    apply(pipeline, bounce)
    apply(pipeline, bounce, receive_count=2)  # the same event, redelivered
    assert len(retries_queued(pipeline, "transactional")) == 1
    assert record("sb-once").retry_requested == 1


def test_a_retry_queued_twice_is_sent_once(pipeline):
    """A second copy of retry 1 (SQS at-least-once, or a batch that queued it twice) arrives after the first was
    sent: render used to replace any `sent` record for a retry, so it was sent again. It replaces the record only
    for the retry the record asked for, once."""
    pipeline.enqueue("transactional", message("welcome", "full@example.com", "sb-copies"))
    pipeline.drain()
    apply(pipeline, soft_bounce(pipeline.ses.sends[0], retry="0"))
    pipeline.now[0] += pipeline.settings.soft_bounce_first_retry_seconds
    (retry,) = retries_queued(pipeline, "transactional")
    pipeline.drain()  # retry 1 is rendered and sent
    assert record("sb-copies").status == "sent" and pipeline.ses.count(message_id_for("sb-copies")) == 2
    pipeline.sqs.send_message(QueueUrl=pipeline.queue_url("postline-transactional"), MessageBody=retry["Body"],
                              MessageAttributes=retry["MessageAttributes"])
    pipeline.drain()
    assert pipeline.ses.count(message_id_for("sb-copies")) == 2  # the first attempt and one retry
    assert record("sb-copies").retry == 1


def test_a_late_event_of_the_first_attempt_never_settles_the_retry(pipeline):
    pipeline.enqueue("transactional", message("welcome", "full@example.com", "sb-late"))
    pipeline.drain()
    first = pipeline.ses.sends[0]
    apply(pipeline, soft_bounce(first, retry="0"))
    pipeline.run_render()  # the retry (SQS's delay is not waited for here) is rendered: retry 1, waiting to send
    assert (record("sb-late").status, record("sb-late").retry) == ("rendered", 1)
    apply(pipeline, ses_event(first, "Send", retry="0"), ses_event(first, "Delivery", retry="0",
                                                                    delivery={"recipients": ["full@example.com"]}))
    assert record("sb-late").status == "rendered"  # the first attempt's late events change nothing
    pipeline.run_send()
    assert pipeline.ses.count(message_id_for("sb-late")) == 2
    retry_send = pipeline.ses.sends[-1]
    assert retry_send["tags"]["postline_retry"] == "1" and record("sb-late").status == "sent"


def test_a_permanent_refusal_is_acknowledged_only_once_recorded(pipeline):
    """SES refused the email for good and the `failed` write is throttled: the message must not be
    acknowledged (nor announced) with its record still saying `sending`."""
    from tests.integration.test_pipeline import Unavailable, ses_error

    pipeline.enqueue("transactional", message("welcome", "nope@example.com", "refused"))
    pipeline.run_render()
    records = pipeline.receive("postline-send-transactional", visibility=0)
    pipeline.ses.fail_with = [ses_error("MessageRejected")]
    real = pipeline.session.client("dynamodb")
    writes = []

    class ThrottledAfterTheClaim:
        """The claim's transaction goes through; the next one (recording `failed`) is throttled."""

        def __getattr__(self, name):
            if name == "transact_write_items":
                writes.append(name)
                if len(writes) > 1:
                    return getattr(Unavailable(real, {name}), name)
            return getattr(real, name)

    result = send_batch(records, pipeline.send_context(dynamodb=ThrottledAfterTheClaim()))
    assert result.failed and record("refused").status == "sending"
    assert pipeline.app_events() == []


# --- soft bounces: exhaustion needs the bounces -------------------------------------------------------------------

def test_one_old_soft_bounce_replayed_days_later_suppresses_nothing(pipeline):
    """An event replayed from a DLQ days after it happened used to exhaust the window at once."""
    pipeline.enqueue("marketing", message("newsletter", "old@example.com", "sb-old"))
    pipeline.drain()
    old = soft_bounce(pipeline.ses.sends[0])
    old["bounce"]["timestamp"] = "2026-01-01T00:00:00.000Z"  # long before the pipeline's clock
    apply(pipeline, old)
    assert list(Suppression.query("old@example.com")) != []  # the history counts it
    with pytest.raises(Suppression.DoesNotExist):
        Suppression.get("old@example.com", "all")


def test_a_soft_bounce_applied_twice_counts_once(pipeline):
    pipeline.enqueue("marketing", message("newsletter", "twice@example.com", "sb-twice"))
    pipeline.drain()
    bounce = soft_bounce(pipeline.ses.sends[0])
    apply(pipeline, bounce)
    apply(pipeline, bounce, receive_count=2)
    history = pipeline.session.client("dynamodb").get_item(TableName=pipeline.settings.suppressions_table, Key={
        "email": {"S": "twice@example.com"}, "scope": {"S": "soft_bounces"}})["Item"]
    assert history["bounces"] == {"N": "1"}


# --- application events: only what was applied --------------------------------------------------------------------

def test_the_application_hears_only_of_status_changes_postline_applied(pipeline):
    pipeline.settings = pipeline.settings.model_copy(update={"app_events": ("email.delivered", "email.bounced",
                                                                            "email.complained")})
    pipeline.enqueue("transactional", message("welcome", "ada@example.com", "ap-1"))
    pipeline.drain()
    send = pipeline.ses.sends[0]
    complaint = ses_event(send, "Complaint", complaint={"complainedRecipients": [{"emailAddress": "ada@example.com"}]})
    delivery = ses_event(send, "Delivery", delivery={"recipients": ["ada@example.com"]})
    apply(pipeline, complaint)
    apply(pipeline, delivery)  # late: the record is complained already
    apply(pipeline, complaint)  # again
    assert [e["detail-type"] for e in pipeline.app_events()] == ["email.complained"]


# --- never to a suppressed address ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", TEMPLATE_OF)
def test_a_complaint_from_bob_blocks_mail_to_bob_in_any_case(pipeline, stream):
    pipeline.enqueue("transactional", message("welcome", "Bob@example.com", "bob-1"))
    pipeline.drain()
    apply(pipeline, ses_event(pipeline.ses.sends[0], "Complaint",
                              complaint={"complainedRecipients": [{"emailAddress": "Bob@example.com"}]}))
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "bob@example.com", "bob-2"))
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "BOB@Example.com", "bob-3"))
    pipeline.drain()
    assert pipeline.ses.count(message_id_for("bob-2")) == pipeline.ses.count(message_id_for("bob-3")) == 0
    assert record("bob-2").status == record("bob-3").status == "suppressed"


def test_mail_goes_to_the_address_as_the_application_wrote_it(pipeline):
    pipeline.enqueue("transactional", message("welcome", "Ada.Lovelace@Example.COM", "as-given"))
    pipeline.drain()
    assert sent_to(pipeline) == ["Ada.Lovelace@example.com"]  # only the domain is normalised


@pytest.mark.parametrize("stream", ["transactional", "marketing"])
def test_the_check_before_sending_reads_suppressions_strongly_consistently(pipeline, stream):
    reads = []
    pipeline.session.events.register("before-parameter-build.dynamodb.BatchGetItem",
                                     lambda params, **_: reads.append(params["RequestItems"]))
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "ada@example.com", "consistent"))
    pipeline.drain()
    checks = [r[pipeline.settings.suppressions_table] for r in reads if pipeline.settings.suppressions_table in r]
    assert checks and all(check.get("ConsistentRead") is True for check in checks)


def test_a_tag_named_like_postlines_own_is_refused(pipeline):
    pipeline.enqueue("transactional", message("welcome", "ada@example.com", "tag-1",
                                              tags={"postline_message_id": "someone-else"}))
    pipeline.drain()
    assert pipeline.ses.sends == [] and record("tag-1").status == "rejected"
    assert "reserved" in dlq(pipeline, "postline-transactional")[0]["postline_reason"]


def test_a_repeat_rendered_while_the_original_waits_cannot_change_what_it_sends(pipeline):
    """Large bodies wait in S3. They were keyed by message id, so a repeat of the message (same id, other data)
    rendered before the original was sent overwrote the original's body."""
    pipeline.settings = pipeline.settings.model_copy(update={"claim_check_threshold_bytes": 1_000})
    original = message("newsletter", "ada@example.com", "big-repeat")
    repeat = {**original, "data": {**original["data"], "intro": "SOMETHING ELSE ENTIRELY"}}
    pipeline.enqueue("marketing", original)
    pipeline.run_render()
    (job,) = pipeline.receive("postline-send-marketing", visibility=60)
    pipeline.enqueue("marketing", repeat)
    pipeline.run_render()
    send_batch([job], pipeline.send_context())
    pipeline.run_send()  # the repeat: a duplicate
    (sent,) = pipeline.ses.sends
    assert b"This month we shipped" in sent["Content"]["Raw"]["Data"]  # the original's own intro


# --- erasure: nothing brings the address back ---------------------------------------------------------------------

def erasure_key(pipeline) -> bytes:
    from postline.tokens import KeyRing

    secret = pipeline.session.client("secretsmanager").get_secret_value(SecretId=resources.SIGNING_SECRET)
    return KeyRing.from_secret(secret["SecretString"]).erasure_key


def everything_stored(pipeline) -> str:
    dynamodb = pipeline.session.client("dynamodb")
    return json.dumps([item for table in dynamodb.list_tables()["TableNames"]
                       for item in dynamodb.scan(TableName=table)["Items"]])


@pytest.mark.parametrize("stream", TEMPLATE_OF)
def test_jobs_queued_before_an_erasure_neither_send_nor_bring_the_address_back(pipeline, stream):
    """One job already on the send queue, one still on the inbound queue, when the (unsuppressed) address is
    erased: neither is sent, and no record, kept request or suppression holds the address afterwards."""
    from postline_cli.erase import erase

    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "gone@example.com", "rendered-before"))
    pipeline.run_render()
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "gone@example.com", "queued-before"))
    erase("gone@example.com", erasure_key(pipeline))
    pipeline.drain()
    assert pipeline.ses.sends == []
    assert record("queued-before").status == "suppressed" and "erased" in record("queued-before").reason
    assert "gone@example.com" not in everything_stored(pipeline)


def test_a_pending_retry_of_an_erased_address_is_cancelled(pipeline):
    from postline_cli.erase import erase
    from postline_cli.local.scheduler import run_due_schedules

    pipeline.settings = pipeline.settings.model_copy(update={"soft_bounce_first_retry_seconds": 1000})
    pipeline.enqueue("transactional", message("welcome", "gone@example.com", "retry-erased"))
    pipeline.drain()
    apply(pipeline, soft_bounce(pipeline.ses.sends[0], retry="0"))  # retry in 1000 s: a schedule
    report = erase("gone@example.com", erasure_key(pipeline), scheduler=pipeline.session.client("scheduler"),
                   schedule_group=resources.SCHEDULE_GROUP)
    assert report.retries == 1
    pipeline.now[0] += 2000
    assert run_due_schedules(pipeline.session.client("scheduler"), pipeline.sqs, resources.SCHEDULE_GROUP,
                             pipeline.clock()) == 0
    pipeline.drain()
    assert len(pipeline.ses.sends) == 1 and "gone@example.com" not in everything_stored(pipeline)


def test_a_retry_already_queued_when_the_address_is_erased_is_dropped(pipeline):
    from postline_cli.erase import erase

    pipeline.enqueue("transactional", message("welcome", "gone@example.com", "retry-queued"))
    pipeline.drain()
    apply(pipeline, soft_bounce(pipeline.ses.sends[0], retry="0"))  # retry in 10 min: on the queue, delayed
    erase("gone@example.com", erasure_key(pipeline))
    results = pipeline.run_render()
    assert [o.result for r in results for o in r.outcomes.values()] == ["dropped"]
    pipeline.run_send()
    assert len(pipeline.ses.sends) == 1 and "gone@example.com" not in everything_stored(pipeline)


def test_a_hard_bounce_arriving_after_erasure_keeps_the_address_erased(pipeline):
    from postline_cli.erase import erase

    pipeline.enqueue("transactional", message("welcome", "gone@example.com", "bounce-after"))
    pipeline.drain()
    send = pipeline.ses.sends[0]
    erase("gone@example.com", erasure_key(pipeline))
    apply(pipeline, ses_event(send, "Bounce", bounce={"bounceType": "Permanent", "feedbackId": "x",
                                                      "bouncedRecipients": [{"emailAddress": "gone@example.com",
                                                                             "diagnosticCode": "gone@example.com"}]}))
    assert "gone@example.com" not in everything_stored(pipeline)
    pipeline.now[0] += 1
    pipeline.enqueue("critical", message("password-reset", "gone@example.com", "after-bounce"))
    pipeline.drain()
    assert record("after-bounce").status == "suppressed"  # the bounce holds, under the erased name


# --- an attempt that dies before SES: its email goes out once, without an operator ------------------------------

class DiesWaitingForSlots:
    """The limiter of a send attempt that dies (killed, timed out) after its claims, while it waits for its
    sending slots: before any email is handed to SES."""

    def __init__(self, limiter):
        self.limiter = limiter

    def __getattr__(self, name):
        return getattr(self.limiter, name)

    def acquire(self, *args, **kwargs):
        raise SystemExit("killed before the handoff")


def delayed_on(pipeline, queue_name: str) -> int:
    """How many messages ``queue_name`` holds back with a delay (jobs put back as new messages)."""
    attributes = pipeline.sqs.get_queue_attributes(QueueUrl=pipeline.queue_url(queue_name),
                                                   AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"])


def settled_window(pipeline) -> float:
    from postline.settings import SEND_EVENT_MARGIN_SECONDS

    return pipeline.settings.send_event_delay_seconds + SEND_EVENT_MARGIN_SECONDS


@pytest.mark.parametrize("stream", ["critical", "marketing"])  # an updated record; one the claim created
def test_an_email_whose_attempt_died_before_handing_it_to_ses_is_sent_once_not_parked(pipeline, stream):
    key = f"died-before-handoff-{stream}"
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "ada@example.com", key))
    pipeline.run_render()
    jobs = pipeline.receive(resources.SEND_QUEUES[stream], visibility=0)
    with pytest.raises(SystemExit):
        send_batch(jobs, pipeline.send_context(limiter=DiesWaitingForSlots(pipeline.send_context().limiter)))
    assert record(key).status == "sending" and pipeline.ses.sends == []
    # SQS hands the job out again: while the dead attempt could still be alive, its copy waits ...
    waiting = send_batch(jobs, pipeline.send_context())
    assert waiting.outcomes[jobs[0].record_id].reason == "claimed by an earlier attempt"
    # ... and once it had time to settle, the claim SES never saw is taken back and the email sent, once.
    pipeline.now[0] += settled_window(pipeline)
    taken = send_batch(jobs, pipeline.send_context())
    # given back, and the job put back on its queue as a new message (the receives it spent waiting start afresh)
    assert taken.outcomes[jobs[0].record_id].result == "waiting" and record(key).status == "rendered"
    assert delayed_on(pipeline, resources.SEND_QUEUES[stream]) == 1
    assert send_batch(jobs, pipeline.send_context()).outcomes[jobs[0].record_id].result == "sent"  # a second on
    assert send_batch(jobs, pipeline.send_context()).outcomes[jobs[0].record_id].result == "duplicate"
    assert pipeline.ses.count(message_id_for(key)) == 1 and record(key).status == "sent"
    assert record(key).attempts == 2 and dlq(pipeline, resources.SEND_QUEUES[stream]) == []


def test_a_job_on_its_last_receive_waits_for_a_young_claim_as_a_new_message_not_parked(pipeline):
    """SQS handed the job out as often as the queue allows (a duplicate delivery, a kill, a take-back) while an
    attempt holds a young claim: the job goes back on its queue as a new message rather than park an email SES
    may never have seen; once the dead attempt's claim had time to settle, it is taken back and sent once."""
    pipeline.enqueue("transactional", message("welcome", "ada@example.com", "last-receive"))
    pipeline.run_render()
    (job,) = pipeline.receive("postline-send-transactional", visibility=0)
    with pytest.raises(SystemExit):
        send_batch([job], pipeline.send_context(limiter=DiesWaitingForSlots(pipeline.send_context().limiter)))
    last = QueueRecord(job.record_id, job.body, job.queue_name, job.sent_at, pipeline.settings.max_receive_count,
                       job.receipt_handle)
    waiting = send_batch([last], pipeline.send_context())
    assert waiting.outcomes[job.record_id].result == "waiting" and not waiting.failed
    assert record("last-receive").status == "sending" and dlq(pipeline, "postline-send-transactional") == []
    assert delayed_on(pipeline, "postline-send-transactional") == 1  # the job, as a new message
    pipeline.now[0] += settled_window(pipeline)
    again = QueueRecord("the-new-message", job.body, job.queue_name, pipeline.clock(), 1)
    taken = send_batch([again], pipeline.send_context())  # taken back: a new message looks again in a second
    assert taken.outcomes[again.record_id].result == "waiting" and record("last-receive").status == "rendered"
    assert send_batch([again], pipeline.send_context()).outcomes[again.record_id].result == "sent"
    assert pipeline.ses.count(message_id_for("last-receive")) == 1


def test_an_attempt_whose_claim_was_taken_back_does_not_send(pipeline):
    """The attempt was only slow: a copy took its claim back while it read the bodies. Its handoff mark then finds
    the claim gone, so it does not call SES and keeps its SQS message for a later look; the email goes out once."""
    pipeline.enqueue("transactional", message("welcome", "ada@example.com", "slow-attempt"))
    pipeline.run_render()
    jobs = pipeline.receive("postline-send-transactional", visibility=0)
    limiter = pipeline.send_context().limiter

    class CopyTakesItBack:
        def __getattr__(self, name):
            return getattr(limiter, name)

        def acquire(self, *args, **kwargs):
            pipeline.now[0] += settled_window(pipeline)
            send_batch(jobs, pipeline.send_context())  # the copy: finds the claim unmarked and old
            assert record("slow-attempt").status == "rendered"
            return limiter.acquire(*args, **kwargs)

    slow = send_batch(jobs, pipeline.send_context(limiter=CopyTakesItBack()))
    outcome = slow.outcomes[jobs[0].record_id]
    assert outcome.retry and outcome.reason == "the claim moved on before the SES answer was recorded"
    assert pipeline.ses.sends == []
    assert send_batch(jobs, pipeline.send_context()).outcomes[jobs[0].record_id].result == "sent"  # its next look
    assert pipeline.ses.count(message_id_for("slow-attempt")) == 1 and record("slow-attempt").status == "sent"


# --- an operator settles what nobody knows ------------------------------------------------------------------------

def parked(pipeline, key: str) -> str:
    """A marketing email whose attempt died after it handed the email to SES and before any SES answer, parked
    once stale (SES may have sent it)."""
    pipeline.enqueue("marketing", message("newsletter", "lost@example.com", key))
    pipeline.run_render()
    records = pipeline.receive("postline-send-marketing", visibility=0)
    pipeline.crash_before_ses(records)
    pipeline.now[0] += pipeline.settings.stale_claim_seconds + 1
    send_batch(records, pipeline.send_context())
    assert record(key).status == "unknown"
    return message_id_for(key)


def test_an_operator_resolves_a_parked_email_as_not_sent_and_it_is_sent_once(pipeline):
    from postline_cli.parked import resolve_parked

    message_id = parked(pipeline, "park-resend")
    status = resolve_parked(message_id, False, pipeline.sqs, pipeline.queue_url("postline-send-marketing"),
                            pipeline.queue_url("postline-send-marketing-dlq"), "SES shows no send", pipeline.clock)
    assert status == "rendered" and dlq(pipeline, "postline-send-marketing") == []
    pipeline.run_send()
    assert pipeline.ses.count(message_id) == 1 and record("park-resend").status == "sent"


def test_an_operator_resolves_a_parked_email_as_sent(pipeline):
    from postline_cli.parked import NotParked, resolve_parked

    message_id = parked(pipeline, "park-sent")
    args = (pipeline.sqs, pipeline.queue_url("postline-send-marketing"),
            pipeline.queue_url("postline-send-marketing-dlq"), "the recipient has it", pipeline.clock)
    assert resolve_parked(message_id, True, *args) == "sent"
    assert record("park-sent").status == "sent" and dlq(pipeline, "postline-send-marketing") == []
    with pytest.raises(NotParked, match="not parked"):
        resolve_parked(message_id, True, *args)
    pipeline.run_send()
    assert pipeline.ses.sends == []


def test_a_late_ses_event_settles_a_parked_email(pipeline):
    pipeline.enqueue("transactional", message("welcome", "ada@example.com", "park-event"))
    pipeline.run_render()
    records = pipeline.receive("postline-send-transactional", visibility=0)
    pipeline.crash_after_ses(records)
    pipeline.now[0] += pipeline.settings.stale_claim_seconds + 1
    send_batch(records, pipeline.send_context())
    assert record("park-event").status == "unknown"
    apply(pipeline, ses_event(pipeline.ses.sends[0], "Delivery", retry="0",
                              delivery={"recipients": ["ada@example.com"]}))
    assert record("park-event").status == "delivered" and pipeline.ses.count(message_id_for("park-event")) == 1
