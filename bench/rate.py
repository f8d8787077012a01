"""The shared sending-rate limiter on the whole local stack, against a local SES that refuses what SES refuses
(``postline_cli.local.aws_endpoint``: a sliding one-second window at ``--ses-rate``, ThrottlingException
"Maximum sending rate exceeded."). The real handlers and the real limiter (``postline.limiter``) run in the
stack's worker processes, as ``postline local up`` runs them; every figure is computed from what the endpoint
logged: its send log (each accepted send with its acceptance time and tags), ``ses-refusals.jsonl`` (each refusal)
and ``endpoint-pauses.jsonl`` (its own garbage-collection stops).

Scenario A, postline the only sender: a marketing backlog (``--rate-backlog``, 10,000 by default) put on the
inbound marketing queue at once, and one critical email (password-reset) every 2 s while it drains. Scenario B,
another sender on the same SES account taking 30 % of the rate (``OUTSIDE_SHARE``, from this process, straight to
SESv2 SendEmail, no configuration set, never retried) while a smaller backlog drains. Before both, the critical
latency on the idle stack (20 emails, one a second) as the floor of the critical figure.

The stack runs in a child process of its own (``LocalStack.run`` as ``postline local up`` calls it, each function
in its worker process, its output in ``stack.log`` of the run's folder) so that this process's enqueuing and outside
sender do not compete with the stack for the interpreter lock; the child answers over a pipe the send function's
limiter writes (its DynamoDB writes, from the send worker's figures file) and the shared adaptive slow-down, read
from the rate table every half second (so that the utilisation can be told apart: slots the limiter held back after
SES's throttles, and slots it offered that the send pollers did not take in time).
"""
from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from postline_cli.local.aws_endpoint import PAUSE_LOG

from .pipeline import enqueue_newsletter
from .support import example, free_port

SES_RATE = 50.0  # the local SES's maximum sending rate in this section (the issue's; --rate-ses-rate changes it)
# The 24-hour quota is set far above what the section sends, so that only the rate holds mail back.
SES_QUOTA = 1_000_000
OUTSIDE_SHARE = 0.3  # scenario B: another application on the account takes 30 % of the rate
# Left out of the utilisation: the ramp-up, until this long after the backlog is all on its queue and SES has
# accepted its first email (the enqueuing, 1,000 SendMessageBatch calls for 10,000 emails, takes the endpoint's
# CPU for several seconds, and the first batches are rendered and claimed).
RAMP_UP_SECONDS = 5.0
# The harness's own reads go to the endpoint that serves postline (one process): sampled no more often than the
# figures need (a throttle's slow-down recovers over tens of seconds), so they take little of its time.
FACTOR_SAMPLE_SECONDS = 0.5
CRITICAL_EVERY_SECONDS = 2.0
IDLE_CRITICAL = 20
WATCHED_QUEUES = ("postline-marketing", "postline-critical", "postline-send-marketing", "postline-send-critical",
                  "postline-ses-events", "postline-ses-send-events")


# -- the stack, in a child process ---------------------------------------------------------------------------------

