"""Integration tests: the library's stages against moto's in-process AWS, with the same resources as the local
stack. Each test gets fresh resources, the sample templates published, and helpers that move messages
through the pipeline the way the Lambda event source mappings do."""
from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from postline.batch import QueueRecord
from postline.events import EventsContext, apply_events
from postline.models import ALL_MODELS
from postline.render import RenderContext, render_batch
from postline.send import SendContext, send_batch
from postline.settings import settings_from_environ
from postline_cli.local import aws_endpoint, resources
from postline_cli.local.runner import lambda_sqs_record
from postline_cli.local.ses_simulator import events_for
from postline_cli.publish import load_template_dir, prepare, publish

ROOT = Path(__file__).resolve().parents[2]
MOTO_SQS = "https://sqs.us-east-1.amazonaws.com"
TRACKING = "https://t.example.com"


class CountingSes:
    """The SES client, counting sends per postline message id (the promise: at most one each)."""

    def __init__(self, sesv2, max_send_rate: float = 100_000, max_24_hour_send: float = 10_000_000):
        self._sesv2 = sesv2
        self.sends: list[dict[str, Any]] = []
        self.fail_with: list[Exception] = []  # raised (in order) instead of sending
        # moto has no GetAccount (the local endpoint adds it): the account's limits, high enough not to bind unless a
        # test lowers them
        self.quota = {"MaxSendRate": max_send_rate, "Max24HourSend": max_24_hour_send, "SentLast24Hours": 0.0}

    def get_account(self):
        return {"SendQuota": dict(self.quota, SentLast24Hours=self.quota["SentLast24Hours"] + len(self.sends))}

    def send_email(self, **kwargs):
        if self.fail_with:
            raise self.fail_with.pop(0)
        answer = self._sesv2.send_email(**kwargs)
        tags = {t["Name"]: t["Value"] for t in kwargs["EmailTags"]}
        self.sends.append({**kwargs, "tags": tags, "MessageId": answer["MessageId"]})
        return answer

    def count(self, message_id: str) -> int:
        return sum(1 for s in self.sends if s["tags"]["postline_message_id"] == message_id)

    def __getattr__(self, name):
        return getattr(self._sesv2, name)


class Clock:
    """A clock the test moves."""

    def __init__(self, at: float):
        self.at = at

    def __call__(self) -> float:
        return self.at


class SesAccount:
    """SES's GetAccount with the test's numbers (moto has none; the local endpoint's is tested in
    test_local_ses_limits)."""

    def __init__(self, rate: float = 50, quota: float = 1_000_000, sent: float = 0):
        self.answer = {"MaxSendRate": rate, "Max24HourSend": quota, "SentLast24Hours": sent}

    def get_account(self):
        return {"SendQuota": dict(self.answer)}


