"""Faults injected at the local AWS endpoint, as AWS itself answers them, for the soak (bench/soak.py).

``POSTLINE_LOCAL_ENDPOINT_FAULTS`` holds a spec, ``kind=rate`` pairs separated by commas (a rate is the chance, 0
to 1, that one eligible request gets the fault), plus ``seed=N`` for a repeatable draw and ``each_once=1`` to give
every kind in the spec at its first chance whatever its rate (so a short run sees each one). The endpoint wraps
moto in ``FaultInjector.middleware`` and the local SES event publisher calls ``FaultInjector.disturb``; every fault
injected is appended to ``endpoint-faults.jsonl`` in the stack's state folder (kind, service, action, time).

The kinds, each what AWS answers (botocore parses them into the same ClientError codes):

- ``ses_throttle``: SESv2 SendEmail refused, 429 ``TooManyRequestsException`` "Maximum sending rate exceeded."
- ``ses_5xx``: SESv2 SendEmail refused, 500 ``InternalFailure``; the email is not taken (SES may or may not have,
  in AWS: postline keeps its claim and in the end parks it).
- ``ses_lost_reply``: SESv2 SendEmail applied (sent, logged, its events to come), then the connection dropped
  without an answer: SES accepted and the caller did not hear it.
- ``dynamodb_throttle``: an item operation refused, 400 ``ProvisionedThroughputExceededException`` or
  ``ThrottlingException`` (half and half); not applied.
- ``dynamodb_5xx``: an item operation refused, 500 ``InternalServerError``; not applied.
- ``s3_5xx``: an object operation refused, 500 ``InternalError`` or 503 ``SlowDown`` (half and half).
- ``sqs_duplicate``: a ReceiveMessage answered as asked, but one of the messages it hands out is left visible, so
  the next receive hands it out again (SQS's at-least-once delivery, with a new receipt handle). Dead-letter
  queues are left alone.
- ``ses_event_duplicate`` / ``ses_event_swap`` (the local SES event publisher): an SES event published twice, or
  after the one that followed it.

Setup calls (CreateTable, CreateBucket, ...) are never disturbed: only what a running pipeline does.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

FAULTS_VARIABLE = "POSTLINE_LOCAL_ENDPOINT_FAULTS"
FAULT_LOG = "endpoint-faults.jsonl"

ENDPOINT_KINDS = (
    "ses_throttle",
    "ses_5xx",
    "ses_lost_reply",
    "dynamodb_throttle",
    "dynamodb_5xx",
    "s3_5xx",
    "sqs_duplicate",
)
PUBLISHER_KINDS = ("ses_event_duplicate", "ses_event_swap")
KINDS = ENDPOINT_KINDS + PUBLISHER_KINDS

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
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_SES_SEND = "/v2/email/outbound-emails"


class DropConnection(Exception):
    """Raised by the middleware after the request was applied: the server closes the connection unanswered."""


def parse_spec(text: str) -> tuple[dict[str, float], int | None, bool]:
    """The rates by kind, the seed and ``each_once`` of a spec; a ValueError naming what is wrong."""
    rates: dict[str, float] = {}
    seed, each_once = None, False
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
        elif name in KINDS:
            try:
                rate = float(value)
            except ValueError:
                rate = -1.0
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"the rate of {name} must be a number from 0 to 1, not {value!r}")
            rates[name] = rate
        else:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(KINDS)}, seed, each_once)")
    return rates, seed, each_once


@dataclass
class FaultInjector:
    """Draws faults at their rates and logs each one injected to ``log_path`` (JSON lines)."""

    rates: dict[str, float]
    log_path: str
    seed: int | None = None
    each_once: bool = False
    clock: Any = time.time
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _given: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # noqa: S311 - which requests fail, not a secret

    @classmethod
    def from_spec(cls, text: str, state_dir: str, **kwargs: Any) -> FaultInjector | None:
        """The injector for a spec (None when it names no fault), logging in ``state_dir``."""
        rates, seed, each_once = parse_spec(text)
        if not any(rates.values()):
            return None
        return cls(rates, os.path.join(state_dir, FAULT_LOG), seed, each_once, **kwargs)

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

    def record(self, kind: str, service: str, action: str) -> None:
        line = json.dumps({"kind": kind, "service": service, "action": action, "time": self.clock()}) + "\n"
        with self._lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line)

    # The endpoint: a WSGI middleware around moto's application.

    def middleware(self, app):
        def faulty(environ: dict[str, Any], start_response):
            service, action = request_of(environ)
            answer = self._refusal(service, action)
            if answer is not None:
                kind, status, headers, body = answer
                self.record(kind, service, action)
                start_response(status, headers)
                return [body]
            if service == "ses" and action == "SendEmail" and self.draw("ses_lost_reply"):
                for _ in _applied(app, environ):
                    pass
                self.record("ses_lost_reply", service, action)
                raise DropConnection()
            if service == "sqs" and action == "ReceiveMessage" and self.rates.get("sqs_duplicate"):
                return self._maybe_duplicate(app, environ, start_response)
            return app(environ, start_response)

        return faulty

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
        elif service == "s3" and action.endswith("Object") and self.draw("s3_5xx"):
            if self.choose([True, False]):
                return "s3_5xx", *s3_error(503, "SlowDown", "Please reduce your request rate.")
            return "s3_5xx", *s3_error(500, "InternalError", "We encountered an internal error. Please try again.")
        return None

    def _maybe_duplicate(self, app, environ: dict[str, Any], start_response):
        """ReceiveMessage as moto answers it; then, at the rate, one message it handed out made visible again."""
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
        if handed_out and not queue_url.endswith("-dlq") and self.draw("sqs_duplicate"):
            handle = self.choose(handed_out)["ReceiptHandle"]
            if make_visible_again(queue_url, handle, region_of(environ)):
                self.record("sqs_duplicate", "sqs", "ReceiveMessage")
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


def make_visible_again(queue_url: str, receipt_handle: str, region: str) -> bool:
    """Make the message received with ``receipt_handle`` visible at once in moto's queue; False if it is gone."""
    from moto.sqs.models import sqs_backends

    account, _, name = queue_url.rstrip("/").rpartition("/")
    account = account.rpartition("/")[2]
    try:
        queue = sqs_backends[account][region].get_queue(name)
    except Exception:  # noqa: BLE001 - a queue deleted meanwhile: nothing to hand out again
        return False
    for message in list(queue._messages):
        if message.had_receipt_handle(receipt_handle):
            message.change_visibility(0)
            return True
    return False
