"""Figures on the whole local stack, started as a user starts it (``postline local up --detach``) on free ports
with its own outbox: newsletter throughput against the local floor, and one critical email's latency, idle and
while a marketing backlog drains.

Floor for throughput: bare SESv2 SendEmail calls per second against the same local endpoint, from a thread pool
as wide as the send function's (``POSTLINE_SEND_CONCURRENCY``), with a raw MIME of the newsletter's size,
measured in the same run just before and just after the newsletter (``bench.__main__`` averages the two). It is
what the endpoint alone can accept; everything postline adds (render, the queues, claims, status writes, SES
events) comes on top.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

from .support import ROOT, example, free_port

POSTLINE = str(Path(sys.executable).parent / "postline")


class RunningStack:
    """The whole local stack in the background, on free ports, with its own outbox."""

    def __init__(self, ses_route: str = "sns"):
        self.ses_route = ses_route  # how SES's events reach postline (local up --ses-route)

    def __enter__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="postline-bench-stack-"))
        self.aws_port, self.api_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.aws_port}"
        self.outbox = self.dir / "outbox"
        # The local SES's sending limits far above anything this section reaches (it measures postline's own
        # pipeline and the endpoint's floor, not an SES account's rate: bench.rate does that at 50/s). At the
        # default 14/s the floor's bare SendEmail calls would be throttled and the newsletter held to 14/s.
        self.env = dict(os.environ, POSTLINE_LOCAL_DIR=str(self.dir / "state"), POSTLINE_OUTBOX=str(self.outbox),
                        AWS_ENDPOINT_URL=self.endpoint, AWS_DEFAULT_REGION="us-east-1",
                        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                        POSTLINE_LOCAL_SES_RATE="10000", POSTLINE_LOCAL_SES_QUOTA="10000000")
        subprocess.run([POSTLINE, "local", "up", "--detach", "--aws-port", str(self.aws_port), "--api-port",
                        str(self.api_port), "--ses-route", self.ses_route], env=self.env, check=True,
                       capture_output=True)
        from botocore.config import Config

        config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 10})
        self.session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                             region_name="us-east-1")
        self.sqs = self.session.client("sqs", endpoint_url=self.endpoint, config=config)
        self.sesv2 = self.session.client("sesv2", endpoint_url=self.endpoint, config=config)
        return self

    def __exit__(self, *_):
        subprocess.run([POSTLINE, "local", "down"], env=self.env, capture_output=True)

    def endpoint_cpu_seconds(self) -> float | None:
        """CPU time the local AWS endpoint's process has used so far (Linux's /proc; None elsewhere)."""
        state = json.loads((self.dir / "state" / "local.json").read_text())
        try:
            fields = Path(f"/proc/{state['endpoint_pid']}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def queue(self, name: str) -> str:
        return self.sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def delivered(self, prefix: str = "m") -> int:
        """Emails of postline's in the outbox (named by message id); the floor's are named otherwise."""
        with os.scandir(self.outbox) as entries:
            return sum(1 for e in entries if e.name.startswith(prefix) and e.name.endswith(".eml"))

    def wait_idle(self, timeout: float = 600) -> None:
        """Until every queue is empty (the SES events of earlier sends included)."""
        urls = [self.queue(n) for n in ("postline-marketing", "postline-critical", "postline-send-marketing",
                                        "postline-send-critical", "postline-ses-events")]
        deadline = time.time() + timeout
        quiet = 0
        while time.time() < deadline and quiet < 3:
            busy = 0
            for url in urls:
                attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
                busy += (int(attributes["ApproximateNumberOfMessages"])
                         + int(attributes["ApproximateNumberOfMessagesNotVisible"]))
            quiet = quiet + 1 if busy == 0 else 0
            time.sleep(0.5)


def newsletter_mime() -> bytes:
    """A rendered newsletter as postline builds it (same size and shape as the throughput run's emails)."""
    from postline.mime import build_mime
    from postline.templates import CompiledTemplate
    from postline.tokens import KeyRing
    from postline.tracking import add_tracking
    from postline_cli.publish import load_template_dir, prepare

    from .cpu import BASE_URL, KEYRING_SECRET

    item = prepare(load_template_dir(ROOT / "templates" / "newsletter"), "bench")
    rendered = CompiledTemplate.compile(item).render(example("newsletter"), {"unsubscribe_url": f"{BASE_URL}/u/x"})
    html = add_tracking(rendered.html, "mfloor", KeyRing.from_secret(KEYRING_SECRET), BASE_URL)
    return build_mime(sender="Postline Demo <hello@mail.example.com>", recipient="reader@example.com",
                      subject=rendered.subject, text=rendered.text, html=html)


def send_floor(stack: RunningStack, emails: int, width: int) -> dict:
    """Bare SendEmail calls per second against the stack's endpoint, ``width`` at a time."""
    mime = newsletter_mime()

    def one(i: int) -> None:
        stack.sesv2.send_email(FromEmailAddress="Postline Demo <hello@mail.example.com>",
                               Destination={"ToAddresses": [f"floor{i}@example.com"]},
                               Content={"Raw": {"Data": mime}}, ConfigurationSetName="postline-marketing",
                               EmailTags=[{"Name": "postline_message_id", "Value": f"floor-{i}"}])

    with ThreadPoolExecutor(max_workers=width) as pool:
        list(pool.map(one, range(min(20, emails))))  # connections open, first-call paths warm
        started = time.perf_counter()
        list(pool.map(one, range(20, 20 + emails)))
        elapsed = time.perf_counter() - started
    return {"emails": emails, "width": width, "seconds": elapsed, "emails_per_second": emails / elapsed,
            "mime_bytes": len(mime)}


def enqueue_newsletter(stack: RunningStack, emails: int, tag: str) -> float:
    """Put the newsletter on the marketing queue (batches of 10, 4 writers, as a campaign fan-out would)."""
    queue = stack.queue("postline-marketing")
    data = example("newsletter")

    def batch(start: int) -> None:
        stack.sqs.send_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(i), "MessageBody": json.dumps({"id": f"{tag}-{i}", "template": "newsletter",
                                                      "to": f"reader{i}@example.com", "data": data,
                                                      "campaign": tag})}
            for i in range(start, min(start + 10, emails))])

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(batch, range(0, emails, 10)))
    return time.perf_counter() - started


