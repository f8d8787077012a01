"""render -> send against moto: what a user of postline sees (records, queues, SES calls), including failures."""
from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from postline.batch import QueueRecord
from postline.contract import message_id_for
from postline.models import Message, Suppression
from postline.tokens import KeyRing
from postline_cli.local import resources

ROOT = Path(__file__).resolve().parents[2]


# One template of each stream: critical mail is recorded with its suppression checks, transactional mail by
# render, marketing mail by the send stage's claim; the exactly-once tests run over the ways that differ.
TEMPLATE_OF = {"critical": "password-reset", "transactional": "welcome", "marketing": "newsletter"}


def example(template: str) -> dict:
    return json.loads((ROOT / "templates" / template / "example.json").read_text())


def message(template: str, to: str, key: str, pin: int | None = None, **extra) -> dict:
    return {"template": f"{template}@{pin}" if pin else template, "to": to, "data": example(template), "id": key,
            **extra}


def record(message_id: str) -> Message:
    return Message.get(message_id, consistent_read=True)


def parsed_mime(send: dict) -> email.message.EmailMessage:
    return email.message_from_bytes(send["Content"]["Raw"]["Data"], policy=email.policy.default)


def ses_error(code: str, message: str = "simulated") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "SendEmail")


def test_each_template_is_rendered_and_sent_once_with_its_stream_settings(pipeline):
    streams = {"password-reset": "critical", "welcome": "transactional", "order-confirmation": "transactional",
               "invoice": "transactional", "newsletter": "marketing"}
    for template, stream in streams.items():
        pipeline.enqueue(stream, message(template, f"{template}@Example.ORG", f"k-{template}"))
    pipeline.drain()

    assert len(pipeline.ses.sends) == len(streams)
    for template, stream in streams.items():
        message_id = message_id_for(f"k-{template}")
        stored = record(message_id)
        assert stored.status == "sent"
        assert stored.recipient == f"{template}@example.org"  # domain normalised once, at the edge
        assert stored.ses_message_id and stored.queued_at <= stored.rendered_at <= stored.sent_at
        send = next(s for s in pipeline.ses.sends if s["tags"]["postline_message_id"] == message_id)
        assert send["ConfigurationSetName"] == pipeline.settings.configuration_sets[stream]
        assert send["Destination"]["ToAddresses"] == [f"{template}@example.org"]
        mime = parsed_mime(send)
        assert mime.get_content_type() == "multipart/alternative"
        assert mime["Subject"] and "\n" not in mime["Subject"]
        assert mime.get_body(("plain",)).get_content().strip()


def test_marketing_mail_carries_one_click_unsubscribe_and_tracking(pipeline):
    pipeline.enqueue("marketing", message("newsletter", "reader@example.com", "news-1"))
    pipeline.drain()
    mime = parsed_mime(pipeline.ses.sends[0])
    keys = KeyRing.from_secret(pipeline.session.client("secretsmanager").get_secret_value(
        SecretId=resources.SIGNING_SECRET)["SecretString"])

    header = mime["List-Unsubscribe"]
    https_part, mailto_part = [part.strip(" <>") for part in header.split(",")]
    assert https_part.startswith("https://t.example.com/u/")
    assert keys.verify(https_part.rsplit("/", 1)[1]).message_id == message_id_for("news-1")
    assert mailto_part.startswith("mailto:unsubscribe@")
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = mime.get_body(("html",)).get_content()
    assert https_part in html  # the visible unsubscribe link, untracked
    assert "https://t.example.com/o/" in html  # open pixel
    tracked = [part.split('"')[0] for part in html.split('href="https://t.example.com/c/')[1:]]
    targets = {keys.verify(token).target for token in tracked}
    assert {a["url"] for a in example("newsletter")["articles"]} <= targets
    assert "reader@example.com" not in header


def test_critical_mail_links_are_left_alone(pipeline):
    data = example("password-reset")
    pipeline.enqueue("critical", message("password-reset", "ada@example.com", "reset-1"))
    pipeline.drain()
    html = parsed_mime(pipeline.ses.sends[0]).get_body(("html",)).get_content()
    assert data["reset_url"] in html
    assert "/c/" not in html and "/o/" not in html
    assert "List-Unsubscribe" not in parsed_mime(pipeline.ses.sends[0])


