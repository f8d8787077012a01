"""AWS calls per email, counted over the real handlers against a local AWS endpoint, for the whole life of an
email: render, send, the SES events it causes, by either route (SNS, the default: the Delivery through the topic;
EventBridge: the Delivery, then the held-back Send), and one open and one click.

Every botocore client made in this process (boto3's and PynamoDB's alike) gets a ``before-call`` hook that
counts its API calls by service and operation, and a ``before-parameter-build`` hook that keeps the request
parameters the cost model needs (items per transaction, keys per read, bytes per queue write). The handlers
are the ``functions/<name>/app.py`` modules, imported as Lambda imports them and invoked with the event shapes
Lambda gives them; each phase also records the CPU time this process spent in it (the handler's side of every
call, not the endpoint's, which runs in its own process) and the bytes the handler logged.

Phases are run on warm handlers (templates cached, signing keys loaded), as in a warm container.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .support import example, free_port

TRACKING_HITS = 5  # opens and clicks measured per scenario
HUMAN_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/17.5 Safari/605.1.15")


class Recorder:
    """Counts the API calls of every botocore client made in this process while a phase is open."""

    def __init__(self):
        self.phase: str | None = None
        self.calls: dict[str, Counter] = defaultdict(Counter)
        self.requests: dict[str, list[tuple[str, dict]]] = defaultdict(list)

    def install(self) -> None:
        import botocore.session

        original = botocore.session.Session.create_client
        recorder = self

        def create_client(session, *args, **kwargs):
            made = original(session, *args, **kwargs)
            made.meta.events.register("before-call.*.*", recorder._count)
            made.meta.events.register("before-parameter-build.*.*", recorder._keep)
            return made

        botocore.session.Session.create_client = create_client

    def _count(self, model, **_):
        if self.phase:
            self.calls[self.phase][f"{model.service_model.service_name}.{model.name}"] += 1

    def _keep(self, params, model, **_):
        if self.phase:
            self.requests[self.phase].append((f"{model.service_model.service_name}.{model.name}", dict(params)))

    @contextmanager
    def counting(self, phase: str):
        self.phase = phase
        try:
            yield
        finally:
            self.phase = None


class LogBytes:
    """Bytes and lines written by the functions' Powertools loggers (what CloudWatch Logs would ingest)."""

    def __init__(self):
        self.count = 0
        self.lines = 0

    def write(self, text: str) -> int:
        self.count += len(text.encode())
        self.lines += text.count("\n")
        return len(text)

    def flush(self) -> None:
        pass


def _wait_port(port: int, seconds: float = 30) -> None:
    import socket

    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the local endpoint did not start")


SCENARIOS = (
    # label, template, stream, emails
    ("marketing, batch of 10", "newsletter", "marketing", 10),
    ("critical, one email", "password-reset", "critical", 1),
)


