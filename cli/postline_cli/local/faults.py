"""Faults injected at the local AWS endpoint, as AWS itself answers them, for the soak (bench/soak.py).

``POSTLINE_LOCAL_ENDPOINT_FAULTS`` holds a spec, ``kind=rate`` pairs separated by commas (a rate is the chance, 0
to 1, that one eligible request gets the fault), plus ``seed=N`` for a repeatable draw, ``each_once=1`` to give
every kind in the spec at its first chance whatever its rate (so a short run sees each one) and ``kill_gap=SECONDS``
for the least time between two kills (``KILL_GAP_SECONDS`` by default). The endpoint wraps
moto in ``FaultInjector.middleware`` and the local SES event publisher calls ``FaultInjector.disturb``; every fault
injected is appended to ``endpoint-faults.jsonl`` in the stack's state folder (kind, service, action, time, and
postline's message id for SES sends and the ``sent`` write).

The kinds, each what AWS answers (botocore parses them into the same ClientError codes):

- ``ses_throttle``: SESv2 SendEmail refused, 429 ``TooManyRequestsException`` "Maximum sending rate exceeded."
- ``ses_5xx``: SESv2 SendEmail refused, 500 ``InternalFailure``; the email is not taken (SES may or may not have,
  in AWS: postline keeps its claim and in the end parks it).
- ``ses_lost_reply``: SESv2 SendEmail applied (sent, logged, its events to come), then the connection dropped
  without an answer: SES accepted and the caller did not hear it.
- ``ses_timeout_before`` / ``ses_timeout_after``: SESv2 SendEmail held past the SES client's read timeout
  (``postline.clients.SES_READ_TIMEOUT_SECONDS``, 15 s), so botocore raises ``ReadTimeoutError``; not applied, or
  applied (SES accepted) before the hold. Each costs the sending thread the timeout.
- ``ses_rejected``: SESv2 SendEmail refused for good, 400 ``MessageRejected`` "The message can't be sent because it
  contains invalid content."
- ``dynamodb_throttle``: an item operation refused, 400 ``ProvisionedThroughputExceededException`` or
  ``ThrottlingException`` (half and half); not applied.
- ``dynamodb_5xx``: an item operation refused, 500 ``InternalServerError``; not applied.
- ``dynamodb_5xx_applied``: a write applied, then answered 500 ``InternalServerError``: botocore retries it, and a
  conditional write meets its own earlier write. A TransactWriteItems retried with the same ``ClientRequestToken``
  (botocore fills one in) is answered as DynamoDB does, a success that changes nothing (moto has no such memory).
- ``dynamodb_unavailable``: an item operation refused, 503 ``ServiceUnavailable``; not applied.
- ``s3_5xx``: an object operation refused, 500 ``InternalError`` or 503 ``SlowDown`` (half and half).
- ``sqs_duplicate``: a ReceiveMessage answered as asked, but one of the messages it hands out is left visible, so
  the next receive hands it out again (SQS's at-least-once delivery, with a new receipt handle). Dead-letter
  queues are left alone.
- ``sqs_visibility_lapse``: one message a ReceiveMessage hands out becomes visible again after 1 or 2 seconds, while
  its worker still holds it (a visibility timeout that ran out): another poller gets it with a new receipt handle.
- ``kill_before_ses`` / ``kill_after_ses`` / ``kill_after_sent``: the send worker SIGKILLed (its pid from the
  stack's state file) when its SendEmail arrives (not applied), once SES applied it (unanswered), or once the
  write that records ``sent`` is applied (unanswered). At most one kill every ``KILL_GAP_SECONDS``, so the stack
  keeps going; a kill is logged with the worker's pid.
- ``ses_event_duplicate`` / ``ses_event_swap`` (the local SES event publisher): an SES event published twice, or
  after the one that followed it.

Setup calls (CreateTable, CreateBucket, ...) are never disturbed: only what a running pipeline does.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULTS_VARIABLE = "POSTLINE_LOCAL_ENDPOINT_FAULTS"
FAULT_LOG = "endpoint-faults.jsonl"

KILL_KINDS = ("kill_before_ses", "kill_after_ses", "kill_after_sent")
ENDPOINT_KINDS = (
    "ses_throttle",
    "ses_5xx",
    "ses_lost_reply",
    "ses_timeout_before",
    "ses_timeout_after",
    "ses_rejected",
    "dynamodb_throttle",
    "dynamodb_5xx",
    "dynamodb_5xx_applied",
    "dynamodb_unavailable",
    "s3_5xx",
    "sqs_duplicate",
    "sqs_visibility_lapse",
    *KILL_KINDS,
)
PUBLISHER_KINDS = ("ses_event_duplicate", "ses_event_swap")
KINDS = ENDPOINT_KINDS + PUBLISHER_KINDS
# A killed send worker's batch comes back after its visibility timeout and the stack starts a new worker: one kill
# at a time lets the stack recover between them.
KILL_GAP_SECONDS = 20.0
# How long DynamoDB remembers a transaction's ClientRequestToken (a retry within it changes nothing).
TRANSACTION_TOKEN_SECONDS = 600.0

DYNAMODB_ITEM_ACTIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
    }
)
DYNAMODB_WRITE_ACTIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems", "BatchExecuteStatement"}
)
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_SES_SEND = "/v2/email/outbound-emails"
_MESSAGE_ID_TAG = "postline_message_id"


def ses_read_timeout_seconds() -> float:
    """The read timeout of postline's SES client: a reply held longer times it out."""
    from postline.clients import SES_READ_TIMEOUT_SECONDS

    return float(SES_READ_TIMEOUT_SECONDS)