@pytest.mark.parametrize("body, reason", [
    ("{not json", "not valid JSON"),
    (json.dumps({"template": "nope", "to": "a@example.com", "id": "r-1"}), "unknown template 'nope'"),
    (json.dumps({"template": "welcome", "to": "a@example.com\r\nBcc: x@evil.test", "data": {}, "id": "r-2"}),
     "line break"),
    (json.dumps({"template": "welcome", "to": "a@example.com", "data": {"name": "A"}, "id": "r-3"}),
     "missing data the template welcome@1 needs: dashboard_url, product_name"),
    (json.dumps({"template": "welcome", "to": "a@example.com", "data": "x", "id": "r-4"}), "data:"),
    (json.dumps({"template": "welcome", "to": "a@example.com", "data": {"big": "x" * 70_000}, "id": "r-5"}),
     "payload too large"),
    (json.dumps({"template": "welcome", "to": "a@example.com", "colour": "red", "id": "r-6"}), "colour: unknown field"),
    (json.dumps({"template": "welcome@7", "to": "a@example.com", "id": "r-7"}), "unknown template version welcome@7"),
])
def test_a_bad_message_is_rejected_with_its_reason_and_its_neighbours_go_through(pipeline, body, reason):
    pipeline.enqueue("transactional", message("welcome", "first@example.com", "good-1"))
    pipeline.enqueue("transactional", body)
    pipeline.enqueue("transactional", message("invoice", "second@example.com", "good-2"))
    results = pipeline.run_render()
    assert all(not r.failed for r in results)  # nothing is left to be retried forever
    pipeline.run_send()

    assert {s["tags"]["postline_message_id"] for s in pipeline.ses.sends} == {
        message_id_for("good-1"), message_id_for("good-2")}
    dlq = pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url("postline-transactional-dlq"),
                                       MessageAttributeNames=["All"], MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in dlq] == [body]
    recorded_reason = dlq[0]["MessageAttributes"]["postline_reason"]["StringValue"]
    assert reason in recorded_reason
    rejected_id = dlq[0]["MessageAttributes"]["postline_message_id"]["StringValue"]
    assert record(rejected_id).status == "rejected"
    assert reason in record(rejected_id).reason


@pytest.mark.parametrize("stream", ["transactional", "marketing"])
def test_a_repeat_that_sqs_delivers_twice_is_one_repeat(pipeline, stream):
    """The application sends an id again, and SQS hands that repeat out twice (it delivers at least once): one
    email, and the status says one repeat was ignored (render knows a transactional repeat by its record, the send
    stage's claim a marketing one: each counts it by the SQS message it came in)."""
    from postline.render import render_batch

    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "twice@example.com", "repeated"))
    pipeline.drain()
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "twice@example.com", "repeated"))
    repeat = pipeline.receive(f"postline-{stream}", visibility=0)
    for _ in range(2):
        render_batch(repeat, pipeline.render_context())
    pipeline.drain()
    message_id = message_id_for("repeated")
    assert pipeline.ses.count(message_id) == 1
    assert record(message_id).repeats_ignored == 1


@pytest.mark.parametrize("stream", ['transactional', 'marketing'])
def test_the_same_id_is_sent_once_in_one_batch_and_across_batches(pipeline, stream):
    for _ in range(2):
        pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "twice@example.com", "same-id"))
    pipeline.drain()
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "twice@example.com", "same-id"))
    pipeline.drain()
    message_id = message_id_for("same-id")
    assert pipeline.ses.count(message_id) == 1
    assert record(message_id).repeats_ignored == 2


def test_a_repeat_in_another_render_batch_is_a_duplicate_at_once(pipeline):
    """Two copies of one message rendered by different invocations (one after the other, or side by side):
    the second finds the record and is counted, rather than rendered and queued again."""
    from postline.render import render_batch

    for _ in range(2):
        pipeline.enqueue("transactional", message("welcome", "twice@example.com", "apart"))
    first, second = pipeline.receive("postline-transactional", visibility=0)[:2]
    assert render_batch([first], pipeline.render_context()).outcomes[first.record_id].result == "rendered"
    repeat = render_batch([second], pipeline.render_context()).outcomes[second.record_id]
    assert repeat.result == "duplicate" and "already rendered" in repeat.reason
    assert record(message_id_for("apart")).repeats_ignored == 1
    assert len(pipeline.receive("postline-send-transactional", visibility=0)) == 1


def test_a_render_interrupted_before_the_send_queue_took_the_message_is_redone(pipeline):
    from postline.render import render_batch

    pipeline.enqueue("transactional", message("welcome", "ada@example.com", "interrupted"))
    records = pipeline.receive("postline-transactional", visibility=0)
    ctx = pipeline.render_context(sqs=Unavailable(pipeline.sqs, {"send_message_batch"}))
    assert render_batch(records, ctx).failed  # recorded as rendered, but the send queue never got it
    assert record(message_id_for("interrupted")).status == "rendered"
    again = render_batch(records, pipeline.render_context())  # SQS delivers the same message again
    assert not again.failed and again.outcomes[records[0].record_id].result == "rendered"
    pipeline.run_send()
    assert pipeline.ses.count(message_id_for("interrupted")) == 1


@pytest.mark.parametrize("stream", ['critical', 'marketing'])
def test_a_redelivered_send_record_is_a_duplicate_at_once(pipeline, stream):
    """SQS delivers a job twice: the first copy recorded `sent` as soon as SES accepted the email, so the second
    is a duplicate at once, without waiting for SES's events. SQS's redelivery is not the application sending the
    message again: the status does not count it among the repeats ignored."""
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "ada@example.com", "redeliver"))
    pipeline.run_render()
    records = pipeline.receive(f"postline-send-{stream}", visibility=0)
    from postline.send import send_batch

    send_batch(records, pipeline.send_context())
    stored = record(message_id_for("redeliver"))
    assert stored.status == "sent" and stored.ses_message_id == pipeline.ses.sends[0]["MessageId"]
    again = send_batch(records, pipeline.send_context())  # SQS delivers it again at once
    assert pipeline.ses.count(message_id_for("redeliver")) == 1
    assert [(o.result, o.reason) for o in again.outcomes.values()] == [("duplicate", "delivered again; already sent")]
    assert not again.failed
    assert not record(message_id_for("redeliver")).repeats_ignored