def measure(route: str = "sns") -> dict[str, Any]:
    """Run every scenario through the real handlers in a fresh endpoint, SES's events by ``route`` ("sns" or
    "eventbridge", as the deploy config's ses_event_route); return calls and details per phase."""
    recorder = Recorder()
    recorder.install()
    workdir = Path(tempfile.mkdtemp(prefix="postline-bench-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    send_log = workdir / "send.jsonl"
    server = subprocess.Popen([sys.executable, "-m", "postline_cli.local.aws_endpoint", "--port", str(port),
                               "--outbox", str(workdir / "outbox"), "--send-log", str(send_log)])
    saved_environ = dict(os.environ)
    try:
        _wait_port(port)
        return _run(recorder, endpoint, str(workdir), send_log, route)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        server.terminate()
        server.wait()


def _run(recorder: Recorder, endpoint: str, workdir: str, send_log: Path, route: str) -> dict[str, Any]:
    import boto3

    from postline_cli.local import resources
    from postline_cli.local.http_api import api_event
    from postline_cli.local.runner import LambdaContext, lambda_sqs_record, load_handler_module
    from postline_cli.local.ses_simulator import by_sns, events_for, publish_to_topic, put_on_bus
    from postline_cli.local.stack import publish_samples

    _forget_earlier_endpoints()
    api_url = "http://127.0.0.1:3000"
    environment = resources.function_environment(endpoint, api_url)
    del environment["POSTLINE_APP_EVENTS"]  # a deployment's default, not the local stack's "all"
    # A warm container re-reads a template's active pointer every 30 s, one read for all the messages of those
    # 30 s: not a call per email. Kept for the whole run, so a slow machine does not count it in one scenario.
    environment["POSTLINE_TEMPLATE_POINTER_TTL_SECONDS"] = "3600"
    os.environ.update(environment)
    session = boto3.session.Session()
    resources.create_resources(session, endpoint, api_url, workdir)
    publish_samples()
    sqs, events, sns = session.client("sqs"), session.client("events"), session.client("sns")
    modules = {name: load_handler_module(name)
               for name in ("render", "send", "ses_events", "track_open", "track_click")}
    log_bytes = LogBytes()
    for handler in logging.getLogger(environment.get("POWERTOOLS_SERVICE_NAME", "postline")).handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log_bytes)

    def receive(queue_name: str, count: int) -> list[dict]:
        messages: list[dict] = []
        deadline = time.time() + 30
        while len(messages) < count and time.time() < deadline:
            answer = sqs.receive_message(QueueUrl=resources.queue_url(endpoint, queue_name), MaxNumberOfMessages=10,
                                         AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=1)
            messages += answer.get("Messages", [])
        return messages

    def invoke_sqs(function: str, queue_name: str, messages: list[dict]) -> dict:
        """The handler, as the event source mapping calls it (its receive and delete are Lambda's, not counted
        here; the cost model counts them as SQS requests)."""
        event = {"Records": [lambda_sqs_record(m, queue_name) for m in messages]}
        answer = modules[function].handler(event, LambdaContext(function)) or {}
        failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        finished.append((queue_name, [{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]}
                                      for m in messages if m["MessageId"] not in failed]))
        return {"failed": len(failed)}

    finished: list[tuple[str, list[dict]]] = []

    def delete_finished() -> None:
        while finished:
            queue_name, done = finished.pop()
            if done:
                sqs.delete_message_batch(QueueUrl=resources.queue_url(endpoint, queue_name), Entries=done)

    def phase(label: str, name: str, action) -> dict:
        log_before, lines_before = log_bytes.count, log_bytes.lines
        cpu_before = time.process_time()
        wall_before = time.perf_counter()
        with recorder.counting(f"{label}/{name}"):
            outcome = action()
        cpu = time.process_time() - cpu_before
        delete_finished()
        return {"cpu_s": cpu, "wall_s": time.perf_counter() - wall_before, "log_bytes": log_bytes.count - log_before,
                "log_lines": log_bytes.lines - lines_before,
                "calls": dict(recorder.calls[f"{label}/{name}"]), "outcome": outcome,
                "requests": recorder.requests[f"{label}/{name}"]}

    figures: dict[str, Any] = {}
    sent_lines = 0
    for round_, (label, template, stream, count) in enumerate(SCENARIOS * 2):
        # The first round warms what a warm container has warmed (botocore's operation models, first-call
        # paths); the second round's figures are kept.
        if round_ >= len(SCENARIOS):
            for key in list(recorder.calls):
                if key.startswith(label + "/"):
                    recorder.calls.pop(key)
                    recorder.requests.pop(key, None)
        # Warm containers: templates compiled and keys loaded, as after the first invocation.
        modules["render"].render_context.templates.resolve([(template, None)])
        modules["render"].render_context.keys.sign("o", "warm")
        inbound, send_queue = resources.INBOUND_QUEUES[stream], resources.SEND_QUEUES[stream]
        keys_of = {}
        inbound_bytes = 0
        for i in range(count):
            key = f"{label[:4]}-{i}-{time.time_ns()}"
            keys_of[key] = f"reader{i}.{stream}@example.com"
            body = {"template": template, "to": keys_of[key], "data": example(template), "id": key}
            if stream == "marketing":
                body["campaign"] = "bench"
            inbound_bytes += len(json.dumps(body).encode())
            sqs.send_message(QueueUrl=resources.queue_url(endpoint, inbound), MessageBody=json.dumps(body))
        phases: dict[str, dict] = {}
        inbound_messages = receive(inbound, count)
        phases["render"] = phase(label, "render", lambda inbound=inbound, inbound_messages=inbound_messages:
                                 invoke_sqs("render", inbound, inbound_messages))
        send_messages = receive(send_queue, count)
        phases["send"] = phase(label, "send", lambda send_queue=send_queue, send_messages=send_messages:
                               invoke_sqs("send", send_queue, send_messages))
        phases["send"]["sqs_bytes_in"] = sum(len(m["Body"].encode()) for m in send_messages)

        # What SES publishes for these sends. On the SNS route: every event but Send (the Deliveries here) to the
        # topic, which delivers them to the events queue. On the EventBridge route: the Send events at once, the
        # Deliveries a second or so later; the rules route them as in AWS, and the Send events' queue holds them
        # back, so the Deliveries are applied first.
        lines = send_log.read_text().splitlines()[sent_lines:]
        sent_lines += len(lines)
        entries = [json.loads(line) for line in lines]
        kinds = (("Delivery", resources.EVENTS_QUEUE),) if route == "sns" else (
            ("Delivery", resources.EVENTS_QUEUE), ("Send", resources.SEND_EVENTS_QUEUE))
        for kind, queue_name in kinds:
            if route == "sns":
                put = [event for entry in entries for event in by_sns(entry)]
                refused = publish_to_topic(sns, put)
            else:
                put = [event for entry in entries for event in events_for(entry) if event["eventType"] == kind]
                refused = put_on_bus(events, put)
            if refused:
                raise RuntimeError(f"the local {route} route refused SES events: {refused}")
            published = len(put)
            event_messages = receive(queue_name, published)
            if len(event_messages) != published:
                raise RuntimeError(f"{kind} events: {len(event_messages)} of {published} reached {queue_name}")
            batches = [event_messages[i:i + 10] for i in range(0, len(event_messages), 10)]
            phases[f"ses_events {kind}"] = phase(label, f"ses_events {kind}",
                                                 lambda queue_name=queue_name, batches=batches: [
                                                     invoke_sqs("ses_events", queue_name, batch) for batch in batches])
            phases[f"ses_events {kind}"]["events"] = published
            phases[f"ses_events {kind}"]["sns_publishes"] = published if route == "sns" else 0
            phases[f"ses_events {kind}"]["batches"] = len(batches)
            phases[f"ses_events {kind}"]["sqs_bytes_in"] = sum(len(m["Body"].encode()) for m in event_messages)

        # Opens and clicks on the first email, through the HTTP API handlers (figures per hit).
        from postline.contract import message_id_for
        from postline.tokens import CLICK, OPEN

        keyring = modules["track_open"].engagement.keys
        first_id = message_id_for(next(iter(keys_of)))
        for function, kind, prefix, target in (("track_open", OPEN, "o", None),
                                               ("track_click", CLICK, "c", "https://example.com/article")):
            module = modules[function]
            module.handler(api_event("GET", f"/{prefix}/warm", {"user-agent": HUMAN_AGENT}, b"",
                                     f"/{prefix}/{{token}}", {"token": "warm"}, "127.0.0.1"), LambdaContext(function))
            token = keyring.sign(kind, first_id, target)
            event = api_event("GET", f"/{prefix}/{token}", {"user-agent": HUMAN_AGENT}, b"", f"/{prefix}/{{token}}",
                              {"token": token}, "127.0.0.1")
            # Several hits, so one slow moment of the machine does not decide the CPU per hit.
            phases[function] = phase(label, function,
                                     lambda module=module, event=event, function=function: [
                                         module.handler(event, LambdaContext(function))["statusCode"]
                                         for _ in range(TRACKING_HITS)][-1])
            phases[function]["hits"] = TRACKING_HITS

        pipeline_calls = Counter()
        for name in ("render", "send"):
            pipeline_calls.update(phases[name]["calls"])
        total = sum(pipeline_calls.values())
        figures[label] = {
            "emails": count, "stream": stream, "template": template, "inbound_bytes_per_email": inbound_bytes / count,
            "ses_event_route": route,
            "calls": dict(sorted(pipeline_calls.items())), "total": total, "per_email": total / count,
            "phases": {name: {k: v for k, v in row.items() if k != "requests"}
                             | {"requests": _summarise(row["requests"])}
                       for name, row in phases.items()},
            "message_item_bytes": _message_item_bytes(session, environment["POSTLINE_MESSAGES_TABLE"],
                                                      [message_id_for(k) for k in keys_of]),
            "mime_bytes": [len(_mime_as_queued(m["Body"])) for m in send_messages],
        }
    return figures