def _serve_stack(conn, state_dir: str, outbox: str, aws_port: int, api_port: int, rate: float, quota: int,
                 send_pollers: int, log_path: str) -> None:
    """The child: the local stack as ``postline local up`` runs it (each function in its worker process),
    answering "writes" (the send function's limiter writes so far, from its worker's figures) and "factors" (the
    shared adaptive slow-down, read from the rate table every FACTOR_SAMPLE_SECONDS, as every sending function reads
    it) until told "stop"."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)  # the functions' logs (and the endpoint's, which inherits them) to stack.log
    os.dup2(log, 2)
    from postline_cli.local.resources import TABLES
    from postline_cli.local.stack import LocalPaths, LocalStack
    from postline_cli.local.worker import stats_file

    paths = LocalPaths(Path(state_dir), Path(outbox))
    stack = LocalStack(paths, aws_port, api_port, send_pollers=send_pollers, log_batches=False, ses_rate=rate,
                       ses_quota=quota)

    def on_ready(_queues) -> None:
        from postline.limiter import recovered

        dynamodb = boto3.session.Session().client("dynamodb")  # the stack's environment: its endpoint
        table, send_stats = TABLES["POSTLINE_RATE_LIMITS_TABLE"], stats_file(str(paths.clock_file), "send")
        factors: list[tuple[float, float]] = []  # (when, the adaptive slow-down in force)

        def watch_factor() -> None:
            while True:
                item = dynamodb.get_item(TableName=table, Key={"bucket": {"S": "rate#adaptive"},
                                                               "window": {"S": "state"}}).get("Item")
                now = time.time()
                factors.append((now, recovered(float(item["factor"]["N"]), float(item["at"]["N"]), now)
                                if item else 1.0))
                time.sleep(FACTOR_SAMPLE_SECONDS)

        def figures() -> dict:
            try:
                return json.loads(send_stats.read_text())
            except FileNotFoundError:  # the send worker has not written its figures yet: nothing done
                return {"limiter_writes": 0, "held_for_lateness": 0}

        def serve() -> None:
            while True:
                try:
                    request = conn.recv()
                except EOFError:
                    request = "stop"
                if request == "figures":
                    time.sleep(0.6)  # the worker writes its figures every 0.5 s
                    conn.send(figures())
                elif request == "factors":
                    conn.send(list(factors))
                else:
                    os.kill(os.getpid(), signal.SIGTERM)  # as `postline local down` stops it
                    return

        threading.Thread(target=watch_factor, daemon=True).start()
        threading.Thread(target=serve, daemon=True).start()
        conn.send("ready")

    stack.run(on_ready)


class RateStack:
    """The local stack with the local SES at ``rate``, on free ports, in a child process."""

    def __init__(self, rate: float = SES_RATE, quota: int = SES_QUOTA, send_pollers: int = 2):
        self.rate, self.quota, self.send_pollers = rate, quota, send_pollers

    def __enter__(self) -> RateStack:
        self.dir = Path(tempfile.mkdtemp(prefix="postline-bench-rate-"))
        self.state_dir, self.outbox = self.dir / "state", self.dir / "outbox"
        self.send_log = self.state_dir / "ses-send-log.jsonl"
        self.refusal_log = self.state_dir / "ses-refusals.jsonl"
        aws_port, api_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{aws_port}"
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve_stack, name="postline-local-stack", args=(
            child, str(self.state_dir), str(self.outbox), aws_port, api_port, self.rate, self.quota,
            self.send_pollers, str(self.dir / "stack.log")))
        self.process.start()
        if not self.conn.poll(180) or self.conn.recv() != "ready":
            self._stop()
            raise RuntimeError(f"the local stack did not start; see {self.dir / 'stack.log'}")
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                        region_name="us-east-1")
        config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 10})
        self.sqs = session.client("sqs", endpoint_url=self.endpoint, config=config)
        self.dynamodb = session.client("dynamodb", endpoint_url=self.endpoint, config=config)
        # The outside sender's client: never retried, so that each refusal is counted as SES gave it.
        self.sesv2 = session.client("sesv2", endpoint_url=self.endpoint, config=Config(
            max_pool_connections=8, retries={"mode": "standard", "total_max_attempts": 1}))
        self.sends = LogTail(self.send_log)
        self.refusals = LogTail(self.refusal_log)
        self.pauses = LogTail(self.state_dir / PAUSE_LOG)
        return self

    def __exit__(self, *_) -> None:
        self._stop()

    def _stop(self) -> None:
        try:
            self.conn.send("stop")
        except OSError:
            pass
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()  # SIGTERM to the child we started: LocalStack stops its endpoint
            self.process.join(15)

    def limiter_figures(self) -> dict:
        """The send worker's limiter: its DynamoDB writes and the sends it held back for lateness, so far."""
        self.conn.send("figures")
        return self.conn.recv()

    def limiter_since(self, before: dict) -> tuple[int, int]:
        """The limiter's DynamoDB writes and sends held for lateness since ``limiter_figures()`` gave ``before``."""
        after = self.limiter_figures()
        return (after["limiter_writes"] - before["limiter_writes"],
                after["held_for_lateness"] - before["held_for_lateness"])

    def factors(self) -> list[tuple[float, float]]:
        """The send function's adaptive slow-down (1: none) as sampled: (when, factor)."""
        self.conn.send("factors")
        return self.conn.recv()

    @functools.cache  # noqa: B019 - one stack per run: a URL asked for once, not with every sample
    def queue(self, name: str) -> str:
        return self.sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def depth(self, name: str) -> int:
        """Messages on a queue: visible, in flight and delayed (a job SES refused waits there, delayed)."""
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue(name), AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return sum(int(value) for value in attributes.values())

    def wait_idle(self, timeout: float = 600) -> None:
        deadline, quiet = time.time() + timeout, 0
        while time.time() < deadline and quiet < 3:
            quiet = quiet + 1 if sum(self.depth(name) for name in WATCHED_QUEUES) == 0 else 0
            time.sleep(0.5)

    def statuses(self, message_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """Each message's status and SES message id in the messages table (None, None: no record)."""
        found: dict[str, tuple[str | None, str | None]] = {}
        for start in range(0, len(message_ids), 100):
            keys = [{"message_id": {"S": m}} for m in message_ids[start:start + 100]]
            request = {"postline-messages": {"Keys": keys, "ConsistentRead": True,
                                             "ProjectionExpression": "message_id, #s, ses_message_id",
                                             "ExpressionAttributeNames": {"#s": "status"}}}
            while request:
                answer = self.dynamodb.batch_get_item(RequestItems=request)
                for item in answer["Responses"].get("postline-messages", []):
                    found[item["message_id"]["S"]] = (item.get("status", {}).get("S"),
                                                      item.get("ses_message_id", {}).get("S"))
                request = answer.get("UnprocessedKeys") or None
        return {m: found.get(m, (None, None)) for m in message_ids}


class LogTail:
    """A JSON-lines log the endpoint appends to, read as it grows (complete lines only)."""

    def __init__(self, path: Path):
        self.path, self.offset, self.entries = path, 0, []

    def read(self) -> list[dict]:
        if self.path.exists():
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
            end = data.rfind(b"\n") + 1
            self.offset += end
            self.entries += [json.loads(line) for line in data[:end].splitlines() if line.strip()]
        return self.entries

    def between(self, start: float, end: float) -> list[dict]:
        return [e for e in self.read() if start <= e["timestamp"] <= end]


def _tag(entry: dict, name: str) -> str | None:
    return (entry.get("tags") or {}).get(name)


# -- what is sent --------------------------------------------------------------------------------------------------

class Criticals(threading.Thread):
    """One critical email (password-reset) every ``every`` seconds until stopped (or ``count`` sent), each
    enqueued time kept by its postline message id."""

    def __init__(self, stack: RateStack, tag: str, every: float, count: int | None = None):
        super().__init__(name="bench-criticals", daemon=True)
        self.stack, self.tag, self.every, self.count = stack, tag, every, count
        self.enqueued: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        from postline.contract import message_id_for

        queue, data = self.stack.queue("postline-critical"), example("password-reset")
        due, i = time.time(), 0
        while not self.done.is_set() and (self.count is None or i < self.count):
            key = f"{self.tag}-critical-{i}"
            body = json.dumps({"id": key, "template": "password-reset", "to": f"urgent{i}@example.com", "data": data})
            at = time.time()
            self.stack.sqs.send_message(QueueUrl=queue, MessageBody=body)
            self.enqueued[message_id_for(key)] = at
            i += 1
            due += self.every
            self.done.wait(max(0.0, due - time.time()))


class OutsideSender(threading.Thread):
    """Another application on the same SES account: SESv2 SendEmail at ``rate`` a second, evenly spaced (each call
    on a small pool of its own, so a slow answer does not slow the pace), no configuration set, no postline tag,
    never retried; it counts its own acceptances and throttles."""

    def __init__(self, stack: RateStack, rate: float):
        super().__init__(name="bench-outside-sender", daemon=True)
        self.stack, self.rate = stack, rate
        self.accepted = self.throttled = self.other_errors = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def _send(self, i: int) -> None:
        try:
            self.stack.sesv2.send_email(
                FromEmailAddress="Other App <app@mail.example.com>",
                Destination={"ToAddresses": [f"customer{i}@example.org"]},
                Content={"Simple": {"Subject": {"Data": "Your receipt"}, "Body": {"Text": {"Data": "Thanks."}}}},
                EmailTags=[{"Name": "sender", "Value": "other-app"}])
            outcome = "accepted"
        except ClientError as error:
            outcome = "throttled" if error.response["Error"]["Code"] == "ThrottlingException" else "other_errors"
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="bench-outside") as pool:
            due, i = time.time(), 0
            while not self.done.is_set():
                pool.submit(self._send, i)
                i += 1
                due += 1 / self.rate
                if due < time.time() - 1:  # this process stalled for a second: no burst to catch up
                    due = time.time()
                self.done.wait(max(0.0, due - time.time()))