def test_a_send_job_sqs_hands_out_twice_in_one_batch_is_not_a_repeat(pipeline):
    """Both copies of one job in the same batch: one email, and no repeat counted, as the application sent it once."""
    from postline.send import send_batch

    pipeline.enqueue("marketing", message("newsletter", "ada@example.com", "twice-in-batch"))
    pipeline.run_render()
    (job,) = pipeline.receive("postline-send-marketing", visibility=0)
    copy = QueueRecord(f"{job.record_id}-copy", job.body, job.queue_name, job.sent_at, 1, job.receipt_handle,
                       job.attributes, job.message_attributes)
    outcomes = send_batch([job, copy], pipeline.send_context()).outcomes
    assert outcomes[copy.record_id].result == "duplicate"
    assert pipeline.ses.count(message_id_for("twice-in-batch")) == 1
    assert record(message_id_for("twice-in-batch")).repeats_ignored == 0


def test_a_render_redelivered_after_the_email_went_is_not_counted_as_a_repeat(pipeline):
    """The render of a message outlives its SQS visibility and SQS hands the same message to another render after
    the email went: a duplicate, and not one the application sent (its status says no repeat was ignored)."""
    from postline.render import render_batch

    pipeline.enqueue("transactional", message("welcome", "ada@example.com", "slow-render"))
    records = pipeline.receive("postline-transactional", visibility=0)
    render_batch(records, pipeline.render_context())
    pipeline.run_send()
    again = render_batch(records, pipeline.render_context()).outcomes[records[0].record_id]
    pipeline.run_send()
    assert again.result == "duplicate" and "SQS delivered this message again" in again.reason
    assert pipeline.ses.count(message_id_for("slow-render")) == 1
    assert not record(message_id_for("slow-render")).repeats_ignored


@pytest.mark.parametrize("stream", ['transactional', 'marketing'])
def test_a_repeat_long_after_the_first_copy_is_a_duplicate_even_while_ses_events_stall(pipeline, stream):
    """The application sends the same id again after the first copy's claim went stale, while SES's events are
    not being applied (say the ses_events function is failing): the first email's claim is never settled, and
    the repeat must still not become a second email."""
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "ada@example.com", "again"))
    pipeline.run_render()
    pipeline.run_send()
    message_id = message_id_for("again")
    assert record(message_id).status == "sent" and pipeline.ses.count(message_id) == 1

    pipeline.now[0] += pipeline.settings.stale_claim_seconds + 60
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "ada@example.com", "again"))
    results = pipeline.run_render() + pipeline.run_send()
    assert pipeline.ses.count(message_id) == 1
    # Render knows a transactional repeat by its record; a marketing one is known by the send stage's claim.
    assert [o.result for o in results[-1].outcomes.values()] == ["duplicate"]
    assert not any(r.failed for r in results)  # nothing left waiting to be retried
    assert record(message_id).repeats_ignored == 1


def test_a_newsletter_is_recorded_when_the_send_stage_takes_it(pipeline):
    """Render leaves a marketing message's record to the claim (a write less per email): until the send stage
    takes it, `postline status` has no record of it; then the record has everything render knew."""
    from postline_cli.views import message_view

    pipeline.enqueue("marketing", message("newsletter", "reader@example.com", "rec-1", campaign="june",
                                          tags={"cohort": "b"}))
    pipeline.run_render()
    waiting = message_view(message_id_for("rec-1"))
    assert (waiting["status"], waiting["found"]) == ("unknown", False) and "not received yet" in waiting["reason"]
    assert "older than the history kept" in waiting["reason"]  # after message_ttl_days, the same answer
    pipeline.run_send()
    stored = record(message_id_for("rec-1"))  # claimed, then sent as soon as SES took it
    assert (stored.status, stored.recipient, stored.template, stored.stream, stored.campaign) == (
        "sent", "reader@example.com", "newsletter", "marketing", "june")
    assert stored.tags.as_dict() == {"cohort": "b"} and stored.template_version >= 1 and stored.attempts == 1
    assert stored.queued_at <= stored.rendered_at <= stored.claimed_at <= stored.sent_at
    # DynamoDB's TTL deletes the record message_ttl_days after rendering; postline status shows it until then.
    assert stored.expires_at == int(stored.rendered_at + pipeline.settings.message_ttl_days * 86400)
    assert [e["type"] for e in message_view(message_id_for("rec-1"))["events"]][:3] == [
        "queued", "rendered", "send_attempt"]


def test_suppression_scopes(pipeline):
    Suppression("unsub@example.com", "marketing", reason="unsubscribe", suppressed_at=1.0).save()
    Suppression("bounced@example.com", "all", reason="hard_bounce", suppressed_at=1.0).save()
    pipeline.enqueue("marketing", message("newsletter", "unsub@example.com", "s-news"))
    pipeline.enqueue("critical", message("password-reset", "unsub@example.com", "s-reset"))
    pipeline.enqueue("critical", message("password-reset", "bounced@example.com", "s-reset-bounced"))
    pipeline.drain()
    assert record(message_id_for("s-news")).status == "suppressed"
    assert record(message_id_for("s-news")).reason == "suppressed: unsubscribe (scope marketing)"
    assert record(message_id_for("s-reset")).status == "sent"  # a newsletter unsubscribe never blocks a reset
    assert record(message_id_for("s-reset-bounced")).status == "suppressed"
    assert [s["Destination"]["ToAddresses"] for s in pipeline.ses.sends] == [["unsub@example.com"]]