def _forget_earlier_endpoints() -> None:
    """What a cold start builds once per container (the clients, the settings, PynamoDB's connections) holds the
    endpoint of an earlier measure() in this process: built again for this one, as a new container would."""
    from postline import clients, settings
    from postline.models import ALL_MODELS

    clients.client.cache_clear()
    clients._session.cache_clear()
    settings.get_settings.cache_clear()
    for model in ALL_MODELS:
        model._connection = None


def _mime_as_queued(body: str) -> str:
    """The MIME as the send queue carries it (deflated and base64-encoded since format 2)."""
    document = json.loads(body)
    return document.get("mime_z") or document.get("mime") or ""


def _summarise(requests: list[tuple[str, dict]]) -> list[dict]:
    """What the cost model needs from each request: items per transaction by kind and table, keys per read,
    bytes per queue write."""
    from postline_cli.local.aws_endpoint import parse_insert

    out = []
    for operation, params in requests:
        row: dict[str, Any] = {"op": operation}
        if operation == "dynamodb.TransactWriteItems":
            row["items"] = [{"kind": kind, "table": body["TableName"],
                             "bytes": _item_bytes(body.get("Item") or body.get("Key") or {})}
                            for item in params["TransactItems"] for kind, body in item.items()]
        elif operation == "dynamodb.BatchGetItem":
            row["keys"] = {table: len(request["Keys"]) for table, request in params["RequestItems"].items()}
            row["consistent"] = [table for table, request in params["RequestItems"].items()
                                 if request.get("ConsistentRead")]
        elif operation == "dynamodb.BatchExecuteStatement":  # PartiQL INSERTs: the items, named in the statement
            row["items"] = [{"table": table, "bytes": _item_bytes(item)}
                            for table, item in map(parse_insert, params["Statements"])]
        elif operation == "dynamodb.BatchWriteItem":
            row["items"] = [{"table": table, "bytes": _item_bytes(w.get("PutRequest", {}).get("Item", {}))}
                            for table, writes in params["RequestItems"].items() for w in writes]
        elif operation in ("dynamodb.PutItem", "dynamodb.GetItem", "dynamodb.UpdateItem", "dynamodb.Query",
                           "dynamodb.DeleteItem"):
            row["table"] = params.get("TableName")
            if "Item" in params:
                row["bytes"] = _item_bytes(params["Item"])
        elif operation == "sqs.SendMessageBatch":
            row["bytes"] = sum(len(e["MessageBody"].encode()) for e in params["Entries"])
            row["messages"] = len(params["Entries"])
        elif operation == "sqs.SendMessage":
            row["bytes"] = len(params["MessageBody"].encode())
        elif operation == "sesv2.SendEmail":
            row["bytes"] = len(params["Content"]["Raw"]["Data"])
        elif operation == "events.PutEvents":
            row["entries"] = len(params["Entries"])
            row["bytes"] = sum(len(json.dumps(e, default=str).encode()) for e in params["Entries"])
        out.append(row)
    return out