class DropConnection(Exception):
    """Raised by the middleware after the request was applied: the server closes the connection unanswered."""


def parse_spec(text: str) -> tuple[dict[str, float], int | None, bool, float]:
    """The rates by kind, the seed, ``each_once`` and the kill gap of a spec; a ValueError naming what is wrong."""
    rates: dict[str, float] = {}
    seed, each_once, kill_gap = None, False, KILL_GAP_SECONDS
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, equals, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not equals:
            raise ValueError(f"{part!r} is not kind=rate")
        if name == "seed":
            try:
                seed = int(value)
            except ValueError:
                raise ValueError(f"seed must be a whole number, not {value!r}") from None
        elif name == "each_once":
            if value not in ("0", "1"):
                raise ValueError(f"each_once must be 0 or 1, not {value!r}")
            each_once = value == "1"
        elif name == "kill_gap":
            try:
                kill_gap = float(value)
            except ValueError:
                kill_gap = -1.0
            if not 0.0 <= kill_gap < float("inf"):
                raise ValueError(f"kill_gap must be a number of seconds, 0 or more, not {value!r}")
        elif name in KINDS:
            try:
                rate = float(value)
            except ValueError:
                rate = -1.0
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"the rate of {name} must be a number from 0 to 1, not {value!r}")
            rates[name] = rate
        else:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(KINDS)}, seed, each_once, kill_gap)")
    return rates, seed, each_once, kill_gap