@pytest.mark.parametrize("stream", ['transactional', 'marketing'])
def test_suppressions_are_read_once_per_batch_by_the_send_stage_not_by_render(pipeline, stream):
    Suppression("gone@example.com", "all", reason="hard_bounce", suppressed_at=1.0).save()
    for n, to in enumerate(["gone@example.com", "here@example.com", "there@example.com"]):
        pipeline.enqueue(stream, message(TEMPLATE_OF[stream], to, f"batch-{n}"))
    reads = []
    pipeline.session.events.register("before-parameter-build.dynamodb.BatchGetItem",
                                     lambda params, **_: reads.append(set(params["RequestItems"])))
    ctx = pipeline.render_context()
    ctx.templates.resolve([(TEMPLATE_OF[stream], None)])  # a warm container has the template cached
    reads.clear()
    pipeline.run_render(ctx)
    assert reads == []
    pipeline.run_send()
    assert reads == [{pipeline.settings.suppressions_table}]  # the whole batch's addresses in one read
    assert record(message_id_for("batch-0")).status == "suppressed"
    assert record(message_id_for("batch-0")).reason == "suppressed: hard_bounce (scope all)"
    assert sorted(s["Destination"]["ToAddresses"][0] for s in pipeline.ses.sends) == [
        "here@example.com", "there@example.com"]


@pytest.mark.parametrize("stream", ['transactional', 'marketing'])
def test_a_suppression_added_after_rendering_is_honoured_at_send_time(pipeline, stream):
    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "late@example.com", "late"))
    pipeline.run_render()
    Suppression("late@example.com", "all", reason="complaint", suppressed_at=1.0).save()
    pipeline.run_send()
    assert pipeline.ses.sends == []
    assert record(message_id_for("late")).status == "suppressed"


@pytest.mark.parametrize("settled_by, status", [("Send", "sent"), ("Delivery", "delivered")])
@pytest.mark.parametrize("stream", ['critical', 'marketing'])
def test_crash_after_ses_accepted_is_settled_by_ses_events_not_resent(pipeline, stream, settled_by, status):
    """SES's Send event settles the claim, or the email's Delivery when it comes first (Send events are held
    back a minute): either way, no copy of the job sends it again, even once the claim would be stale."""
    from postline.send import send_batch

    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "crash@example.com", "crash"))
    pipeline.run_render()
    records = pipeline.receive(f"postline-send-{stream}", visibility=0)

    class Crash(BaseException):
        pass

    ctx = pipeline.send_context()
    ses = ctx.sesv2

    class DiesAfterSes:
        def send_email(self, **kw):
            ses.send_email(**kw)
            raise Crash()  # the process dies: SES has the email, postline has not written "sent"

    ctx.sesv2 = DiesAfterSes()
    with pytest.raises(Crash):
        send_batch(records, ctx)
    message_id = message_id_for("crash")
    assert record(message_id).status == "sending"

    pipeline.now[0] += 60  # SQS redelivers after the visibility timeout
    retry = send_batch(records, pipeline.send_context())
    assert retry.failed and pipeline.ses.count(message_id) == 1  # held back while the claim is fresh

    pipeline.publish_ses_events(only=(settled_by,))  # SES's event, tagged with the message id
    assert record(message_id).status == status
    final = send_batch(records, pipeline.send_context())
    assert not final.failed and pipeline.ses.count(message_id) == 1
    pipeline.now[0] += pipeline.settings.stale_claim_seconds + 1
    pipeline.publish_ses_events(only=("Send",))  # the held-back Send event, after the Delivery: changes nothing
    assert record(message_id).status == status
    assert not send_batch(records, pipeline.send_context()).failed and pipeline.ses.count(message_id) == 1


@pytest.mark.parametrize("stream", ['critical', 'marketing'])
def test_a_claim_nothing_settles_is_parked_never_sent_again_on_a_timer(pipeline, stream):
    """The attempt died with the claim open and no SES event came: nobody knows whether SES took the email. Once
    the claim is stale the next copy of the job parks it (status unknown, the job in the send DLQ with the reason)
    instead of sending; an operator decides (`postline resolve`)."""
    from postline.send import send_batch

    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "lost@example.com", "lost"))
    pipeline.run_render()
    records = pipeline.receive(f"postline-send-{stream}", visibility=0)
    pipeline.crash_before_ses(records)
    message_id = message_id_for("lost")
    young = send_batch(records, pipeline.send_context())
    assert young.failed and pipeline.ses.count(message_id) == 0  # waits for SES's events to have had time
    pipeline.now[0] += pipeline.settings.stale_claim_seconds + 1
    parked = send_batch(records, pipeline.send_context())
    assert not parked.failed and pipeline.ses.count(message_id) == 0
    assert [o.result for o in parked.outcomes.values()] == ["unknown"]
    stored = record(message_id)
    assert stored.status == "unknown" and "postline resolve" in stored.reason
    dlq = pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url(f"postline-send-{stream}-dlq"),
                                       MessageAttributeNames=["All"])["Messages"]
    assert [m["MessageAttributes"]["postline_message_id"]["StringValue"] for m in dlq] == [message_id]
    assert "outcome unknown" in dlq[0]["MessageAttributes"]["postline_reason"]["StringValue"]