def newsletter_throughput(stack: RunningStack, emails: int) -> dict:
    before = stack.delivered()
    started = time.perf_counter()
    enqueue_seconds = enqueue_newsletter(stack, emails, f"nl{int(started)}")
    deadline = time.time() + max(600, emails)
    delivered = 0
    while time.time() < deadline:
        delivered = stack.delivered() - before
        if delivered >= emails:
            break
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    return {"emails": emails, "in_outbox": delivered, "seconds": elapsed, "emails_per_second": delivered / elapsed,
            "enqueue_seconds": enqueue_seconds}


def _critical_once(stack: RunningStack, queue: str, key: str, to: str) -> float:
    from postline.contract import message_id_for

    target = stack.outbox / f"{message_id_for(key)}.eml"
    started = time.perf_counter()
    stack.sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(
        {"id": key, "template": "password-reset", "to": to, "data": example("password-reset")}))
    deadline = time.time() + 120
    while not target.exists() and time.time() < deadline:
        time.sleep(0.002)
    return time.perf_counter() - started


def _summary(timings: list[float]) -> dict:
    timings = sorted(timings)
    n = len(timings)
    return {"samples": n, "median_s": statistics.median(timings), "p90_s": timings[int(0.9 * (n - 1))],
            "p99_s": timings[min(n - 1, int(round(0.99 * (n - 1))))], "min_s": timings[0], "max_s": timings[-1]}


def critical_latency(stack: RunningStack, samples: int = 15) -> dict:
    """One critical email, SendMessage to the .eml in the outbox, on an idle stack."""
    queue = stack.queue("postline-critical")
    timings = []
    for i in range(samples):
        timings.append(_critical_once(stack, queue, f"latency-{i}-{time.time_ns()}", f"user{i}@example.com"))
        time.sleep(0.3)  # idle between samples
    return _summary(timings)


def critical_latency_under_backlog(stack: RunningStack, backlog: int, samples: int = 30) -> dict:
    """Critical emails, SendMessage to the .eml, sent one every 0.5 s while a marketing backlog of ``backlog``
    emails drains; with the idle figure of the same run as its floor."""
    queue = stack.queue("postline-critical")
    before = stack.delivered()
    tag = f"bl{int(time.time())}"
    enqueue_newsletter(stack, backlog, tag)
    timings = []
    for i in range(samples):
        timings.append(_critical_once(stack, queue, f"{tag}-critical-{i}", f"urgent{i}@example.com"))
        time.sleep(0.5)
    drained = stack.delivered() - before - samples
    figure = _summary(timings)
    figure.update({"backlog": backlog, "marketing_delivered_meanwhile": drained})
    return figure