@dataclass
class FaultInjector:
    """Draws faults at their rates and logs each one injected to ``log_path`` (JSON lines)."""

    rates: dict[str, float]
    log_path: str
    seed: int | None = None
    each_once: bool = False
    clock: Any = time.time
    # A read timeout's hold: a second past the SES client's read timeout (a test shortens both).
    hold_seconds: float = field(default_factory=lambda: ses_read_timeout_seconds() + 1.0)
    kill_gap_seconds: float = KILL_GAP_SECONDS
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _given: set[str] = field(default_factory=set)
    _last_kill: float = float("-inf")
    _answered_transactions: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - which requests fail, not a secret

    @classmethod
    def from_spec(cls, text: str, state_dir: str, **kwargs: Any) -> FaultInjector | None:
        """The injector for a spec (None when it names no fault), logging in ``state_dir``."""
        rates, seed, each_once, kill_gap = parse_spec(text)
        if not any(rates.values()):
            return None
        return cls(rates, os.path.join(state_dir, FAULT_LOG), seed, each_once, kill_gap_seconds=kill_gap, **kwargs)

    @classmethod
    def from_environment(cls, state_dir: str, environ: dict[str, str] | None = None) -> FaultInjector | None:
        text = (os.environ if environ is None else environ).get(FAULTS_VARIABLE, "")
        try:
            return cls.from_spec(text, state_dir)
        except ValueError as error:
            raise ValueError(f"{FAULTS_VARIABLE}: {error}") from None

    def draw(self, kind: str) -> bool:
        """Whether this chance gets ``kind`` (not logged: ``record`` logs what was injected)."""
        rate = self.rates.get(kind, 0.0)
        if rate <= 0.0:
            return False
        with self._lock:
            if self.each_once and kind not in self._given:
                self._given.add(kind)
                return True
            return self._random.random() < rate

    def choose(self, options: list) -> Any:
        with self._lock:
            return self._random.choice(options)

    def record(self, kind: str, service: str, action: str, **detail: Any) -> None:
        """Log ``kind`` injected; ``detail`` (postline's message id, a killed pid) where there is one."""
        entry = {"kind": kind, "service": service, "action": action, "time": self.clock()}
        entry.update((name, value) for name, value in detail.items() if value is not None)
        with self._lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    # The endpoint: a WSGI middleware around moto's application.

    def middleware(self, app):
        def faulty(environ: dict[str, Any], start_response):
            service, action = request_of(environ)
            answer = self._refusal(service, action)
            if answer is not None:
                kind, status, headers, body = answer
                self.record(kind, service, action, message_id=ses_message_id(environ) if service == "ses" else None)
                start_response(status, headers)
                return [body]
            if service == "ses" and action == "SendEmail":
                return self._send_email(app, environ, start_response)
            if service == "dynamodb" and action in DYNAMODB_WRITE_ACTIONS:
                return self._dynamodb_write(app, environ, start_response, action)
            if (
                service == "sqs"
                and action == "ReceiveMessage"
                and (self.rates.get("sqs_duplicate") or self.rates.get("sqs_visibility_lapse"))
            ):
                return self._maybe_duplicate(app, environ, start_response)
            return app(environ, start_response)

        return faulty

    def _drawn(self, kind: str) -> bool:
        """``draw``; for a kill, only while a send worker runs and the last kill is ``kill_gap_seconds`` old (so
        ``each_once`` waits for both), the gap then taken at once (requests drawn at the same moment on other
        threads do not kill too)."""
        if kind not in KILL_KINDS:
            return self.draw(kind)
        if time.monotonic() - self._last_kill < self.kill_gap_seconds or self._send_worker() is None:
            return False
        if not self.draw(kind):
            return False
        with self._lock:
            if time.monotonic() - self._last_kill < self.kill_gap_seconds:
                return False
            self._last_kill = time.monotonic()
        return True

    def _send_email(self, app, environ: dict[str, Any], start_response):
        """SendEmail timed out or its worker killed before SES applies it; or applied, then unanswered (a lost
        reply, a read timeout, its worker killed); or answered as SES answers."""
        message_id = ses_message_id(environ)
        if self._drawn("ses_timeout_before"):
            self.record("ses_timeout_before", "ses", "SendEmail", message_id=message_id)
            time.sleep(self.hold_seconds)
            raise DropConnection()
        if self._drawn("kill_before_ses") and self._kill_send_worker("kill_before_ses", "SendEmail", message_id):
            raise DropConnection()
        after = next((k for k in ("ses_lost_reply", "ses_timeout_after", "kill_after_ses") if self._drawn(k)), None)
        if after is None:
            return app(environ, start_response)
        status, headers, body = _answer(app, environ)
        if not status.startswith("200"):  # refused (the local SES's own sending limits): not sent, answered
            start_response(status, headers)
            return [body]
        if after == "kill_after_ses":
            if not self._kill_send_worker(after, "SendEmail", message_id):
                start_response(status, headers)
                return [body]
        else:
            self.record(after, "ses", "SendEmail", message_id=message_id)
            if after == "ses_timeout_after":
                time.sleep(self.hold_seconds)
        raise DropConnection()

    def _dynamodb_write(self, app, environ: dict[str, Any], start_response, action: str):
        """A write applied, then answered with a 500 or left unanswered by its killed send worker; a transaction
        retried with the token of one applied so is answered as done, as DynamoDB does."""
        request = _json_body(environ)
        token = request.get("ClientRequestToken") if action == "TransactWriteItems" else None
        if token and self._answered(token):
            body = b"{}"
            start_response(
                "200 OK", [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))]
            )
            return [body]
        sent_write = action == "UpdateItem" and is_sent_write(request)
        kind = "kill_after_sent" if sent_write and self._drawn("kill_after_sent") else None
        if kind is None and self._drawn("dynamodb_5xx_applied"):
            kind = "dynamodb_5xx_applied"
        if kind is None:
            return app(environ, start_response)
        status, headers, body = _answer(app, environ)
        if not status.startswith("200"):  # not applied (a condition failed): answered as it is
            start_response(status, headers)
            return [body]
        message_id = request.get("Key", {}).get("message_id", {}).get("S") if sent_write else None
        if kind == "kill_after_sent":
            if self._kill_send_worker(kind, action, message_id):
                raise DropConnection()
            start_response(status, headers)
            return [body]
        if token:
            with self._lock:
                self._answered_transactions[token] = time.monotonic()
        self.record(kind, "dynamodb", action, message_id=message_id)
        status, headers, body = dynamodb_error(
            500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error"
        )
        start_response(status, headers)
        return [body]

    def _answered(self, token: str) -> bool:
        with self._lock:
            now = time.monotonic()
            for old in [t for t, at in self._answered_transactions.items() if now - at > TRANSACTION_TOKEN_SECONDS]:
                del self._answered_transactions[old]
            return token in self._answered_transactions

    def _send_worker(self) -> int | None:
        """The pid of the stack's send worker, from the state file beside the fault log; None while none runs (the
        stack starting a new one)."""
        from .stack import LocalPaths, worker_running

        state_file = LocalPaths(Path(self.log_path).parent, Path(".")).state_file
        try:
            pid = int(json.loads(state_file.read_text())["workers"]["send"]["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pid if worker_running(pid, "send") else None

    def _kill_send_worker(self, kind: str, action: str, message_id: str | None) -> bool:
        """SIGKILL the send worker and log it; False when it is gone meanwhile (killed by ``--kill-every``)."""
        pid = self._send_worker()
        try:
            if pid is None:
                raise ProcessLookupError
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            print(f"[faults] {kind}: no send worker to kill", file=sys.stderr, flush=True)
            return False
        self.record(kind, "ses" if action == "SendEmail" else "dynamodb", action, message_id=message_id, pid=pid)
        return True

    def _refusal(self, service: str, action: str) -> tuple[str, str, list, bytes] | None:
        if service == "ses" and action == "SendEmail":
            if self.draw("ses_throttle"):
                return "ses_throttle", *rest_json_error(
                    429, "TooManyRequestsException", "Maximum sending rate exceeded."
                )
            if self.draw("ses_5xx"):
                return "ses_5xx", *rest_json_error(
                    500,
                    "InternalFailure",
                    "The request processing has failed because of an unknown error, exception or failure.",
                )
            if self.draw("ses_rejected"):
                return "ses_rejected", *rest_json_error(
                    400, "MessageRejected", "The message can't be sent because it contains invalid content."
                )
        elif service == "dynamodb" and action in DYNAMODB_ITEM_ACTIONS:
            if self.draw("dynamodb_throttle"):
                if self.choose([True, False]):
                    return "dynamodb_throttle", *dynamodb_error(
                        400,
                        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                        "The level of configured provisioned throughput for the table was exceeded. Consider "
                        "increasing your provisioning level with the UpdateTable API.",
                    )
                return "dynamodb_throttle", *dynamodb_error(
                    400,
                    "com.amazon.coral.availability#ThrottlingException",
                    "Rate of requests exceeds the allowed throughput.",
                )
            if self.draw("dynamodb_5xx"):
                return "dynamodb_5xx", *dynamodb_error(
                    500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error"
                )
            if self.draw("dynamodb_unavailable"):
                return "dynamodb_unavailable", *dynamodb_error(
                    503, "com.amazonaws.dynamodb.v20120810#ServiceUnavailable", "Service Unavailable"
                )
        elif service == "s3" and action.endswith("Object") and self.draw("s3_5xx"):
            if self.choose([True, False]):
                return "s3_5xx", *s3_error(503, "SlowDown", "Please reduce your request rate.")
            return "s3_5xx", *s3_error(500, "InternalError", "We encountered an internal error. Please try again.")
        return None

    def _maybe_duplicate(self, app, environ: dict[str, Any], start_response):
        """ReceiveMessage as moto answers it; then, at their rates, one message it handed out made visible again at
        once (a duplicate delivery) or in a second or two (a visibility timeout that ran out while it is worked
        on)."""
        status_headers: list = []

        def keep(status, headers, exc_info=None):
            status_headers[:] = [status, headers]
            return lambda _: None

        body = b"".join(_applied(app, environ, keep))
        start_response(*status_headers)
        try:
            request = json.loads(environ["wsgi.input"].getvalue() or b"{}")
            handed_out = json.loads(body).get("Messages", []) if status_headers[0].startswith("200") else []
        except (ValueError, AttributeError):
            handed_out = []
        queue_url = request.get("QueueUrl", "") if handed_out else ""
        if handed_out and not queue_url.endswith("-dlq"):
            for kind, seconds in (("sqs_duplicate", 0), ("sqs_visibility_lapse", None)):
                if self.draw(kind):
                    handle = self.choose(handed_out)["ReceiptHandle"]
                    seconds = self.choose([1, 2]) if seconds is None else seconds
                    if make_visible_again(queue_url, handle, region_of(environ), seconds):
                        self.record(kind, "sqs", "ReceiveMessage")
                    break
        return [body]

    # The local SES event publisher.

    def disturb(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The SES events to publish, some published twice and some after the one that followed them."""
        out = list(events)
        index = 0
        while index < len(out):
            name = str(out[index].get("eventType") or out[index].get("notificationType") or "")
            if index + 1 < len(out) and self.draw("ses_event_swap"):
                out[index], out[index + 1] = out[index + 1], out[index]
                self.record("ses_event_swap", "ses-events", name)
                index += 2
                continue
            if self.draw("ses_event_duplicate"):
                out.insert(index + 1, out[index])
                self.record("ses_event_duplicate", "ses-events", name)
                index += 1
            index += 1
        return out


def _answer(app, environ: dict[str, Any]) -> tuple[str, list, bytes]:
    """The application's whole answer (so the request is applied): status, headers, body."""
    started: list = ["500 Internal Server Error", []]

    def keep(status, headers, exc_info=None):
        started[:] = [status, list(headers)]
        return lambda _: None

    body = b"".join(_applied(app, environ, keep))
    return started[0], started[1], body


def _json_body(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        found = json.loads(environ["wsgi.input"].getvalue() or b"{}")
    except (KeyError, AttributeError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def ses_message_id(environ: dict[str, Any]) -> str | None:
    """postline's message id of a SendEmail (its message tag)."""
    tags = _json_body(environ).get("EmailTags") or []
    return next((t.get("Value") for t in tags if isinstance(t, dict) and t.get("Name") == _MESSAGE_ID_TAG), None)


def is_sent_write(request: dict[str, Any]) -> bool:
    """Whether an UpdateItem is the send function's record of ``sent`` (on its own claim, ``:c_claim``)."""
    values = request.get("ExpressionAttributeValues") or {}
    return ":c_claim" in values and {"S": "sent"} in values.values()


def _applied(app, environ: dict[str, Any], start_response=None):
    """The application's answer, consumed whole (so the request is applied) and closed."""
    answer = app(environ, start_response or (lambda status, headers, exc_info=None: lambda _: None))
    try:
        return [bytes(chunk) for chunk in answer]
    finally:
        if hasattr(answer, "close"):
            answer.close()


def request_of(environ: dict[str, Any]) -> tuple[str, str]:
    """The AWS service (its signing name) and action of a request: from the signature's credential scope, the
    JSON protocols' X-Amz-Target, SESv2's path and S3's method."""
    found = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = found.group("service") if found else ""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return service, target.rpartition(".")[2]
    method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
    if service == "ses":
        return service, "SendEmail" if method == "POST" and path.rstrip("/") == _SES_SEND else f"{method} {path}"
    if service == "s3":
        has_key = len([part for part in path.split("/") if part]) >= 2
        verb = {"GET": "Get", "PUT": "Put", "HEAD": "Head", "DELETE": "Delete"}.get(method, method)
        return service, f"{verb}Object" if has_key else f"{verb}Bucket"
    return service, f"{method} {path}"


def region_of(environ: dict[str, Any]) -> str:
    found = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return found.group("region") if found else "us-east-1"


def rest_json_error(status: int, code: str, message: str) -> tuple[str, list, bytes]:
    body = json.dumps({"message": message}).encode()
    return (
        _status(status),
        [("Content-Type", "application/json"), ("x-amzn-ErrorType", f"{code}:"), ("Content-Length", str(len(body)))],
        body,
    )


def dynamodb_error(status: int, error_type: str, message: str) -> tuple[str, list, bytes]:
    body = json.dumps({"__type": error_type, "message": message}).encode()
    return _status(status), [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))], body


def s3_error(status: int, code: str, message: str) -> tuple[str, list, bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"<RequestId>LOCALFAULT</RequestId><HostId>local</HostId></Error>"
    ).encode()
    return _status(status), [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))], body


def _status(code: int) -> str:
    from http import HTTPStatus

    return f"{code} {HTTPStatus(code).phrase}"


def make_visible_again(queue_url: str, receipt_handle: str, region: str, seconds: int = 0) -> bool:
    """Make the message received with ``receipt_handle`` visible again in moto's queue, in ``seconds``; False if it
    is gone."""
    from moto.sqs.models import sqs_backends

    account, _, name = queue_url.rstrip("/").rpartition("/")
    account = account.rpartition("/")[2]
    try:
        queue = sqs_backends[account][region].get_queue(name)
    except Exception:  # noqa: BLE001 - a queue deleted meanwhile: nothing to hand out again
        return False
    for message in list(queue._messages):
        if message.had_receipt_handle(receipt_handle):
            message.change_visibility(seconds)
            return True
    return False
