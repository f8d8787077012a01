"""A campaign's fan-out (postline.campaigns.fanout) against the local AWS endpoint (a real moto server on
loopback, spoken to over HTTP, as in bench.lifecycle): recipients per second, runs and checkpoints, AWS calls per
recipient, the fan-out process's peak memory, and a run killed several times mid-way.

Each campaign is made as ``postline campaigns create`` makes it: a generated CSV audience (``email`` and a
``name`` column; the newsletter's other data as the campaign's ``--data``) through ``audience.normalise``, uploaded
to the claim-check bucket, the item written by ``store.create`` and a control message sent by
``control.start_now``. The fan-out runs in a separate process (a spawned child) that is the campaign function's
container: it imports ``functions/campaign/app.py`` as Lambda does and consumes the control queue as the event
source mapping does (receive one message, call the handler with Lambda's SQS event and a context whose remaining
time is real, delete the message unless it failed), one invocation after another, until the campaign is done.
Every botocore client in that process counts its calls (a ``before-call`` hook) while the handler runs. Its
memory: its peak resident size (``VmHWM``, what ``ru_maxrss`` reports for a process not forked from a bigger one)
once the function is imported, then the peak is reset (``/proc/self/clear_refs``) to what the process holds then
(the baseline), and the peak read after each invocation is the fan-out's own; its growth is that less the
baseline.

The backlog bound is set out of the way (``BENCH_MAX_SEND_RATE`` x 0.7 x ``BENCH_BACKLOG_SECONDS`` = 2.5 million
messages), so that a run is bound only by its time budget and this measures the fan-out itself; the bound is
tested in tests/integration/test_campaigns.py.

The kill run: the fan-out process is SIGKILLed at random moments (once the campaign's checkpoint has passed a
random position, plus a random part of a page's time), each time a new one is started, which gets the control
message again when its visibility timeout (``KILL_VISIBILITY_SECONDS`` on the bench's control queue) runs out, as
SQS redelivers it. Then every message on the marketing queue is read and its id checked against the audience.
"""
from __future__ import annotations

import csv
import gc
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .lifecycle import _wait_port
from .support import ROOT, example, free_port

SIZES = (10_000, 100_000)  # the throughput runs; peak memory compared between the two
KILL_AUDIENCE = 10_000
KILLS = 3  # the control message is received KILLS + 1 times at most: within the redrive policy's 5
KILL_VISIBILITY_SECONDS = 2
PAGE_SECONDS = 0.4  # about a page of 100 on this machine's local endpoint
FLOOR_MESSAGES = 5_000
TEMPLATE = "newsletter"
# The backlog bound out of the way: 1,000/s x 0.7 (marketing's share) x 3,600 s = 2,520,000 messages.
BENCH_MAX_SEND_RATE = 1_000
BENCH_BACKLOG_SECONDS = 3_600
CHILD_TIMEOUT_SECONDS = 900
API_URL = "http://127.0.0.1:3000"  # signed into tracking links; nothing here serves it


def _progress(what: str) -> None:
    print(f"... {what}", file=sys.stderr, flush=True)


# -- the fan-out process -------------------------------------------------------------------------------------------

