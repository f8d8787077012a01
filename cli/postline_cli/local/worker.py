"""One function's runner in its own OS process, as a Lambda container is: ``python -m postline_cli.local.worker
NAME``. The local stack starts one per function and starts a new one when it dies (``postline local workers kill
NAME``); the queues and tables live on in the AWS endpoint's process, as SQS and DynamoDB outlive a container.

A worker loads ``functions/NAME/app.py`` (its cold start), puts it on the stack's clock and the stack's injected
faults, and runs that function's queue pollers until SIGTERM or SIGINT, or until the stack that started it is gone
(so a stack killed outright leaves no worker behind). The functions' environment is the worker's own, set by the
stack (``resources.function_environment``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import resources
from .clock import LocalClock
from .runner import CONTEXTS, QueuePoller, apply_faults, load_handler_module, use_clock

# The functions that consume the stack's queues in workers of their own (unsubscribe_mail stays in the stack's
# process, beside its SMTP server).
WORKER_FUNCTIONS = ("render", "send", "ses_events", "campaign")
# How long a worker told to stop lets an invocation in flight finish before it exits anyway: what it leaves is
# redelivered, as after a kill.
STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Consumer:
    """One queue feeding a function: ``pollers`` concurrent batches of up to ``batch_size``, each gathered for up to
    ``batching_window_seconds`` (none: what one receive gives)."""

    queue_name: str
    pollers: int
    batch_size: int = 10
    timeout_seconds: int = 60
    batching_window_seconds: float = 0.0


def queues_of(function: str) -> list[str]:
    """The queues ``function`` consumes on the local stack."""
    if function == "render":
        return list(resources.INBOUND_QUEUES.values())
    if function == "send":
        return list(resources.SEND_QUEUES.values())
    if function == "ses_events":
        return [resources.EVENTS_QUEUE, resources.SEND_EVENTS_QUEUE]
    if function == "campaign":
        return [resources.CAMPAIGN_QUEUE]
    raise ValueError(f"no worker runs {function!r}: the workers are {', '.join(WORKER_FUNCTIONS)}")


def consumers(function: str, pollers: dict[str, int]) -> list[Consumer]:
    """The queues ``function`` consumes, each with its concurrent batches from ``pollers`` (by queue name; the
    campaign function takes one control message per invocation: each is a whole run of a fan-out, up to its
    timeout; ses_events takes SES's events gathered as the stack's mappings gather them)."""
    if function == "campaign":
        return [
            Consumer(queue, pollers[queue], batch_size=1, timeout_seconds=resources.CAMPAIGN_TIMEOUT_SECONDS)
            for queue in queues_of(function)
        ]
    if function == "ses_events":
        return [
            Consumer(
                queue,
                pollers[queue],
                batch_size=resources.SES_EVENTS_BATCH_SIZE,
                batching_window_seconds=resources.SES_EVENTS_BATCHING_WINDOW_SECONDS,
            )
            for queue in queues_of(function)
        ]
    return [Consumer(queue, pollers[queue]) for queue in queues_of(function)]


def start_pollers(
    sqs, endpoint: str, function: str, handler, pollers: dict[str, int], stop: threading.Event, on_batch=None
) -> list[QueuePoller]:
    """Start ``function``'s pollers (threads) on its queues, ``pollers[queue]`` on each; they run until ``stop`` is
    set."""
    started = []
    for consumer in consumers(function, pollers):
        for _ in range(consumer.pollers):
            poller = QueuePoller(
                sqs,
                resources.queue_url(endpoint, consumer.queue_name),
                consumer.queue_name,
                function,
                handler,
                stop,
                on_batch,
                batch_size=consumer.batch_size,
                timeout_seconds=consumer.timeout_seconds,
                batching_window_seconds=consumer.batching_window_seconds,
            )
            poller.start()
            started.append(poller)
    return started


def wait_for_queues(sqs, endpoint: str, function: str, stop: threading.Event) -> None:
    """Return once every queue ``function`` consumes exists: a worker's cold start runs while the stack creates
    them."""
    from botocore.exceptions import ClientError

    for queue in queues_of(function):
        while not stop.is_set():
            try:
                sqs.get_queue_url(QueueName=queue)
                break
            except ClientError:
                time.sleep(0.2)


def load_function(name: str, clock, faults: str = ""):
    """``functions/NAME/app.py`` loaded as Lambda would, on ``clock``, with the faults of ``faults`` that concern it."""
    modules = {name: load_handler_module(name)}
    use_clock(modules, clock)
    apply_faults(faults, modules)
    return modules[name]


def stats_file(clock_file: str, name: str) -> Path:
    """Where a worker keeps its figures: ``workers/NAME.json`` in the stack's state folder (beside its clock)."""
    return Path(clock_file).parent / "workers" / f"{name}.json"


def write_stats(path: Path, name: str, module, written: dict | None) -> dict | None:
    """The figures only the function's process knows, for the benchmarks (bench/rate.py): its sending-rate
    limiter's DynamoDB writes so far and the sends it held back for lateness, written when they changed since
    ``written``; returns what the file holds. A function without a limiter writes none."""
    limiter = getattr(getattr(module, CONTEXTS[name], None), "limiter", None)
    if limiter is None:
        return written
    figures = {"pid": os.getpid(), "limiter_writes": limiter.writes, "held_for_lateness": limiter.recent.held}
    if figures == written:
        return written
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(figures))
    partial.replace(path)
    return figures


def log_batch(function: str, received: int, failed: int) -> None:
    note = f", {failed} left for retry" if failed else ""
    print(f"[{function}] batch of {received}{note}", file=sys.stderr, flush=True)


def run(
    name: str,
    endpoint: str,
    clock_file: str,
    pollers: dict[str, int],
    faults: str = "",
    log_batches: bool = True,
    ready_fd: int | None = None,
) -> None:
    import boto3

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.getppid()
    module = load_function(name, LocalClock(clock_file), faults)
    sqs = boto3.session.Session().client("sqs")
    wait_for_queues(sqs, endpoint, name, stop)
    threads = (
        []
        if stop.is_set()
        else start_pollers(sqs, endpoint, name, module.handler, pollers, stop, log_batch if log_batches else None)
    )
    if ready_fd is not None:
        try:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        except OSError:  # a restarted worker's stack does not wait for it
            pass
    stats, written = stats_file(clock_file, name), None
    while not stop.wait(0.5):
        if os.getppid() != parent:  # the stack is gone (killed outright): so is its worker
            stop.set()
        written = write_stats(stats, name, module, written)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m postline_cli.local.worker", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=WORKER_FUNCTIONS)
    parser.add_argument("--endpoint", required=True, help="The local AWS endpoint (its queues).")
    parser.add_argument("--clock-file", required=True, help="The stack's clock (postline local clock).")
    parser.add_argument(
        "--pollers", type=json.loads, required=True, help='Concurrent batches per queue: {"QUEUE": N, ...}.'
    )
    parser.add_argument("--faults", default="", help="Fault injection for tests, e.g. crash_after_ses:ADDRESS.")
    parser.add_argument("--quiet", action="store_true", help="No [NAME] batch of N lines.")
    parser.add_argument("--ready-fd", type=int, help="A pipe to write 'ready' to once the pollers run.")
    args = parser.parse_args(argv)
    run(args.name, args.endpoint, args.clock_file, args.pollers, args.faults, not args.quiet, args.ready_fd)


if __name__ == "__main__":
    main()
