"""Mail sent before SES has verified the sending domain (DKIM can take 72 hours after a deploy), or to a recipient
SES has not verified while the account is in the sandbox: held on its send queue and tried again, less and less
often, until the identity verifies; never lost, never counted as sent, and said plainly in `postline status`.

The local SES refuses an unverified sender as SES does (``aws_endpoint.refuse_unverified_as_ses_does``): deleting
the sending domain's identity is a first deploy whose DKIM records have not verified yet."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from moto.ses.models import SESBackend

from postline.batch import QueueRecord
from postline.contract import message_id_for
from postline.models import Message
from postline.send import send_batch
from postline_cli.local import aws_endpoint
from postline_cli.local.resources import SENDING_DOMAIN
from postline_cli.views import message_view

from .test_analytics import stats
from .test_pipeline import RequeueSpy, message

SEND_QUEUE = {"critical": "postline-send-critical", "transactional": "postline-send-transactional"}
TEMPLATE = {"critical": "password-reset", "transactional": "welcome"}
WAITING_FOR_DOMAIN = f"waiting: SES has not verified the sending identity {SENDING_DOMAIN} yet"


@pytest.fixture
def unverified(pipeline, monkeypatch):
    """The pipeline right after a first deploy: the sending domain's identity is not verified yet."""
    monkeypatch.setattr(SESBackend, "send_raw_email", SESBackend.send_raw_email)  # undone after the test
    aws_endpoint.refuse_unverified_as_ses_does()
    pipeline.session.client("sesv2").delete_email_identity(EmailIdentity=SENDING_DOMAIN)
    return pipeline


def verify_domain(pipeline) -> None:
    pipeline.session.client("sesv2").create_email_identity(EmailIdentity=SENDING_DOMAIN)


def queued(pipeline, stream: str, key: str) -> QueueRecord:
    pipeline.enqueue(stream, message(TEMPLATE[stream], "ada@example.com", key))
    pipeline.run_render()
    (job,) = pipeline.receive(SEND_QUEUE[stream], visibility=0)
    return job


def held_metrics(output: str) -> list[dict]:
    """The HeldUnverified metrics the send stage wrote (CloudWatch's embedded metric format, one JSON a line)."""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if "HeldUnverified" in line]


@pytest.mark.parametrize("stream", ["critical", "transactional"])
def test_the_first_emails_after_a_deploy_wait_for_the_domain_then_go_once(unverified, stream, capsys):
    pipeline, spy = unverified, RequeueSpy(unverified)
    message_id = message_id_for(f"first-{stream}")
    job = queued(pipeline, stream, f"first-{stream}")
    delays = []
    for _ in range(8):
        result = send_batch([job], pipeline.send_context(sqs=spy))
        assert not result.failed and [o.result for o in result.outcomes.values()] == ["waiting"]
        view = message_view(message_id)  # what `postline status` prints
        assert (view["status"], view["reason"]) == ("rendered", WAITING_FOR_DOMAIN)
        (again,) = spy.sent
        delays.append(again["DelaySeconds"])
        pipeline.now[0] += delays[-1]
        job = spy.deliver(SEND_QUEUE[stream])
    # Waiting costs no receive: each wait as long as the time waited so far, never more than SQS's 15 minutes.
    assert delays == [30, 30, 60, 120, 240, 480, 900, 900] and job.receive_count == 1
    assert pipeline.ses.sends == [] and stats(pipeline, "stream", stream)["totals"]["sent"] == 0
    metrics = held_metrics(capsys.readouterr().out)
    assert len(metrics) == 8 and all(m["HeldUnverified"] == [1.0] for m in metrics)
    assert {(m["service"], m["stream"]) for m in metrics} == {("postline", stream)}
    assert metrics[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "postline"

    verify_domain(pipeline)
    assert not send_batch([job], pipeline.send_context(sqs=spy)).failed
    assert spy.sent == [] and pipeline.ses.count(message_id) == 1
    assert message_view(message_id)["status"] == "sent"
    assert stats(pipeline, "stream", stream)["totals"]["sent"] == 1
    assert held_metrics(capsys.readouterr().out) == []


def test_held_emails_and_their_neighbours_each_go_their_own_way(unverified):
    """A batch of several: all wait for the domain, none fails, and once it verifies each goes exactly once."""
    pipeline, spy = unverified, RequeueSpy(unverified)
    keys = [f"batch-{n}" for n in range(4)]
    for key in keys:
        pipeline.enqueue("transactional", message("welcome", f"{key}@example.com", key))
    pipeline.run_render()
    jobs = pipeline.receive(SEND_QUEUE["transactional"], visibility=0)
    assert not send_batch(jobs, pipeline.send_context(sqs=spy)).failed
    assert len(spy.sent) == 4 and all(Message.get(message_id_for(k)).reason == WAITING_FOR_DOMAIN for k in keys)
    verify_domain(pipeline)
    pipeline.now[0] += 30
    again = [spy.deliver(SEND_QUEUE["transactional"]) for _ in keys]
    assert not send_batch(again, pipeline.send_context(sqs=spy)).failed
    assert not send_batch(jobs, pipeline.send_context(sqs=spy)).failed  # stray copies of the first: duplicates
    assert [pipeline.ses.count(message_id_for(k)) for k in keys] == [1, 1, 1, 1]


def test_a_recipient_the_sandbox_has_not_verified_waits_with_the_reason(pipeline):
    # The local SES has no sandbox: SES's refusal, word for word as it names an unverified recipient.
    pipeline.ses.fail_with = [ClientError({"Error": {"Code": "MessageRejected", "Message": (
        "Email address is not verified. The following identities failed the check in region US-EAST-1: "
        "ada@example.com")}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "SendEmail")]
    spy = RequeueSpy(pipeline)
    job = queued(pipeline, "transactional", "sandboxed")
    assert not send_batch([job], pipeline.send_context(sqs=spy)).failed
    reason = message_view(message_id_for("sandboxed"))["reason"]
    assert reason.startswith("waiting: the recipient is not verified and the account is in the SES sandbox")
    assert "ada@example.com" not in reason
    assert not send_batch([spy.deliver(SEND_QUEUE["transactional"])], pipeline.send_context()).failed
    assert message_view(message_id_for("sandboxed"))["status"] == "sent"


def test_an_identity_that_never_verifies_ends_as_failed_after_the_longest_wait(unverified):
    pipeline = unverified
    pipeline.settings = pipeline.settings.model_copy(update={"max_send_wait_seconds": 3600})
    job = queued(pipeline, "transactional", "never-verified")
    since = str(pipeline.clock() - 3600)
    job = QueueRecord(job.record_id, job.body, job.queue_name, job.sent_at, 1, job.receipt_handle,
                      {"postline_waiting_since": since},
                      {"postline_waiting_since": {"DataType": "Number", "StringValue": since}})
    assert not send_batch([job], pipeline.send_context()).failed
    view = message_view(message_id_for("never-verified"))
    assert view["status"] == "failed"
    assert view["reason"] == (f"SES has not verified the sending identity {SENDING_DOMAIN} yet "
                              "(gave up after waiting 1 h for SES)")
    assert [e["detail-type"] for e in pipeline.app_events()] == ["email.failed"]
    totals = stats(pipeline, "stream", "transactional")["totals"]
    assert (totals["sent"], totals["failed"]) == (0, 1)
