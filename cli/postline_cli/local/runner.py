"""Deliver SQS batches to the real function handlers the way the Lambda event source mapping does.

Each poller receives a batch (up to 10 messages, or as many as its mapping gathers in its batching window), builds
the exact Lambda SQS event, calls the handler, and deletes only the records the handler did not report in
``batchItemFailures``. A handler that raises deletes nothing. Records left on the queue come back after their
visibility timeout, and SQS's redrive policy moves them to the DLQ after the redrive count, as in AWS.

In AWS a queue's visibility timeout is six times its function's timeout, so SQS never hands a record to a second
invocation while the first still runs. The local queues' visibility is short (a failed record comes back in
seconds), so a poller keeps its batch hidden for as long as the handler runs, renewing the visibility as it
goes: a slow invocation on a busy machine is not raced by a copy of its own batch.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .resources import ACCOUNT, REGION, queue_arn

FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"
SQS_RECEIVE_LIMIT = 10  # messages one ReceiveMessage returns at most
# While a batching window is open, how long a poller waits after a receive that found nothing (AWS's pollers are
# not billed; here each receive costs the endpoint a little).
GATHER_PAUSE_SECONDS = 0.2


def load_handler_module(name: str):
    """Import ``functions/<name>/app.py`` as Lambda would (each under its own module name)."""
    path = FUNCTIONS_DIR / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"postline_function_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: int = 60

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.function_version = "$LATEST"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.time() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def lambda_sqs_record(message: dict[str, Any], queue_name: str) -> dict[str, Any]:
    attributes = {k: v for k, v in message.get("Attributes", {}).items()}
    body_md5 = message.get("MD5OfBody") or hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest()
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": {name: _attribute(value) for name, value in message.get("MessageAttributes", {}).items()},
        "md5OfBody": body_md5,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn(queue_name),
        "awsRegion": REGION,
    }


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda shows it: the value present under its own key, binary as base64 text."""
    shaped: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shaped["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return shaped


class QueuePoller(threading.Thread):
    """One event source mapping: a queue feeding a function, batches of up to ``batch_size`` (10 but for the
    campaigns' control queue and SES's events), each gathered for up to ``batching_window_seconds`` once its first
    message is in, as Lambda's batching window does; partial batch responses, the function's timeout in its
    context."""

    def __init__(
        self,
        sqs,
        queue_url: str,
        queue_name: str,
        function_name: str,
        handler,
        stop: threading.Event,
        on_batch=None,
        batch_size: int = 10,
        timeout_seconds: int = 60,
        batching_window_seconds: float = 0.0,
    ):
        super().__init__(name=f"poller-{queue_name}", daemon=True)
        self.sqs, self.queue_url, self.queue_name = sqs, queue_url, queue_name
        self.function_name, self.handler, self.stop = function_name, handler, stop
        self.on_batch = on_batch
        self.batch_size, self.timeout_seconds = batch_size, timeout_seconds
        self.batching_window_seconds = batching_window_seconds
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"]
        self.visibility_seconds = int(attributes["VisibilityTimeout"])

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception:  # noqa: BLE001 - the poller outlives a bad moment of the endpoint
                if not self.stop.is_set():
                    traceback.print_exc()
                    time.sleep(0.5)

    def poll_once(self, wait_seconds: int = 0) -> int:
        messages = self._gather(wait_seconds)
        if not messages:
            return 0
        event = {"Records": [lambda_sqs_record(m, self.queue_name) for m in messages]}
        try:
            with self._kept_hidden(messages):
                context = LambdaContext(self.function_name, timeout_seconds=self.timeout_seconds)
                answer = self.handler(event, context) or {}
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        except BaseException as error:  # noqa: BLE001 - as in Lambda, a crashed invocation deletes nothing
            print(f"[{self.function_name}] invocation failed: {error!r}", file=sys.stderr, flush=True)
            failed = {m["MessageId"] for m in messages}
        done = [
            {"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]}
            for m in messages
            if m["MessageId"] not in failed
        ]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=done)
        if self.on_batch:
            self.on_batch(self.function_name, len(messages), len(failed))
        return len(messages)

    def _gather(self, wait_seconds: int) -> list[dict[str, Any]]:
        """A batch: what the first receive gives (waiting up to ``wait_seconds`` for it), then, with a batching
        window, more until the batch is full or the window since the first message has passed."""
        messages = self._receive(self.batch_size, wait_seconds)
        if not messages or self.batching_window_seconds <= 0:
            return messages
        closes = time.monotonic() + self.batching_window_seconds
        while len(messages) < self.batch_size and (left := closes - time.monotonic()) > 0:
            more = self._receive(self.batch_size - len(messages), 0)
            messages += more
            if not more:
                self.stop.wait(min(left, GATHER_PAUSE_SECONDS))
        return messages

    def _receive(self, at_most: int, wait_seconds: int) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(SQS_RECEIVE_LIMIT, at_most),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    @contextlib.contextmanager
    def _kept_hidden(self, messages: list[dict[str, Any]]):
        """Renew the batch's visibility every third of its timeout while the handler runs (best effort: a renewal the
        endpoint misses lets SQS redeliver, which postline must survive anyway)."""
        if self.visibility_seconds <= 0:
            yield
            return
        finished = threading.Event()
        entries = [
            {"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.visibility_seconds}
            for m in messages
        ]

        def renew() -> None:
            while not finished.wait(self.visibility_seconds / 3):
                try:
                    self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
                except Exception:  # noqa: BLE001, S110 - best effort, as the docstring says
                    pass

        renewer = threading.Thread(target=renew, name=f"{self.name}-visibility", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            finished.set()
            renewer.join()


class SimulatedCrash(BaseException):
    """The process dying: not an error a handler could catch and handle."""


class CrashAfterSesAccepts:
    """Fault injection for tests: wraps the SES client so that the first send to ``address`` is accepted by SES
    and then the invocation dies before postline records it."""

    def __init__(self, sesv2, address: str):
        self._sesv2, self._address, self._armed = sesv2, address, True

    def send_email(self, **kwargs):
        answer = self._sesv2.send_email(**kwargs)
        if self._armed and self._address in kwargs["Destination"]["ToAddresses"]:
            self._armed = False
            raise SimulatedCrash(f"process died after SES accepted {answer['MessageId']}")
        return answer

    def __getattr__(self, name):
        return getattr(self._sesv2, name)


# Each function's context, built at its cold start: what tells the function the time.
CONTEXTS = {
    "render": "render_context",
    "send": "send_context",
    "ses_events": "events_context",
    "track_open": "engagement",
    "track_click": "engagement",
    "unsubscribe": "engagement",
    "campaign": "campaign_context",
}


def use_clock(modules: dict[str, Any], clock) -> None:
    """Give the functions' contexts the local stack's clock (``postline local clock``). The limiters (the send and
    campaign functions') and the send function's campaign gate were given their context's clock when they were
    built, so they get the new one too, and sending threads sleep with the clock's bounded sleep (a slot taken before
    the clock moved back is not waited for)."""
    for name, module in modules.items():
        context = getattr(module, CONTEXTS[name])
        context.clock = clock
        if name in ("send", "campaign"):
            context.limiter.clock = clock
        if name == "send":
            context.sleep = clock.sleep
            context.campaigns.clock = clock


def apply_faults(spec: str, modules: dict[str, Any]) -> None:
    """``crash_after_ses:<address>`` (comma separated): the faults the e2e tests inject, each into the function it
    concerns if it is among ``modules`` (each worker process gets the whole spec; none: the spec is only checked).
    A fault is armed once per process: a send worker started anew arms it again."""
    for fault in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, argument = fault.partition(":")
        if kind != "crash_after_ses":
            raise ValueError(f"unknown fault {kind!r}")
        if "send" in modules:
            context = modules["send"].send_context
            context.sesv2 = CrashAfterSesAccepts(context.sesv2, argument)