@dataclass
class Pipeline:
    session: Any
    settings: Any
    ses: CountingSes
    now: list[float] = field(default_factory=lambda: [1_800_000_000.0])
    send_events_applied: int = 0  # how many of ``ses.sends`` have had their Send event applied

    def clock(self) -> float:
        return self.now[0]

    def sleep(self, seconds: float) -> None:
        """Waiting (for a send's slot) moves the test's clock on, as real time would."""
        self.now[0] += max(0.0, seconds)

    @property
    def sqs(self):
        return self.session.client("sqs")

    def queue_url(self, name: str) -> str:
        return resources.queue_url(MOTO_SQS, name)

    def render_context(self, **overrides) -> RenderContext:
        kw = dict(dynamodb=self.session.client("dynamodb"), sqs=self.sqs, s3=self.session.client("s3"),
                  secrets=self.session.client("secretsmanager"), clock=self.clock)
        kw.update(overrides)
        return RenderContext(self.settings, **kw)

    def send_context(self, **overrides) -> SendContext:
        kw = dict(dynamodb=self.session.client("dynamodb"), sqs=self.sqs, s3=self.session.client("s3"),
                  sesv2=self.ses, events=self.session.client("events"), clock=self.clock, sleep=self.sleep)
        kw.update(overrides)
        return SendContext(self.settings, **kw)

    def enqueue(self, stream: str, body: dict | str) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.sqs.send_message(QueueUrl=self.queue_url(resources.INBOUND_QUEUES[stream]), MessageBody=text)

    def receive(self, queue_name: str, visibility: int | None = None) -> list[QueueRecord]:
        kw = {"VisibilityTimeout": visibility} if visibility is not None else {}
        messages = self.sqs.receive_message(QueueUrl=self.queue_url(queue_name), MaxNumberOfMessages=10,
                                            AttributeNames=["All"], MessageAttributeNames=["All"], **kw)
        return [QueueRecord.from_event_record(lambda_sqs_record(m, queue_name)) for m in messages.get("Messages", [])]

    def settle(self, queue_name: str, records: list[QueueRecord], result) -> None:
        """What the event source mapping does after the function returns: delete what did not fail."""
        for record in records:
            if record.record_id not in result.failed:
                self.sqs.delete_message(QueueUrl=self.queue_url(queue_name), ReceiptHandle=record.receipt_handle)

    def run_render(self, ctx: RenderContext | None = None):
        ctx = ctx or self.render_context()
        results = []
        for name in resources.INBOUND_QUEUES.values():
            while records := self.receive(name, visibility=0):
                result = render_batch(records, ctx)
                self.settle(name, records, result)
                results.append(result)
                if result.failed:
                    break
        return results

    def run_send(self, ctx: SendContext | None = None, visibility: int | None = 0):
        ctx = ctx or self.send_context()
        results = []
        for name in resources.SEND_QUEUES.values():
            records = self.receive(name, visibility=visibility)
            if records:
                result = send_batch(records, ctx)
                self.settle(name, records, result)
                results.append(result)
        return results

    def publish_ses_events(self, sends: list[dict[str, Any]] | None = None, only: tuple[str, ...] = ()):
        """Apply the SES events SES would publish for ``sends`` (default: every send so far)."""
        records = []
        for index, send in enumerate(self.ses.sends if sends is None else sends):
            entry = {"ses_message_id": send["MessageId"], "timestamp": self.clock(), "source": send["FromEmailAddress"],
                     "destination": send["Destination"]["ToAddresses"], "tags": send["tags"],
                     "configuration_set": send["ConfigurationSetName"]}
            for n, event in enumerate(events_for(entry)):
                if only and event["eventType"] not in only:
                    continue
                records.append(QueueRecord(f"e{index}-{n}", json.dumps(event), resources.EVENTS_QUEUE, self.clock(), 1))
        return apply_events(records, self.events_context())

    def events_context(self) -> EventsContext:
        return EventsContext(self.settings, dynamodb=self.session.client("dynamodb"),
                             events=self.session.client("events"), sqs=self.sqs,
                             scheduler=self.session.client("scheduler"),
                             secrets=self.session.client("secretsmanager"), clock=self.clock)

    def app_events(self) -> list[dict]:
        """What the user's application received on the local app-events queue (the bus's rule target)."""
        received = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url(resources.APP_EVENTS_QUEUE),
                                                MaxNumberOfMessages=10).get("Messages", []):
            received += [json.loads(m["Body"]) for m in batch]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url(resources.APP_EVENTS_QUEUE), Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
        return received

    def apply_send_events(self):
        """Apply SES's Send event for each send since the last call: what moves an accepted email's claim to
        ``sent`` (the send stage leaves that write to it)."""
        result = self.publish_ses_events(self.ses.sends[self.send_events_applied:], only=("Send",))
        self.send_events_applied = len(self.ses.sends)
        return result

    def crash_after_ses(self, records: list[QueueRecord]) -> None:
        """The send stage dies right after SES accepted each email of ``records``: its claim stays open and
        `sent` is never written (the window only SES's events settle)."""
        from postline.send import send_batch

        ctx = self.send_context()
        ses = ctx.sesv2

        class DiesAfterSes:
            def send_email(self, **kwargs):
                ses.send_email(**kwargs)
                raise SystemExit("killed after SES took it")

        ctx.sesv2 = DiesAfterSes()
        with pytest.raises(SystemExit):
            send_batch(records, ctx)

    def crash_before_ses(self, records: list[QueueRecord]) -> None:
        """The send stage dies after claiming ``records`` and before any request reaches SES: the claims stay
        open and nothing will ever settle them."""
        from postline.send import send_batch

        class DiesBeforeSes:
            def send_email(self, **kwargs):
                raise SystemExit("killed before the request left")

        ctx = self.send_context()
        ctx.sesv2 = DiesBeforeSes()
        with pytest.raises(SystemExit):
            send_batch(records, ctx)

    def drain(self):
        self.run_render()
        self.run_send()
        self.apply_send_events()


@functools.cache
def _prepared_samples() -> tuple:
    """The sample templates as publishing stores them: prepared once per test process (rendering every locale with
    its example data is a third of a test's setup), published afresh in each test's tables."""
    return tuple(prepare(load_template_dir(folder), "tests") for folder in sorted((ROOT / "templates").iterdir()))


@pytest.fixture
def pipeline(monkeypatch, tmp_path):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # moto's PartiQL INSERT overwrites an existing item; DynamoDB refuses it, and the first claims depend on that.
    monkeypatch.setattr(DynamoDBBackend, "batch_execute_statement", DynamoDBBackend.batch_execute_statement)
    aws_endpoint.insert_as_dynamodb_does()
    aws_endpoint.answer_ses_setup_as_ses_does()  # the event destinations create_resources makes, as the stack does
    with mock_aws():
        for model in ALL_MODELS:
            model._connection = None
        session = boto3.session.Session(region_name="us-east-1")
        environment = resources.function_environment(MOTO_SQS, TRACKING)
        environment.pop("AWS_ENDPOINT_URL")
        resources.create_resources(session, MOTO_SQS, TRACKING, str(tmp_path))
        settings = settings_from_environ(environment)
        for template in _prepared_samples():
            publish(copy.deepcopy(template))  # publish numbers the copy it stores
        yield Pipeline(session, settings, CountingSes(session.client("sesv2")))
        for model in ALL_MODELS:
            model._connection = None
