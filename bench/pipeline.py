"""Pipeline figures on the local stack: AWS calls per email, one critical email's latency, newsletter throughput.

AWS calls are counted with a botocore ``before-call`` hook on the clients the real render and send stages use,
against the local endpoint (moto server over HTTP). Latency and throughput are measured on the whole local
stack started as a user starts it, from SendMessage to the ``.eml`` file in the outbox.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
POSTLINE = str(Path(sys.executable).parent / "postline")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def example(name: str) -> dict:
    return json.loads((ROOT / "templates" / name / "example.json").read_text())


class CallCounter:
    def __init__(self):
        self.calls: Counter[str] = Counter()

    def attach(self, client):
        client.meta.events.register("before-call.*.*", self._count)
        return client

    def _count(self, model, **_):
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1


def calls_per_email() -> dict:
    """Render + send for a batch of 10 marketing emails and for one critical email, with counted clients."""
    from postline.batch import QueueRecord
    from postline.render import RenderContext, render_batch
    from postline.send import SendContext, send_batch
    from postline.settings import settings_from_environ
    from postline_cli.local import resources
    from postline_cli.local.runner import lambda_sqs_record
    from postline_cli.local.stack import publish_samples

    workdir = Path(tempfile.mkdtemp(prefix="postline-bench-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "postline_cli.local.aws_endpoint", "--port", str(port),
                               "--outbox", str(workdir / "outbox"), "--send-log", str(workdir / "send.jsonl")])
    try:
        _wait_port(port)
        environment = resources.function_environment(endpoint, "http://127.0.0.1:3000")
        os.environ.update(environment)
        session = boto3.session.Session()
        resources.create_resources(session, endpoint, "http://127.0.0.1:3000", str(workdir))
        publish_samples()
        settings = settings_from_environ(environment)
        sqs = session.client("sqs")
        figures = {}
        for label, template, stream, count in (("marketing, batch of 10", "newsletter", "marketing", 10),
                                               ("critical, one email", "password-reset", "critical", 1)):
            counter = CallCounter()
            clients = {name: counter.attach(session.client(name)) for name in
                       ("dynamodb", "sqs", "s3", "secretsmanager", "sesv2")}
            render = RenderContext(settings, dynamodb=clients["dynamodb"], sqs=clients["sqs"], s3=clients["s3"],
                                   secrets=clients["secretsmanager"])
            send = SendContext(settings, dynamodb=clients["dynamodb"], sqs=clients["sqs"], s3=clients["s3"],
                               sesv2=clients["sesv2"])
            # Warm: templates cached and keys loaded, as in a warm container.
            render.templates.resolve([(template, None)])
            render.keys  # noqa: B018
            counter.calls.clear()
            inbound = resources.INBOUND_QUEUES[stream]
            for i in range(count):
                sqs.send_message(QueueUrl=resources.queue_url(endpoint, inbound), MessageBody=json.dumps(
                    {"template": template, "to": f"reader{i}-{label[:4]}@example.com", "data": example(template)}))
            render_batch(_receive(sqs, endpoint, inbound, count, lambda_sqs_record, QueueRecord), render)
            send_batch(_receive(sqs, endpoint, resources.SEND_QUEUES[stream], count, lambda_sqs_record,
                                QueueRecord), send)
            total = sum(counter.calls.values())
            figures[label] = {"calls": dict(counter.calls), "total": total, "per_email": total / count}
        return figures
    finally:
        server.terminate()
        server.wait()


def _receive(sqs, endpoint, queue_name, count, lambda_sqs_record, QueueRecord):
    from postline_cli.local import resources

    records = []
    while len(records) < count:
        answer = sqs.receive_message(QueueUrl=resources.queue_url(endpoint, queue_name), MaxNumberOfMessages=10,
                                     AttributeNames=["All"], WaitTimeSeconds=1)
        records += [QueueRecord.from_event_record(lambda_sqs_record(m, queue_name)) for m in answer.get("Messages", [])]
    return records


def _wait_port(port: int, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the local endpoint did not start")


class RunningStack:
    """The whole local stack in the background, on free ports, with its own outbox."""

    def __enter__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="postline-bench-stack-"))
        self.aws_port, self.api_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.aws_port}"
        self.outbox = self.dir / "outbox"
        self.env = dict(os.environ, POSTLINE_LOCAL_DIR=str(self.dir / "state"), POSTLINE_OUTBOX=str(self.outbox),
                        AWS_ENDPOINT_URL=self.endpoint, AWS_DEFAULT_REGION="us-east-1",
                        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        subprocess.run([POSTLINE, "local", "up", "--detach", "--aws-port", str(self.aws_port), "--api-port",
                        str(self.api_port)], env=self.env, check=True, capture_output=True)
        self.sqs = boto3.client("sqs", endpoint_url=self.endpoint, region_name="us-east-1",
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        return self

    def __exit__(self, *_):
        subprocess.run([POSTLINE, "local", "down"], env=self.env, capture_output=True)

    def queue(self, name: str) -> str:
        return self.sqs.get_queue_url(QueueName=name)["QueueUrl"]


def critical_latency(stack: RunningStack, samples: int = 15) -> dict:
    queue = stack.queue("postline-critical")
    timings = []
    for i in range(samples):
        key = f"latency-{i}-{time.time_ns()}"
        from postline.contract import message_id_for

        target = stack.outbox / f"{message_id_for(key)}.eml"
        started = time.perf_counter()
        stack.sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(
            {"id": key, "template": "password-reset", "to": f"user{i}@example.com", "data": example("password-reset")}))
        while not target.exists():
            time.sleep(0.002)
        timings.append(time.perf_counter() - started)
        time.sleep(0.3)  # idle between samples
    timings.sort()
    return {"samples": samples, "median_s": statistics.median(timings), "p90_s": timings[int(0.9 * (samples - 1))],
            "min_s": timings[0], "max_s": timings[-1]}


def newsletter_throughput(stack: RunningStack, emails: int = 1000) -> dict:
    queue = stack.queue("postline-marketing")
    data = example("newsletter")
    before = len(list(stack.outbox.glob("*.eml")))
    started = time.perf_counter()
    for start in range(0, emails, 10):
        stack.sqs.send_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(i), "MessageBody": json.dumps({"id": f"nl-{started}-{i}", "template": "newsletter",
                                                      "to": f"reader{i}@example.com", "data": data,
                                                      "campaign": "bench"})}
            for i in range(start, min(start + 10, emails))])
    enqueued = time.perf_counter() - started
    deadline = time.time() + 1800
    while len(list(stack.outbox.glob("*.eml"))) - before < emails and time.time() < deadline:
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    delivered = len(list(stack.outbox.glob("*.eml"))) - before
    return {"emails": emails, "in_outbox": delivered, "seconds": elapsed, "emails_per_second": delivered / elapsed,
            "enqueue_seconds": enqueued}