@pytest.mark.parametrize("stream", ['transactional', 'marketing'])
def test_an_ses_server_error_is_an_unknown_outcome_not_a_refusal(pipeline, stream):
    """A 5xx answer does not say SES did not take the email: the claim is kept, no copy sends it again."""
    from postline.send import send_batch

    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "maybe@example.com", "five-hundred"))
    pipeline.run_render()
    records = pipeline.receive(f"postline-send-{stream}", visibility=0)
    error = ClientError({"Error": {"Code": "InternalFailure", "Message": "simulated"},
                         "ResponseMetadata": {"HTTPStatusCode": 500}}, "SendEmail")
    pipeline.ses.fail_with = [error]
    first = send_batch(records, pipeline.send_context())
    assert first.failed and record(message_id_for("five-hundred")).status == "sending"
    again = send_batch(records, pipeline.send_context())
    assert again.failed and pipeline.ses.sends == []


class RequeueSpy:
    """The send queue client, keeping what the send stage puts back on its queue instead of SQS (whose delays
    run on real time): ``deliver`` hands it back as SQS would once its delay is over."""

    def __init__(self, pipeline):
        self.pipeline, self.sent = pipeline, []

    def __getattr__(self, name):
        return getattr(self.pipeline.sqs, name)

    def send_message(self, **kw):
        self.sent.append(kw)
        return {"MessageId": f"requeued-{len(self.sent)}"}

    def deliver(self, queue_name: str) -> QueueRecord:
        kw = self.sent.pop(0)
        attributes = kw["MessageAttributes"]
        return QueueRecord(f"requeued-{kw['DelaySeconds']}-{len(self.sent)}", kw["MessageBody"], queue_name,
                           self.pipeline.clock(), 1, "", {k: v["StringValue"] for k, v in attributes.items()},
                           attributes)


@pytest.mark.parametrize("code, text, delay, slowed", [
    ("ThrottlingException", "Maximum sending rate exceeded.", 2, True),  # the limiter slows down: back soon
    ("SendingPausedException", "Sending paused for this account.", 30, False),
])
def test_a_refusal_for_now_releases_the_claim_and_waits_on_the_queue_without_spending_receives(
        pipeline, code, text, delay, slowed):
    from postline.send import send_batch

    pipeline.enqueue("transactional", message("welcome", "slow@example.com", "throttled"))
    pipeline.run_render()
    records = pipeline.receive("postline-send-transactional", visibility=0)
    spy = RequeueSpy(pipeline)
    pipeline.ses.fail_with = [ses_error(code, text)]
    ctx = pipeline.send_context(sqs=spy)
    first = send_batch(records, ctx)
    message_id = message_id_for("throttled")
    assert not first.failed and pipeline.ses.count(message_id) == 0  # the received copy is done with
    assert [o.result for o in first.outcomes.values()] == ["waiting"]
    assert record(message_id).status == "rendered" and code in record(message_id).reason
    # The job is back on its queue as a new message, held back, so waiting costs no receive.
    (again,) = spy.sent
    assert again["QueueUrl"] == pipeline.queue_url("postline-send-transactional")
    assert again["MessageBody"] == records[0].body and again["DelaySeconds"] == delay
    assert float(again["MessageAttributes"]["postline_waiting_since"]["StringValue"]) == pipeline.clock()
    assert (ctx.limiter.factor() < 1) is slowed


def test_time_spent_waiting_for_a_sending_slot_does_not_lengthen_the_wait_after_a_throttle(pipeline):
    """Pacing is not a refusal: an email that waited for its slot and is then throttled by SES is back in seconds,
    not after as long again as it waited for the slot."""
    from postline.limiter import RATE, Grant
    from postline.send import send_batch

    class NoSlotAtFirst:
        def __init__(self, real):
            self.real, self.refused = real, False

        def __getattr__(self, name):
            return getattr(self.real, name)

        def acquire(self, stream, count, **kw):
            if not self.refused:
                self.refused = True
                return Grant(waiting_for=RATE, retry_after=5)
            return self.real.acquire(stream, count, **kw)

    pipeline.enqueue("transactional", message("welcome", "paced@example.com", "paced"))
    pipeline.run_render()
    spy = RequeueSpy(pipeline)
    ctx = pipeline.send_context(sqs=spy)
    ctx.limiter = NoSlotAtFirst(ctx.limiter)
    send_batch(pipeline.receive("postline-send-transactional", visibility=0), ctx)
    (paced,) = spy.sent
    assert paced["DelaySeconds"] == 5 and "postline_waiting_since" not in paced["MessageAttributes"]
    pipeline.now[0] += 120  # it waited on the queue, then SES throttles it
    pipeline.ses.fail_with = [ses_error("ThrottlingException", "Maximum sending rate exceeded.")]
    send_batch([spy.deliver("postline-send-transactional")], ctx)
    (throttled,) = spy.sent
    assert throttled["DelaySeconds"] == 2  # RATE_THROTTLE_WAIT_SECONDS, not the 120 s it had spent paced
    pipeline.ses.fail_with = []
    send_batch([spy.deliver("postline-send-transactional")], ctx)
    assert pipeline.ses.count(message_id_for("paced")) == 1