class QueueWatch(threading.Thread):
    """The marketing queues' depths every half second (whether render kept the send queue fed), and the machine's
    CPU time so far (whether the local stack had a core to spare: the endpoint, render, send and ses_events all
    run on this machine, where in AWS each has its own)."""

    def __init__(self, stack: RateStack):
        super().__init__(name="bench-queue-watch", daemon=True)
        self.stack, self.samples, self.done = stack, [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.samples.append((time.time(), self.stack.depth("postline-marketing"),
                                     self.stack.depth("postline-send-marketing"), *_cpu_jiffies()))
            except ClientError:
                pass
            self.done.wait(0.5)


def _wait_for_sends(stack: RateStack, wanted: set[str], timeout: float) -> None:
    """Until every message id in ``wanted`` has an accepted send in the send log (or the timeout)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        seen = {_tag(e, "postline_message_id") for e in stack.sends.read()}
        if wanted <= seen:
            return
        time.sleep(0.5)
    missing = len(wanted - {_tag(e, "postline_message_id") for e in stack.sends.read()})
    print(f"... timed out with {missing} emails not accepted by SES", file=sys.stderr, flush=True)


def _marketing_ids(tag: str, emails: int) -> list[str]:
    from postline.contract import message_id_for

    return [message_id_for(f"{tag}-{i}") for i in range(emails)]


# -- figures from the logs ------------------------------------------------------------------------------------------

def windows_over(times: list[float], rate: float) -> dict:
    """Accepted sends against the rate: the busiest calendar second and how many exceeded it; the busiest sliding
    one-second window (the sends in (t - 1 s, t] at each acceptance t, SES's own count) and how many sends
    found more than the rate before them."""
    times = sorted(times)
    per_second = Counter(int(t) for t in times)
    sliding_max, over, first = 0, 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= 1.0:
            first += 1
        count = last - first + 1
        sliding_max = max(sliding_max, count)
        over += count > rate
    return {"calendar_max": max(per_second.values(), default=0),
            "calendar_over": sum(1 for n in per_second.values() if n > rate),
            "sliding_max": sliding_max, "sliding_over": over}


def _percentiles(values: list[float]) -> dict:
    values = sorted(values)
    if not values:
        return {"samples": 0}
    n = len(values)
    return {"samples": n, "p50_s": statistics.median(values), "p99_s": values[min(n - 1, math.ceil(0.99 * n) - 1)],
            "max_s": values[-1]}


def _latencies(enqueued: dict[str, float], sends: list[dict]) -> dict[str, float]:
    """Seconds from enqueue to SES's acceptance, by postline message id (the first acceptance)."""
    accepted: dict[str, float] = {}
    for entry in sends:
        mid = _tag(entry, "postline_message_id")
        if mid in enqueued and mid not in accepted:
            accepted[mid] = entry["timestamp"]
    return {mid: accepted[mid] - at for mid, at in enqueued.items() if mid in accepted}


def utilisation(times: list[float], start: float, end: float, rate: float) -> dict:
    """Accepted sends per second over [start, end], against the rate; and per whole calendar second inside."""
    inside = [t for t in times if start <= t <= end]
    seconds = Counter(int(t) for t in inside)
    whole = [seconds.get(s, 0) for s in range(math.ceil(start), math.floor(end))]
    per_second = len(inside) / (end - start) if end > start else 0.0
    return {"from": start, "to": end, "seconds": end - start, "sends": len(inside), "per_second": per_second,
            "utilisation": per_second / rate,
            "calendar_seconds": {"min": min(whole, default=0), "median": statistics.median(whole) if whole else 0,
                                 "max": max(whole, default=0)}}


def while_answering(figure: dict, pauses: LogTail, rate: float) -> dict:
    """``utilisation``'s figure with the endpoint's own garbage-collection stops in its span added, and the rate used
    over the time left: moto holds every item, object and message in the endpoint's one process, so after thousands
    of emails a full collection stops it (and SES with it) for most of a second, which AWS never does."""
    inside = [e["seconds"] for e in pauses.between(figure["from"], figure["to"])]
    answering = figure["seconds"] - sum(inside)
    stops = {"count": len(inside), "seconds": sum(inside), "longest": max(inside, default=0.0)}
    return {**figure, "endpoint_pauses": stops,
            "utilisation_while_answering": figure["sends"] / answering / rate if answering > 0 else None}


def slowdown(samples: list[tuple[float, float]], start: float, end: float, rate: float, since: float) -> dict:
    """The limiter's own pace over [start, end]: its slots per second (``Windows`` at the adaptive slow-down in
    force, headroom taken off); and how often SES's throttles lowered it from ``since`` (the scenario's start)."""
    from postline.limiter import Windows

    inside = [factor for at, factor in samples if start <= at <= end]
    slots = [Windows.for_rate(rate, f).capacity * Windows.for_rate(rate, f).shards / Windows.for_rate(rate, f).length
             for f in inside]
    lowered = sum(1 for (at, before), (_, after) in pairwise(samples) if since <= at <= end and after < before)
    return {"slots_per_second": statistics.mean(slots) if slots else None, "full_slots_per_second":
            Windows.for_rate(rate).capacity * Windows.for_rate(rate).shards / Windows.for_rate(rate).length,
            "factor_mean": statistics.mean(inside) if inside else None, "factor_lowest": min(inside, default=None),
            "lowered": lowered}


def once_check(stack: RateStack, message_ids: list[str], sends: list[dict]) -> dict:
    """Every email sent exactly once: accepted sends per postline message id in the send log, and the record's
    status and SES message id in the messages table (sent, or delivered once SES's Delivery event is applied)."""
    accepted: dict[str, list[str]] = {}
    for entry in sends:
        mid = _tag(entry, "postline_message_id")
        if mid:
            accepted.setdefault(mid, []).append(entry["ses_message_id"])
    records = stack.statuses(message_ids)
    statuses = Counter(status for status, _ in records.values())
    lost = [m for m in message_ids if not accepted.get(m)]
    twice = [m for m in message_ids if len(accepted.get(m, ())) > 1]
    not_sent = [m for m, (status, _) in records.items() if status not in ("sent", "delivered")]
    mismatched = [m for m, (_, ses_id) in records.items() if accepted.get(m) and ses_id not in accepted[m]]
    return {"emails": len(message_ids), "lost": len(lost), "sent_twice": len(twice),
            "record_not_sent": len(not_sent), "record_ses_id_mismatch": len(mismatched),
            "statuses": dict(statuses), "accepted_sends_per_email": dict(Counter(len(accepted.get(m, ()))
                                                                                   for m in message_ids))}


# -- the scenarios ---------------------------------------------------------------------------------------------------

def _progress(what: str) -> None:
    print(f"... {what}", file=sys.stderr, flush=True)


def idle_critical(stack: RateStack, samples: int = IDLE_CRITICAL) -> dict:
    """Critical emails on the idle stack, one a second: enqueue to SES's acceptance."""
    tag = f"idle{int(time.time())}"
    criticals = Criticals(stack, tag, every=1.0, count=samples)
    started = time.time()
    criticals.start()
    criticals.join()
    _wait_for_sends(stack, set(criticals.enqueued), 120)
    latencies = _latencies(criticals.enqueued, stack.sends.between(started, time.time()))
    return _percentiles(list(latencies.values()))


def backlog_alone(stack: RateStack, emails: int) -> dict:
    """Scenario A: a marketing backlog and a critical email every 2 s, postline the only sender."""
    tag = f"rateA{int(time.time())}"
    before, started = stack.limiter_figures(), time.time()
    watch, criticals = QueueWatch(stack), Criticals(stack, tag, every=CRITICAL_EVERY_SECONDS)
    watch.start()
    criticals.start()
    enqueue_seconds = enqueue_newsletter(stack, emails, tag)
    enqueued = time.time()
    marketing = _marketing_ids(tag, emails)
    _wait_for_sends(stack, set(marketing), timeout=emails / stack.rate * 4 + 300)
    criticals.done.set()
    criticals.join()
    _wait_for_sends(stack, set(criticals.enqueued), 120)
    stack.wait_idle()
    watch.done.set()
    writes, held = stack.limiter_since(before)
    ended = time.time()

    factors = stack.factors()
    sends, refusals, first, last = _scenario_log(stack, marketing, started, ended)
    times = [e["timestamp"] for e in sends]
    during = {mid: at for mid, at in criticals.enqueued.items() if first <= at <= last}
    span = (max(first, enqueued) + RAMP_UP_SECONDS, last)
    latencies = _latencies(during, sends)
    postline_sends = sum(1 for e in sends if _tag(e, "postline_message_id"))
    render = _render_kept_up(watch.samples, *span, started)
    # Once render had emptied the inbound queue, send no longer shared the machine with it.
    alone_from = max(span[0], render["rendered_by"] or span[1])
    after_render = {**while_answering(utilisation(times, alone_from, span[1], stack.rate), stack.pauses, stack.rate),
                    "cpu_busy": machine_busy(watch.samples, alone_from, span[1])}
    return {"emails": emails, "criticals": len(criticals.enqueued), "criticals_during_backlog": len(during),
            "enqueue_seconds": enqueue_seconds, "drain_seconds": last - first,
            "utilisation": while_answering(utilisation(times, *span, stack.rate), stack.pauses, stack.rate),
            "whole_drain": utilisation(times, first, last, stack.rate),
            "limiter_pace": slowdown(factors, *span, stack.rate, started),
            "windows": windows_over(times, stack.rate), "throttles": len(refusals),
            "critical_backlog": _percentiles(list(latencies.values())),
            "limiter_writes": writes, "held_for_lateness": held, "postline_sends": postline_sends,
            "writes_per_email": writes / postline_sends,
            "render": render, "cpu_busy": machine_busy(watch.samples, *span),
            "after_render": after_render,
            "once": once_check(stack, marketing + list(criticals.enqueued), sends)}


def _scenario_log(stack: RateStack, marketing: list[str], started: float,
                  ended: float) -> tuple[list[dict], list[dict], float, float]:
    """The scenario's accepted sends and refusals, and when SES took its first and last marketing email."""
    sends = stack.sends.between(started, ended)
    wanted = set(marketing)
    marketing_times = [e["timestamp"] for e in sends if _tag(e, "postline_message_id") in wanted]
    return sends, stack.refusals.between(started, ended), min(marketing_times), max(marketing_times)


def _render_kept_up(samples: list[tuple], start: float, end: float, started: float) -> dict:
    """Whether the send queue had work all along: samples in [start, end] with the send queue empty while the
    inbound queue still held mail, and when render had emptied the inbound queue."""
    inside = [s for s in samples if start <= s[0] <= end]
    starved = sum(1 for _, inbound, send, *_ in inside if send == 0 and inbound > 0)
    rendered_by = next((t for t, inbound, *_ in samples if t > start and inbound == 0), None)
    return {"samples": len(inside), "send_queue_empty_with_inbound_waiting": starved,
            "send_queue_min": min((send for _, _, send, *_ in inside), default=0),
            "inbound_empty_after_s": None if rendered_by is None else rendered_by - started,
            "rendered_by": rendered_by}


def _cpu_jiffies() -> tuple[int, int]:
    """The machine's busy and total CPU time so far, all cores (/proc/stat's first line; idle and iowait are
    not busy)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def machine_busy(samples: list[tuple], start: float, end: float) -> float | None:
    """The share of the machine's CPU (all cores) that was busy between ``start`` and ``end``."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2:
        return None
    (busy0, total0), (busy1, total1) = inside[0][-2:], inside[-1][-2:]
    return (busy1 - busy0) / max(1, total1 - total0)


def backlog_beside_outside_sender(stack: RateStack, emails: int) -> dict:
    """Scenario B: another sender takes 30 % of the rate while a marketing backlog drains."""
    tag = f"rateB{int(time.time())}"
    before, started = stack.limiter_figures(), time.time()
    outside = OutsideSender(stack, stack.rate * OUTSIDE_SHARE)
    outside.start()
    time.sleep(3)  # the other application is sending already when the newsletter comes
    enqueue_seconds = enqueue_newsletter(stack, emails, tag)
    enqueued = time.time()
    marketing = _marketing_ids(tag, emails)
    _wait_for_sends(stack, set(marketing), timeout=emails / stack.rate * 6 + 300)
    outside.done.set()
    outside.join()
    stack.wait_idle()
    writes, held = stack.limiter_since(before)
    factors = stack.factors()
    ended = time.time()

    sends, refusals, first, last = _scenario_log(stack, marketing, started, ended)
    postline_times = [e["timestamp"] for e in sends if _tag(e, "postline_message_id")]
    outside_times = [e["timestamp"] for e in sends if not _tag(e, "postline_message_id")]
    span = (max(first, enqueued) + RAMP_UP_SECONDS, last)
    postline_sends = len(postline_times)
    return {"emails": emails, "outside_rate": stack.rate * OUTSIDE_SHARE, "enqueue_seconds": enqueue_seconds,
            "drain_seconds": last - first,
            "postline": utilisation(postline_times, *span, stack.rate),
            "outside": utilisation(outside_times, *span, stack.rate),
            "total": utilisation(postline_times + outside_times, *span, stack.rate),
            "total_whole_drain": utilisation(postline_times + outside_times, first, last, stack.rate),
            "windows": windows_over(postline_times + outside_times, stack.rate),
            "throttles_postline": sum(1 for r in refusals if _tag(r, "postline_message_id")),
            "throttles_outside": sum(1 for r in refusals if not _tag(r, "postline_message_id")),
            "outside_counted": {"accepted": outside.accepted, "throttled": outside.throttled,
                                "other_errors": outside.other_errors},
            "limiter_pace": slowdown(factors, *span, stack.rate, started),
            "limiter_writes": writes, "held_for_lateness": held, "postline_sends": postline_sends,
            "writes_per_email": writes / postline_sends,
            "once": once_check(stack, marketing, sends)}


def measure(backlog: int = 10_000, outside_backlog: int = 5_000, send_pollers: int = 2,
            ses_rate: float = SES_RATE) -> dict:
    out: dict[str, Any] = {"ses_rate": ses_rate, "ses_quota": SES_QUOTA, "send_pollers": send_pollers,
                           "ramp_up_excluded_s": RAMP_UP_SECONDS}
    _progress(f"rate: local stack, local SES at {ses_rate:g}/s, {send_pollers} send pollers per send queue")
    with RateStack(ses_rate, SES_QUOTA, send_pollers) as stack:
        out["folder"] = str(stack.dir)
        warm = Criticals(stack, f"warm{int(time.time())}", every=0.5, count=2)  # first-call paths, not counted
        warm.start()
        warm.join()
        enqueue_newsletter(stack, 10, f"warm{int(time.time())}")
        stack.wait_idle()
        _progress(f"rate: critical latency, idle ({IDLE_CRITICAL} emails, one a second)")
        out["critical_idle"] = idle_critical(stack)
        stack.wait_idle()
        _progress(f"rate: A, {backlog:,} marketing emails and a critical one every {CRITICAL_EVERY_SECONDS:g} s")
        out["alone"] = backlog_alone(stack, backlog)
        _progress(f"rate: B, {outside_backlog:,} marketing emails beside another sender at "
                  f"{ses_rate * OUTSIDE_SHARE:g}/s")
        out["outside"] = backlog_beside_outside_sender(stack, outside_backlog)
    return out


def report(figures: dict) -> list[str]:
    """The section's figures as printed lines."""
    rate, a, b, idle = figures["ses_rate"], figures["alone"], figures["outside"], figures["critical_idle"]
    u, w, render, busy = a["utilisation"], a["windows"], a["render"], a["critical_backlog"]
    cs = u["calendar_seconds"]
    out = [
        (f"Sending rate on the local stack, local SES at {rate:g}/s (sliding one-second window), "
         f"{figures['send_pollers']} send pollers per send queue; from the endpoint's send log and "
         "ses-refusals.jsonl"),
        (f"A. postline alone: {a['emails']:,} marketing emails enqueued at once ({a['enqueue_seconds']:.1f} s), "
         f"a critical email every {CRITICAL_EVERY_SECONDS:g} s ({a['criticals']} in all), drained in "
         f"{a['drain_seconds']:.1f} s"),
        (f"  rate utilisation while the backlog lasted, ramp-up left out (from {figures['ramp_up_excluded_s']:g} s "
         f"after the backlog was all enqueued and SES took the first email, {u['seconds']:.1f} s): "
         f"{u['per_second']:.2f} sends/s / {rate:g} = {u['utilisation']:.1%} (whole calendar seconds: min "
         f"{cs['min']}, median {cs['median']}, max {cs['max']}); over the whole drain, ramp-up included: "
         f"{a['whole_drain']['utilisation']:.1%}"),
        (f"  seconds over {rate:g} sends: calendar seconds {w['calendar_over']} (busiest {w['calendar_max']}); "
         f"sliding one-second window: busiest {w['sliding_max']}, sends finding more than {rate:g} in the second "
         f"before them {w['sliding_over']}"),
        (f"  the local endpoint stopped for its own garbage collection {_stops(u)} of that span; rate utilisation "
         f"over the rest: {_share(u['utilisation_while_answering'], 1)} (once render had finished: "
         f"{_share(a['after_render']['utilisation_while_answering'], 1)})"),
        f"  throttling errors SES returned: {a['throttles']}",
        (f"  critical, enqueue -> SES accepts, during the backlog ({busy['samples']} emails): "
         f"p50 {_ms(busy, 'p50_s')}, p99 {_ms(busy, 'p99_s')}; idle stack ({idle['samples']} emails, one a "
         f"second): p50 {_ms(idle, 'p50_s')}, p99 {_ms(idle, 'p99_s')}"),
        f"  {_pace(a['limiter_pace'], u['per_second'])}",
        (f"  limiter DynamoDB writes: {a['limiter_writes']} for {a['postline_sends']:,} emails = "
         f"{a['writes_per_email']:.3f} per email; sends held back a moment for lateness (so many of the "
         f"worker's own sends may have been at SES in the second before): {a['held_for_lateness']}"),
        (f"  render ahead of send: send queue empty while inbound mail waited in "
         f"{render['send_queue_empty_with_inbound_waiting']} of {render['samples']} half-second samples; inbound "
         f"queue empty {_s(render['inbound_empty_after_s'])} after the start"),
        (f"  the machine's CPU (all {os.cpu_count()} cores) busy over the span: {_share(a['cpu_busy'])}; once render "
         f"had finished ({a['after_render']['seconds']:.1f} s, send and the events alone): rate utilisation "
         f"{a['after_render']['utilisation']:.1%}, CPU busy {_share(a['after_render']['cpu_busy'])}"),
        f"  {_once(a['once'])}",
        (f"B. another sender at {b['outside_rate']:g}/s beside {b['emails']:,} marketing emails, drained in "
         f"{b['drain_seconds']:.1f} s:"),
        (f"  rate utilisation, ramp-up left out as in A ({b['postline']['seconds']:.1f} s): postline "
         f"{b['postline']['per_second']:.2f}/s / {rate:g} = {b['postline']['utilisation']:.1%}, other sender "
         f"{b['outside']['per_second']:.2f}/s, total {b['total']['per_second']:.2f}/s / {rate:g} = "
         f"{b['total']['utilisation']:.1%} (whole drain, ramp-up included: total "
         f"{b['total_whole_drain']['utilisation']:.1%})"),
        (f"  seconds over {rate:g} sends (both senders): calendar {b['windows']['calendar_over']} (busiest "
         f"{b['windows']['calendar_max']}); sliding: busiest {b['windows']['sliding_max']}"),
        (f"  throttling errors SES returned: to postline {b['throttles_postline']}, to the other sender "
         f"{b['throttles_outside']} (it counted {b['outside_counted']['throttled']} throttled, "
         f"{b['outside_counted']['accepted']} accepted)"),
        f"  {_pace(b['limiter_pace'], b['postline']['per_second'])}",
        (f"  limiter DynamoDB writes: {b['limiter_writes']} for {b['postline_sends']:,} emails = "
         f"{b['writes_per_email']:.3f} per email; sends held back a moment for lateness (so many of the "
         f"worker's own sends may have been at SES in the second before): {b['held_for_lateness']}"),
        f"  {_once(b['once'])}",
    ]
    return out


def _once(once: dict) -> str:
    return (f"lost: {once['lost']}, sent twice: {once['sent_twice']} ({once['emails']:,} emails; accepted sends "
            f"per email {once['accepted_sends_per_email']}; records {once['statuses']}, "
            f"{once['record_ses_id_mismatch']} with another SES message id than the accepted send's)")


def _pace(pace: dict, sent_per_second: float) -> str:
    if pace["slots_per_second"] is None:
        return "the limiter's pace: not sampled"
    return (f"the limiter's own pace over the same span: {pace['slots_per_second']:.1f} slots/s (at most "
            f"{pace['full_slots_per_second']:g}: the rate less its headroom); SES's throttles lowered it "
            f"{pace['lowered']} times in the scenario (slow-down factor over the span: mean "
            f"{pace['factor_mean']:.2f}, lowest {pace['factor_lowest']:.2f}); sends / its slots = "
            f"{sent_per_second / pace['slots_per_second']:.1%}")


def _share(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def _stops(figure: dict) -> str:
    stops = figure["endpoint_pauses"]
    return (f"{stops['count']} times, {stops['seconds']:.1f} s in all (longest {stops['longest'] * 1000:.0f} ms), "
            f"{stops['seconds'] / figure['seconds']:.1%}")


def _ms(figure: dict, key: str) -> str:
    return f"{figure[key] * 1000:.0f} ms" if key in figure else "n/a"


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"