def _memory_kb() -> dict[str, int]:
    """This process's resident memory now (VmRSS) and its peak (VmHWM), in kilobytes. Not ``ru_maxrss``: in a
    child started by fork and exec that is at least what the parent held when it forked (the copy's own peak,
    kept across the exec), here the bench's process, not the fan-out's."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
    return {name: int(value.split()[0]) for name, value in fields.items()}


def _write(path: str, record: dict) -> None:
    """One JSON line, flushed at once: what a killed process wrote before it died stays."""
    with open(path, "a") as out:
        out.write(json.dumps(record) + "\n")


def _fan_out_container(campaign_id: str, results_path: str, log_path: str) -> None:
    """The child: the campaign function's container, consuming the control queue until the campaign is done."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)  # the function's logs, one line a run
    os.dup2(log, 2)
    import botocore.session

    calls: Counter = Counter()
    counting = False

    def count(model, **_) -> None:
        if counting:
            calls[f"{model.service_model.service_name}.{model.name}"] += 1

    create_client = botocore.session.Session.create_client

    def counted_client(session, *args, **kwargs):
        made = create_client(session, *args, **kwargs)
        made.meta.events.register("before-call.*.*", count)
        return made

    botocore.session.Session.create_client = counted_client

    from postline_cli.local import resources
    from postline_cli.local.runner import LambdaContext, lambda_sqs_record, load_handler_module

    function = load_handler_module("campaign")  # as Lambda imports it: the clients are made here
    from postline.campaigns import store

    context = function.campaign_context
    queue_url, table = context.settings.campaign_queue_url, context.settings.campaigns_table
    gc.collect()
    imports_peak_kb = _memory_kb()["VmHWM"]
    # The peak reset to what the process holds now, so that the peak read after each run is the fan-out's own.
    Path("/proc/self/clear_refs").write_text("5")
    _write(results_path, {"imports_peak_kb": imports_peak_kb, "baseline_kb": _memory_kb()["VmRSS"]})
    while True:
        messages = context.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1,
                                               AttributeNames=["All"]).get("Messages", [])
        if not messages:
            if store.get(context.dynamodb, table, campaign_id).state in (store.DONE, store.CANCELLED):
                return
            continue
        message, = messages
        event = {"Records": [lambda_sqs_record(message, resources.CAMPAIGN_QUEUE)]}
        lambda_context = LambdaContext("campaign", timeout_seconds=resources.CAMPAIGN_TIMEOUT_SECONDS)
        calls.clear()
        counting, started = True, time.perf_counter()
        try:
            failed = bool(function.handler(event, lambda_context).get("batchItemFailures"))
        except Exception:  # noqa: BLE001 - as in Lambda, a failed invocation deletes nothing
            failed = True
        counting, wall = False, time.perf_counter() - started
        if not failed:
            context.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        _write(results_path, {"wall_s": wall, "calls": dict(calls), "failed": failed,
                              "peak_kb": _memory_kb()["VmHWM"]})


class FanOutProcess:
    """One fan-out container in a spawned child; its invocations as it recorded them."""

    def __init__(self, workdir: Path, campaign_id: str, number: int):
        self.results = workdir / f"fanout-{campaign_id}-{number}.jsonl"
        self.process = multiprocessing.get_context("spawn").Process(
            target=_fan_out_container, name=f"bench-fanout-{number}",
            args=(campaign_id, str(self.results), str(workdir / "fanout.log")))
        self.process.start()

    def records(self) -> list[dict]:
        if not self.results.exists():
            return []
        return [json.loads(line) for line in self.results.read_text().splitlines() if line.strip()]

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: the process dies wherever it is
        self.process.join()

    def join(self) -> None:
        self.process.join(CHILD_TIMEOUT_SECONDS)
        if self.process.is_alive():
            self.kill()
            raise RuntimeError(f"the fan-out did not finish in {CHILD_TIMEOUT_SECONDS} s")
        if self.process.exitcode != 0:
            raise RuntimeError(f"the fan-out process failed ({self.process.exitcode}); see fanout.log")


# -- the endpoint and the campaigns ----------------------------------------------------------------------------------