def test_an_email_throttled_again_after_waiting_behind_a_backlog_is_back_in_seconds(pipeline):
    """Throttled once, the email goes back on its queue behind a newsletter and comes round minutes later; SES
    throttles it again (another sender took the second): it is back in seconds, not after as long again as it
    spent in that queue, and it still counts towards how long an email may wait for SES."""
    from postline.send import send_batch

    pipeline.enqueue("marketing", message("newsletter", "patient@example.com", "behind"))
    pipeline.run_render()
    spy = RequeueSpy(pipeline)
    throttle = ses_error("ThrottlingException", "Maximum sending rate exceeded.")
    pipeline.ses.fail_with = [throttle]
    send_batch(pipeline.receive("postline-send-marketing", visibility=0), pipeline.send_context(sqs=spy))
    (first,) = spy.sent
    assert first["DelaySeconds"] == 2
    refused_at = first["MessageAttributes"]["postline_waiting_since"]["StringValue"]
    pipeline.now[0] += 150  # behind the backlog
    pipeline.ses.fail_with = [throttle]
    send_batch([spy.deliver("postline-send-marketing")], pipeline.send_context(sqs=spy))
    (again,) = spy.sent
    assert again["DelaySeconds"] == 2
    assert again["MessageAttributes"]["postline_waiting_since"]["StringValue"] == refused_at
    pipeline.ses.fail_with = []
    send_batch([spy.deliver("postline-send-marketing")], pipeline.send_context())
    assert pipeline.ses.count(message_id_for("behind")) == 1 and record(message_id_for("behind")).status == "sent"


@pytest.mark.parametrize("stream", ['transactional', 'marketing'])
def test_a_throttled_message_is_sent_once_when_ses_recovers(pipeline, stream):
    from postline.send import send_batch

    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "slow@example.com", "recovers"))
    pipeline.run_render()
    records = pipeline.receive(f"postline-send-{stream}", visibility=0)
    spy = RequeueSpy(pipeline)
    pipeline.ses.fail_with = [ses_error("TooManyRequestsException")]
    assert not send_batch(records, pipeline.send_context(sqs=spy)).failed
    pipeline.now[0] += 30
    assert not send_batch([spy.deliver(f"postline-send-{stream}")], pipeline.send_context()).failed
    assert not send_batch(records, pipeline.send_context()).failed  # a stray copy of the first: a duplicate
    assert pipeline.ses.count(message_id_for("recovers")) == 1
    assert record(message_id_for("recovers")).status == "sent"


def test_a_long_ses_outage_waits_as_long_as_it_lasts_then_sends_once(pipeline):
    """Sending paused for the account for hours: the job keeps coming back, each wait as long as the time
    waited so far (up to SQS's 15 minutes), receives untouched, and goes once SES takes it again."""
    from postline.send import send_batch

    pipeline.enqueue("critical", message("password-reset", "ada@example.com", "outage"))
    pipeline.run_render()
    (job,) = pipeline.receive("postline-send-critical", visibility=0)
    message_id, delays, spy = message_id_for("outage"), [], RequeueSpy(pipeline)
    for _ in range(12):
        pipeline.ses.fail_with = [ses_error("SendingPausedException")]
        outcome = send_batch([job], pipeline.send_context(sqs=spy))
        assert not outcome.failed and pipeline.ses.count(message_id) == 0
        delays.append(spy.sent[0]["DelaySeconds"])
        pipeline.now[0] += delays[-1]
        job = spy.deliver("postline-send-critical")
    assert delays[:4] == [30, 30, 60, 120] and delays[-1] == 900 and sum(delays) > 3600
    assert not send_batch([job], pipeline.send_context()).failed
    assert pipeline.ses.count(message_id) == 1 and record(message_id).status == "sent"


def test_days_held_by_a_paused_campaign_are_not_counted_as_waiting_for_ses(pipeline):
    """SES refuses a newsletter once (sending paused: back in 30 s), then its campaign is paused for four days, more
    than an email may wait for SES (72 h). After the resume SES refuses it once more: a first refusal again (30 s),
    not SQS's longest delay, and never `failed` as waited too long; then it goes, once."""
    from postline.campaigns import store
    from postline.send import send_batch

    dynamodb, table = pipeline.session.client("dynamodb"), pipeline.settings.campaigns_table
    store.create(dynamodb, table, store.external("autumn", pipeline.clock(), store.RUNNING))
    pipeline.enqueue("marketing", message("newsletter", "ada@example.com", "held", campaign="autumn"))
    pipeline.run_render()
    (job,) = pipeline.receive("postline-send-marketing", visibility=0)
    spy, message_id = RequeueSpy(pipeline), message_id_for("held")
    pipeline.ses.fail_with = [ses_error("SendingPausedException")]
    send_batch([job], pipeline.send_context(sqs=spy))
    assert spy.sent[-1]["DelaySeconds"] == 30

    store.move(dynamodb, table, "autumn", store.PAUSED, now=pipeline.clock())
    pipeline.now[0] += 30
    send_batch([spy.deliver("postline-send-marketing")], pipeline.send_context(sqs=spy))  # held for its campaign
    pipeline.now[0] += 4 * 86400
    store.move(dynamodb, table, "autumn", store.RUNNING, now=pipeline.clock())
    pipeline.ses.fail_with = [ses_error("SendingPausedException")]
    send_batch([spy.deliver("postline-send-marketing")], pipeline.send_context(sqs=spy))
    assert spy.sent[-1]["DelaySeconds"] == 30 and record(message_id).status == "rendered"

    pipeline.now[0] += 30
    assert not send_batch([spy.deliver("postline-send-marketing")], pipeline.send_context()).failed
    assert pipeline.ses.count(message_id) == 1 and record(message_id).status == "sent"