def _item_bytes(item: dict) -> int:
    """DynamoDB's item size: attribute name lengths plus value sizes (strings as UTF-8, numbers about
    1 byte per 2 digits + 1, maps and lists 3 bytes + their contents)."""

    def value_size(value: dict) -> int:
        (kind, inner), = value.items()
        if kind in ("S", "B"):
            return len(inner.encode() if isinstance(inner, str) else inner)
        if kind == "N":
            return (len(str(inner).replace(".", "").replace("-", "")) + 1) // 2 + 1
        if kind == "BOOL" or kind == "NULL":
            return 1
        if kind == "M":
            return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
        if kind == "L":
            return 3 + sum(value_size(v) + 1 for v in inner)
        return len(json.dumps(inner))

    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def _message_item_bytes(session, table: str, message_ids: list[str]) -> list[int]:
    dynamodb = session.client("dynamodb")
    sizes = []
    for message_id in message_ids:
        item = dynamodb.get_item(TableName=table, Key={"message_id": {"S": message_id}}).get("Item")
        if item:
            sizes.append(_item_bytes(item))
    return sizes


if __name__ == "__main__":
    result = measure()
    for label, row in result.items():
        print(label, row["per_email"], row["calls"])
        for name, p in row["phases"].items():
            print(f"   {name:<22} cpu {p['cpu_s'] * 1000:7.1f} ms  log {p['log_bytes']:6d} B  {p['calls']}")
        print("   message items", row["message_item_bytes"][:3], "mime", row["mime_bytes"][:3])