class Bench:
    """The local endpoint with postline's resources, and campaigns made as the CLI makes them."""

    def __init__(self, workdir: Path, endpoint: str):
        import boto3

        from postline_cli.local import resources
        from postline_cli.publish import load_template_dir, prepare

        self.workdir, self.endpoint = workdir, endpoint
        session = boto3.session.Session()
        resources.create_resources(session, endpoint, API_URL, str(workdir))
        self.sqs, self.s3, self.dynamodb = session.client("sqs"), session.client("s3"), session.client("dynamodb")
        self.events = session.client("events")
        self.control_queue = resources.queue_url(endpoint, resources.CAMPAIGN_QUEUE)
        self.marketing_queue = resources.queue_url(endpoint, resources.INBOUND_QUEUES["marketing"])
        self.bucket, self.table = resources.CLAIM_CHECK_BUCKET, resources.TABLES["POSTLINE_CAMPAIGNS_TABLE"]
        self.event_bus = resources.EVENT_BUS
        self.required = prepare(load_template_dir(ROOT / "templates" / TEMPLATE), "bench").required
        self.base_data = {k: v for k, v in example(TEMPLATE).items() if k != "name"}

    def create(self, campaign_id: str, recipients: int) -> tuple[Any, list[str]]:
        """A campaign of ``recipients`` generated addresses, started now; with its recipients' message ids."""
        from postline.campaigns import audience, control, store

        source, normalised = self.workdir / f"{campaign_id}.csv", self.workdir / f"{campaign_id}.jsonl"
        emails = [f"reader{i:07d}.{campaign_id}@example.com" for i in range(recipients)]
        with open(source, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["email", "name"])
            writer.writerows((email, f"Reader {i}") for i, email in enumerate(emails))
        with open(source, "rb") as user_file, open(normalised, "wb") as out:
            report = audience.normalise(user_file, kind="csv", required=self.required, base_data=self.base_data,
                                        out=out)
        if report.valid != recipients:
            raise RuntimeError(f"the generated audience has {report.valid} valid rows of {recipients}")
        key = f"campaigns/{campaign_id}/audience.jsonl"
        self.s3.upload_file(str(normalised), self.bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"})
        now = time.time()
        campaign = store.Campaign(
            campaign_id=campaign_id, template=TEMPLATE, audience_key=key, start_at=now, state=store.SCHEDULED,
            data=self.base_data, audience_bytes=report.bytes_written, audience_rows=report.valid, state_at=now,
            history=[{"state": store.SCHEDULED, "at": now}], created_at=now, updated_at=now)
        store.create(self.dynamodb, self.table, campaign)
        control.announce(self.events, self.event_bus, campaign)
        control.start_now(self.sqs, self.control_queue, campaign)
        return campaign, [audience.recipient_id(campaign_id, email) for email in emails]

    def get(self, campaign_id: str):
        from postline.campaigns import store

        return store.get(self.dynamodb, self.table, campaign_id)

    def marketing_depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.marketing_queue, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(value) for value in attributes.values())

    def read_marketing_ids(self) -> list[str]:
        """The id of every message on the marketing queue (each received once: kept invisible for the rest of
        the bench)."""
        ids: list[str] = []
        empty = 0
        while empty < 3:
            messages = self.sqs.receive_message(QueueUrl=self.marketing_queue, MaxNumberOfMessages=10,
                                                VisibilityTimeout=3_600).get("Messages", [])
            empty = 0 if messages else empty + 1
            ids += [json.loads(m["Body"])["id"] for m in messages]
        return ids

    def enqueue_floor(self, messages: int) -> dict:
        """The floor of recipients per second: the same send messages put on the marketing queue by bare
        SendMessageBatch calls, 10 a call, one after another (as the fan-out sends them), nothing else."""
        from postline.campaigns.audience import recipient_id

        bodies = [json.dumps({"template": TEMPLATE, "to": f"floor{i}@example.com",
                              "data": {**self.base_data, "name": f"Reader {i}"},
                              "id": recipient_id("floor", f"floor{i}@example.com"), "campaign": "floor"},
                             separators=(",", ":")) for i in range(messages)]
        started = time.perf_counter()
        for start in range(0, messages, 10):
            self.sqs.send_message_batch(QueueUrl=self.marketing_queue, Entries=[
                {"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start:start + 10])])
        seconds = time.perf_counter() - started
        return {"messages": messages, "seconds": seconds, "per_second": messages / seconds}


# -- the measurements ------------------------------------------------------------------------------------------------

def _invocations(records: list[dict]) -> list[dict]:
    return [r for r in records if "wall_s" in r]


def _calls(invocations: list[dict]) -> Counter:
    total: Counter = Counter()
    for invocation in invocations:
        total.update(invocation["calls"])
    return total


def fan_out(bench: Bench, recipients: int) -> dict:
    """One campaign of ``recipients``, fanned out by one container from start to done."""
    campaign_id = f"bench-{recipients // 1000}k-{int(time.time())}"
    depth_before = bench.marketing_depth()
    bench.create(campaign_id, recipients)
    started = time.perf_counter()
    container = FanOutProcess(bench.workdir, campaign_id, 0)
    container.join()
    elapsed = time.perf_counter() - started
    records = container.records()
    invocations = _invocations(records)
    calls = _calls(invocations)
    campaign = bench.get(campaign_id)
    fan_out_seconds = sum(i["wall_s"] for i in invocations)
    imports_peak_kb, baseline_kb = records[0]["imports_peak_kb"], records[0]["baseline_kb"]
    peak_kb = max(i["peak_kb"] for i in invocations)
    total_calls = sum(calls.values())
    return {"campaign": campaign_id, "recipients": recipients, "state": campaign.state, "counts": campaign.counts,
            "on_marketing_queue": bench.marketing_depth() - depth_before, "runs": len(invocations),
            "failed_runs": sum(1 for i in invocations if i["failed"]), "checkpoints": campaign.version,
            "fan_out_seconds": fan_out_seconds, "recipients_per_second": recipients / fan_out_seconds,
            "process_seconds": elapsed, "calls": dict(calls.most_common()), "calls_total": total_calls,
            "calls_per_recipient": total_calls / recipients,
            "calls_per_recipient_by_operation": {op: n / recipients for op, n in calls.most_common()},
            "imports_peak_rss_mb": imports_peak_kb / 1024, "baseline_rss_mb": baseline_kb / 1024,
            "peak_rss_mb": peak_kb / 1024,
            "growth_mb": (peak_kb - baseline_kb) / 1024}


def killed(bench: Bench, recipients: int, kills: int, rng: random.Random) -> dict:
    """A campaign whose fan-out process is SIGKILLed ``kills`` times at random moments; every id checked."""
    campaign_id = f"bench-kill-{int(time.time())}"
    bench.sqs.set_queue_attributes(QueueUrl=bench.control_queue,
                                   Attributes={"VisibilityTimeout": str(KILL_VISIBILITY_SECONDS)})
    # Kill points spread over the audience (cut in ``kills`` + 1 equal stretches): one at a random place in each of
    # the first ``kills``.
    targets = [int((k + rng.uniform(0.2, 0.8)) / (kills + 1) * recipients) for k in range(kills)]
    _, ids = bench.create(campaign_id, recipients)
    kill_log, containers = [], []
    started = time.perf_counter()
    for target in targets:
        container = FanOutProcess(bench.workdir, campaign_id, len(containers))
        containers.append(container)
        position = 0
        while container.process.is_alive() and position < target:
            time.sleep(0.02)
            position = bench.get(campaign_id).position
        if not container.process.is_alive():
            break  # done before this kill point
        time.sleep(rng.uniform(0, PAGE_SECONDS))  # a random moment in the next page: its reads, messages, checkpoint
        container.kill()
        kill_log.append({"target_position": target, "checkpoint_seen": position,
                         "checkpoint_after": bench.get(campaign_id).position,
                         "on_marketing_queue": bench.marketing_depth()})
    if len(kill_log) == len(containers):  # the last one was killed: one more, as SQS delivers the message again
        containers.append(FanOutProcess(bench.workdir, campaign_id, len(containers)))
    containers[-1].join()
    elapsed = time.perf_counter() - started
    campaign = bench.get(campaign_id)
    found = bench.read_marketing_ids()
    copies = Counter(found)
    expected = set(ids)
    invocations = [i for c in containers for i in _invocations(c.records())]
    return {"campaign": campaign_id, "recipients": recipients, "kills": len(kill_log), "kill_points": kill_log,
            "processes": len(containers), "completed_runs": len(invocations), "seconds": elapsed,
            "state": campaign.state, "counts": campaign.counts, "checkpoints": campaign.version,
            "messages_on_queue": len(found), "distinct_ids": len(copies),
            "skipped": len(expected - set(copies)), "not_in_audience": len(set(copies) - expected),
            "repeated_ids": sum(1 for n in copies.values() if n > 1),
            "extra_copies": len(found) - len(copies)}


def measure(sizes: tuple[int, ...] = SIZES, kill_audience: int = KILL_AUDIENCE, kills: int = KILLS,
            seed: int | None = None) -> dict:
    from postline.campaigns.fanout import PAGE, RUN_SECONDS
    from postline_cli.local import resources

    workdir = Path(tempfile.mkdtemp(prefix="postline-bench-campaigns-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(workdir / "endpoint.log", "ab") as log:
        endpoint_process = subprocess.Popen(
            [sys.executable, "-m", "postline_cli.local.aws_endpoint", "--port", str(port), "--outbox",
             str(workdir / "outbox"), "--send-log", str(workdir / "send.jsonl")], stdout=log, stderr=subprocess.STDOUT)
    saved_environ = dict(os.environ)
    environment = resources.function_environment(endpoint, API_URL)
    del environment["POSTLINE_APP_EVENTS"]  # a deployment's default, not the local stack's "all"
    environment |= {"POSTLINE_MAX_SEND_RATE": str(BENCH_MAX_SEND_RATE),
                    "POSTLINE_CAMPAIGN_BACKLOG_SECONDS": str(BENCH_BACKLOG_SECONDS)}
    seed = random.randrange(1 << 30) if seed is None else seed
    out: dict[str, Any] = {"folder": str(workdir), "seed": seed, "page": PAGE, "settings": {
        "max_send_rate": BENCH_MAX_SEND_RATE, "campaign_backlog_seconds": BENCH_BACKLOG_SECONDS,
        "backlog_bound": int(BENCH_MAX_SEND_RATE * 0.7 * BENCH_BACKLOG_SECONDS),
        "lambda_timeout_s": resources.CAMPAIGN_TIMEOUT_SECONDS, "run_seconds": RUN_SECONDS}}
    try:
        os.environ.update(environment)  # the children inherit it: the function's environment
        _wait_port(port)
        bench = Bench(workdir, endpoint)
        # The kill run first, while the marketing queue is empty: all it holds afterwards is that campaign's.
        _progress(f"campaigns: {kill_audience:,} recipients, the fan-out process killed {kills} times")
        out["kill"] = killed(bench, kill_audience, kills, random.Random(seed))
        _progress(f"campaigns: floor, {FLOOR_MESSAGES:,} send messages by bare SendMessageBatch, one at a time")
        out["floor"] = bench.enqueue_floor(FLOOR_MESSAGES)
        out["fan_out"] = {}
        for size in sizes:
            _progress(f"campaigns: fan-out of {size:,} recipients, one fan-out process")
            out["fan_out"][str(size)] = fan_out(bench, size)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        endpoint_process.terminate()
        endpoint_process.wait()
    return out


def report(figures: dict) -> list[str]:
    """The section's figures as printed lines."""
    settings, floor, kill = figures["settings"], figures["floor"], figures["kill"]
    out = [
        (f"Campaign fan-out on the local AWS endpoint: the campaign function's handler in a process of its own, "
         f"consuming the control queue as Lambda's event source mapping does (runs of at most "
         f"{settings['run_seconds']} s); backlog bound out of the way (max_send_rate {settings['max_send_rate']:,}, "
         f"campaign_backlog_seconds {settings['campaign_backlog_seconds']:,}: {settings['backlog_bound']:,} "
         "messages; the bound is tested in tests/integration/test_campaigns.py)"),
        (f"  floor: {floor['messages']:,} send messages by bare SendMessageBatch, 10 a call, one call at a time: "
         f"{floor['per_second']:.0f}/s"),
    ]
    for r in figures["fan_out"].values():
        calls = ", ".join(f"{op.split('.')[1]} {n}" for op, n in r["calls"].items())
        out += [
            (f"  {r['recipients']:,} recipients: {r['recipients_per_second']:.0f} recipients/s "
             f"({r['fan_out_seconds']:.1f} s in {r['runs']} runs; the process's whole life, imports and polling "
             f"included, {r['process_seconds']:.1f} s); {r['checkpoints']:,} checkpoints; campaign {r['state']}, "
             f"counts {_counts(r['counts'])}; {r['on_marketing_queue']:,} messages put on the marketing queue"),
            f"    AWS calls per recipient {r['calls_per_recipient']:.3f} ({r['calls_total']:,}: {calls})",
            (f"    memory (resident): peak once imported {r['imports_peak_rss_mb']:.1f} MB; baseline after the imports "
             f"{r['baseline_rss_mb']:.1f} MB; peak while fanning out {r['peak_rss_mb']:.1f} MB (growth "
             f"{r['growth_mb']:.1f} MB)"),
        ]
    runs = figures["fan_out"]
    if len(runs) > 1:
        small, large = runs[min(runs, key=int)], runs[max(runs, key=int)]
        out.append(f"  peak while fanning out, {large['recipients']:,} against {small['recipients']:,}: "
                   f"{large['peak_rss_mb'] / small['peak_rss_mb']:.3f} (target: within 10 %)")
    points = ", ".join(f"{p['checkpoint_seen']:,}" for p in kill["kill_points"])
    out += [
        (f"  killed run: {kill['recipients']:,} recipients, the fan-out process SIGKILLed {kill['kills']} times (its "
         f"checkpoint at {points}), {kill['processes']} processes, {kill['completed_runs']} runs completed, "
         f"{kill['seconds']:.1f} s; campaign {kill['state']}, counts {_counts(kill['counts'])}, "
         f"{kill['checkpoints']:,} checkpoints"),
        (f"    marketing queue: {kill['messages_on_queue']:,} messages, {kill['distinct_ids']:,} distinct ids for an "
         f"audience of {kill['recipients']:,}: skipped {kill['skipped']}, not in the audience "
         f"{kill['not_in_audience']}; {kill['repeated_ids']} ids repeated ({kill['extra_copies']} extra copies: "
         "pages the kills sent again before their checkpoint, which render takes for duplicates by their id, so "
         "none is a second email: tests/integration/test_campaigns.py::"
         "test_a_run_that_dies_between_a_page_and_its_checkpoint_repeats_that_page_and_nobody_gets_two)"),
    ]
    return out


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {value:,}" for name, value in counts.items() if value) or "none"