def test_an_email_ses_refuses_longer_than_a_message_waits_ends_as_failed(pipeline):
    from postline.send import send_batch

    pipeline.settings = pipeline.settings.model_copy(update={"max_send_wait_seconds": 3600})
    pipeline.enqueue("transactional", message("welcome", "ada@example.com", "gives-up"))
    pipeline.run_render()
    (job,) = pipeline.receive("postline-send-transactional", visibility=0)
    since = str(pipeline.clock() - 3600)
    job = QueueRecord(job.record_id, job.body, job.queue_name, job.sent_at, 1, job.receipt_handle,
                      {"postline_waiting_since": since},
                      {"postline_waiting_since": {"DataType": "Number", "StringValue": since}})
    pipeline.ses.fail_with = [ses_error("SendingPausedException")]
    result = send_batch([job], pipeline.send_context())
    stored = record(message_id_for("gives-up"))
    assert not result.failed and stored.status == "failed" and "gave up after waiting 1 h" in stored.reason
    assert [e["detail-type"] for e in pipeline.app_events()] == ["email.failed"]


def test_a_permanent_ses_rejection_is_recorded_not_retried_and_announced(pipeline):
    pipeline.enqueue("transactional", message("welcome", "nope@example.com", "rejected-by-ses", campaign="c1"))
    pipeline.run_render()
    pipeline.ses.fail_with = [ses_error("MessageRejected")]
    results = pipeline.run_send()
    assert not results[0].failed
    stored = record(message_id_for("rejected-by-ses"))
    assert stored.status == "failed" and "MessageRejected" in stored.reason
    # The application learns it from its event feed: once, with the reason and what it sent.
    (failed,) = [e for e in pipeline.app_events() if e["detail-type"] == "email.failed"]
    assert failed["detail"]["message_id"] == message_id_for("rejected-by-ses")
    assert failed["detail"]["to"] == "nope@example.com" and failed["detail"]["campaign"] == "c1"
    assert "MessageRejected" in failed["detail"]["detail"]["reason"]


def test_an_ambiguous_ses_timeout_keeps_the_claim(pipeline):
    """A read timeout may mean SES sent it: postline must not send again until the Send event or the stale rule."""
    pipeline.enqueue("transactional", message("welcome", "maybe@example.com", "maybe"))
    pipeline.run_render()
    pipeline.ses.fail_with = [ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com")]
    assert pipeline.run_send(visibility=0)[0].failed
    assert record(message_id_for("maybe")).status == "sending"


class Unavailable:
    """A DynamoDB client whose writes fail, as when the table is throttled or unreachable."""

    def __init__(self, real, operations):
        self._real, self._operations = real, operations

    def __getattr__(self, name):
        if name in self._operations:
            def fail(**kwargs):
                raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "simulated"}}, name)
            return fail
        return getattr(self._real, name)


def test_render_with_the_table_unavailable_loses_nothing(pipeline):
    pipeline.enqueue("critical", message("password-reset", "ada@example.com", "t-down"))
    ctx = pipeline.render_context(dynamodb=Unavailable(pipeline.session.client("dynamodb"), {"transact_write_items"}))
    records = pipeline.receive("postline-critical", visibility=0)
    from postline.render import render_batch

    result = render_batch(records, ctx)  # each record fails, and stays on the queue for a retry
    assert result.failed == {r.record_id for r in records} and "ServiceUnavailable" in next(
        iter(result.outcomes.values())).reason
    assert pipeline.receive("postline-send-critical") == []
    pipeline.drain()  # the table is back
    assert pipeline.ses.count(message_id_for("t-down")) == 1


@pytest.mark.parametrize("stream", ['critical', 'marketing'])
def test_send_with_the_table_unavailable_does_not_call_ses(pipeline, stream):
    from postline.send import send_batch

    pipeline.enqueue(stream, message(TEMPLATE_OF[stream], "ada@example.com", "t-down-send"))
    pipeline.run_render()
    records = pipeline.receive(f"postline-send-{stream}", visibility=0)
    writes = {"transact_write_items", "batch_execute_statement"}
    ctx = pipeline.send_context(dynamodb=Unavailable(pipeline.session.client("dynamodb"), writes))
    assert send_batch(records, ctx).failed == {r.record_id for r in records}
    assert pipeline.ses.sends == []
    send_batch(records, pipeline.send_context())
    assert pipeline.ses.count(message_id_for("t-down-send")) == 1


class Counting:
    """A DynamoDB client that notes each call's operation."""

    def __init__(self, real):
        self._real, self.calls = real, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self._real, name)


def test_a_marketing_batch_is_claimed_with_one_insert_call_and_counted_in_one_write(pipeline):
    from postline.send import send_batch

    for i in range(3):
        pipeline.enqueue("marketing", message("newsletter", f"reader{i}@example.com", f"n-insert-{i}", campaign="june"))
    pipeline.run_render()
    records = pipeline.receive("postline-send-marketing", visibility=0)
    dynamodb = Counting(pipeline.session.client("dynamodb"))
    claimed_at = pipeline.clock()  # (the clock moves on while each email waits for its sending slot)
    result = send_batch(records, pipeline.send_context(dynamodb=dynamodb))
    # Its campaign's state (read once per 30 s per container: "june" is no campaign postline runs) and the
    # suppressions; the claims in one call; the batch's sending slots in one write (after reading the limiter's
    # shared slow-down); then per email the mark that it goes to SES now and its own `sent`, written as soon as SES
    # took it; then the batch's count (postline.analytics: the three emails share one campaign, template and hour,
    # so one counter item).
    assert not result.failed and dynamodb.calls == ["batch_get_item", "batch_get_item", "batch_execute_statement",
                                                    "get_item", "update_item"] + ["update_item"] * 6 + ["update_item"]
    for i in range(3):
        stored = record(message_id_for(f"n-insert-{i}"))  # the record a first claim has always created
        assert (stored.status, stored.attempts, stored.recipient, stored.template, stored.campaign) == (
            "sent", 1, f"reader{i}@example.com", "newsletter", "june")
        assert stored.rendered_by and stored.claimed_at == claimed_at and stored.expires_at
        assert pipeline.ses.count(message_id_for(f"n-insert-{i}")) == 1


def test_first_claims_that_dynamodb_does_not_take_go_to_the_transaction(pipeline):
    from postline.send import send_batch

    pipeline.enqueue("marketing", message("newsletter", "ada@example.com", "n-fallback"))
    pipeline.run_render()
    records = pipeline.receive("postline-send-marketing", visibility=0)
    unavailable = Unavailable(pipeline.session.client("dynamodb"), {"batch_execute_statement"})
    assert not send_batch(records, pipeline.send_context(dynamodb=unavailable)).failed
    assert pipeline.ses.count(message_id_for("n-fallback")) == 1
    assert record(message_id_for("n-fallback")).attempts == 1


def test_an_insert_retried_after_it_wrote_is_sent_once(pipeline):
    """PartiQL has no idempotency token: a call that times out after DynamoDB wrote, retried, finds its own claim.
    The claim still awaits its handoff to SES (the attempt never called SES), so a later look takes it back and
    sends the email, once."""
    from postline.send import send_batch

    pipeline.enqueue("marketing", message("newsletter", "ada@example.com", "n-timeout"))
    pipeline.run_render()
    records = pipeline.receive("postline-send-marketing", visibility=0)
    real = pipeline.session.client("dynamodb")

    class WritesThenTimesOut:
        def __getattr__(self, name):
            if name == "batch_execute_statement":
                def timed_out(**kwargs):
                    real.batch_execute_statement(**kwargs)
                    raise ClientError({"Error": {"Code": "RequestTimeout", "Message": "simulated"}}, name)
                return timed_out
            return getattr(real, name)

    waiting = send_batch(records, pipeline.send_context(dynamodb=WritesThenTimesOut()))
    assert waiting.failed and pipeline.ses.count(message_id_for("n-timeout")) == 0
    pipeline.now[0] += pipeline.settings.stale_claim_seconds + 1
    taken_back = send_batch(records, pipeline.send_context())  # given back; the job goes back as a new message
    assert taken_back.outcomes[records[0].record_id].result == "waiting"
    assert pipeline.ses.count(message_id_for("n-timeout")) == 0
    assert record(message_id_for("n-timeout")).status == "rendered"
    assert not send_batch(records, pipeline.send_context()).failed
    assert not send_batch(records, pipeline.send_context()).failed  # SQS delivers it again: a duplicate
    assert pipeline.ses.count(message_id_for("n-timeout")) == 1
    assert record(message_id_for("n-timeout")).status == "sent"


def test_a_large_rendered_body_travels_through_s3(pipeline):
    settings = pipeline.settings.model_copy(update={"claim_check_threshold_bytes": 1_000})
    pipeline.settings = settings
    pipeline.enqueue("marketing", message("newsletter", "big@example.com", "big"))
    pipeline.drain()
    objects = pipeline.session.client("s3").list_objects_v2(Bucket=resources.CLAIM_CHECK_BUCKET)["Contents"]
    (key,) = [o["Key"] for o in objects]
    assert key.startswith(f"mime/{message_id_for('big')}/") and key.endswith(".eml")
    assert pipeline.ses.count(message_id_for("big")) == 1


def test_a_pinned_template_version_is_used(pipeline):
    from postline.models import ACTIVE_POINTER_VERSION, Template
    from postline_cli.publish import load_template_dir, prepare, publish

    source = load_template_dir(ROOT / "templates" / "welcome")
    source.subject = "Version two, {{ name }}"
    assert publish(prepare(source, "tests")).version == 2
    assert Template.get("welcome", ACTIVE_POINTER_VERSION).active_version == 2
    pipeline.enqueue("transactional", message("welcome", "pin@example.com", "pinned", pin=1))
    pipeline.enqueue("transactional", message("welcome", "pin@example.com", "active"))
    pipeline.drain()
    subjects = {s["tags"]["postline_message_id"]: parsed_mime(s)["Subject"] for s in pipeline.ses.sends}
    assert subjects[message_id_for("active")].startswith("Version two")
    assert not subjects[message_id_for("pinned")].startswith("Version two")
    assert record(message_id_for("pinned")).template_version == 1


def test_publishing_an_unchanged_template_keeps_its_version(pipeline):
    from postline_cli.publish import load_template_dir, prepare, publish

    again = publish(prepare(load_template_dir(ROOT / "templates" / "invoice"), "tests"))
    assert (again.version, again.changed) == (1, False)
