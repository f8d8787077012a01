"""``make soak``: thousands of messages through the whole local stack while faults are injected, ending in zeros.

    python -m bench.soak [--messages 20000] [--faults SPEC] [--kill-every SECONDS] [--deadline SECONDS] [--json PATH]

Starts a local stack (``postline local up --detach``) on free ports with its own state folder, the local SES at
200 emails/s, and the fault spec in ``POSTLINE_LOCAL_ENDPOINT_FAULTS`` (postline_cli.local.faults: SES throttles,
5xx, lost replies, read timeouts and permanent rejections, DynamoDB throttles, 5xx (some applied before they fail)
and unavailability, S3 5xx, SQS duplicate deliveries and visibility timeouts that run out, duplicate and
out-of-order SES events, and the send worker SIGKILLed before SES, after SES accepted and after the ``sent``
write). It suppresses a few addresses (``postline suppressions add``), then puts the messages on the three inbound
queues: the sample templates of every stream, with ids sent twice, suppressed recipients, SES simulator bounce and
complaint addresses, large newsletters (their rendered body goes through the S3 claim check) and malformed
messages. ``--kill-every`` SIGKILLs a random function's worker that often (``postline local workers kill``).

It waits (until ``--deadline``) for every message to reach a final state or a dead-letter queue with its reason,
then prints, from the endpoint's own logs (SES send log, fault log) and the tables: messages, faults injected by
kind, emails SES accepted per message id, messages without a final state or DLQ reason (lost), sends to
suppressed addresses, the parked messages by cause, wall time. Exit 1 when duplicates, lost or suppressed sends
is not 0.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import boto3
from botocore.config import Config

from .support import ROOT, example, free_port

POSTLINE = str(Path(sys.executable).parent / "postline")
# A read timeout holds a sending thread 16 s (the SES client's 15 s read timeout and a second): 0.2 % of sends each
# way costs about a minute of one thread per thousand emails. A kill is at most one every 20 s (faults.py).
DEFAULT_FAULTS = ("ses_throttle=0.03,ses_5xx=0.005,ses_lost_reply=0.01,ses_timeout_before=0.002,"
                  "ses_timeout_after=0.002,ses_rejected=0.02,dynamodb_throttle=0.02,dynamodb_5xx=0.01,"
                  "dynamodb_5xx_applied=0.01,dynamodb_unavailable=0.005,s3_5xx=0.05,sqs_duplicate=0.02,"
                  "sqs_visibility_lapse=0.01,kill_before_ses=0.002,kill_after_ses=0.002,kill_after_sent=0.002,"
                  "ses_event_duplicate=0.02,ses_event_swap=0.02,seed=7")
KILL_KINDS = ("kill_before_ses", "kill_after_ses", "kill_after_sent")
# The faults that may leave a claim open on the message they hit (logged with its id): a parked message is put down
# to the last of these on its id, else to a kill of the send worker while it held the claim (collateral).
CLAIM_FAULTS = ("ses_5xx", "ses_timeout_before", "ses_timeout_after", "ses_lost_reply", *KILL_KINDS)
# A kill leaves open the claims its worker took in the batch it was on: claimed at most this long before it.
KILL_REACH_SECONDS = 90
# A parked claim (an SES 5xx: did SES take it?) is decided after this long instead of the default 15 minutes,
# so that a run sees it parked (status unknown, the job in the send DLQ with the reason) before its deadline.
STALE_CLAIM_SECONDS = 90
# Rendered bodies over this (deflated, base64) go to S3 (the claim check) instead of the send queue: the default,
# 200 KB, is more than a message within the 64 KB input limit renders to, so the soak's large newsletters (150
# articles, about 20 KB) would never meet S3 and its faults.
CLAIM_CHECK_THRESHOLD_BYTES = 16_000
# With ``each_once=1`` a fault comes at its first chance; a kill also waits for the gap since the last one and for a
# send worker running again. A run that has sent everything before every kind came gets more plain messages, this
# many every few seconds, until every kind has come (or half the deadline has passed): a faster stack drains a short
# run before its last kill's chance.
TOP_UP_MESSAGES = 10
FINAL = {"sent", "delivered", "bounced", "complained", "suppressed", "rejected", "failed", "cancelled", "unknown"}
SETTLED = FINAL - {"sent"}  # what the run waits for: a sent email's Delivery, Bounce or Complaint comes soon after
TEMPLATES = {"critical": ["password-reset"], "transactional": ["welcome", "order-confirmation", "invoice"],
             "marketing": ["newsletter"]}
SUPPRESSED_ALL = [f"soak-suppressed-{n}@example.com" for n in range(5)]
SUPPRESSED_MARKETING = "soak-unsubscribed@example.com"  # unsubscribed from marketing only
# The first messages are one of each kind (a plain one first, the repeated id last), so a short run has them all.
FIRST_ROLLS = (0.5, 0.03, 0.045, 0.06, 0.075, 0.085, 0.095, 0.095, 0.095, 0.095, 0.095, 0.01)
FUNCTIONS = ("render", "send", "ses_events")
_MARKER = re.compile(r"soak-[0-9]{5}-[0-9]{6}")
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=16)


def stream_of(template: str) -> str:
    return next(stream for stream, names in TEMPLATES.items() if template in names)


def plan(count: int, run: str, seed: int) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The messages to put on the queues, in order: (queue stream, body); and what each id is (its kind)."""
    draw = random.Random(seed)
    bodies: list[tuple[str, str]] = []
    kinds: dict[str, str] = {}
    data = {name: example(name) for names in TEMPLATES.values() for name in names}
    big = {**data["newsletter"], "articles": [{"title": f"Story {n}", "summary": "A short summary of the story.",
                                               "url": f"https://lumen.example.com/s/{n}"} for n in range(150)]}
    malformed = 0
    while len(bodies) < count:
        i = len(bodies)
        message_id = f"soak-{run}-{i:06d}"
        roll = FIRST_ROLLS[i] if i < len(FIRST_ROLLS) else draw.random()
        if roll < 0.02 and bodies:  # an id sent twice: a copy of an earlier message, the same id and body
            bodies.append(draw.choice(bodies))
            continue
        template = draw.choice([name for names in TEMPLATES.values() for name in names])
        message = {"id": message_id, "template": template, "to": f"reader-{i}@example.com", "data": data[template]}
        kind = "plain"
        if roll < 0.04:
            message["to"], kind = draw.choice(SUPPRESSED_ALL), "suppressed"
        elif roll < 0.05:
            message["to"] = SUPPRESSED_MARKETING
            kind = "suppressed" if stream_of(template) == "marketing" else "plain"
        elif roll < 0.07:
            message["to"], kind = f"bounce+{run}-{i}@simulator.amazonses.com", "bounce"
        elif roll < 0.08:
            message["to"], kind = f"complaint+{run}-{i}@simulator.amazonses.com", "complaint"
        elif roll < 0.09:
            message.update(template="newsletter", data=big)
            kind = "large"
        elif roll < 0.10:
            bad, malformed, kind = malformed % 5, malformed + 1, "malformed"
            if bad == 0:  # not JSON at all, so no id: found in the inbound DLQ by this marker
                bodies.append((stream_of(template), f"{{not json {message_id}"))
                kinds[message_id] = "garbage"
                continue
            if bad == 1:
                message["template"] = "no-such-template"
            elif bad == 2:
                del message["to"]
            elif bad == 3:
                message["data"] = "not an object"
            else:
                message["to"] = "reader@example.com\r\nBcc: everyone@example.com"
        kinds[message_id] = kind
        bodies.append((stream_of(template), json.dumps(message)))
    return bodies, kinds


def plain_messages(run: str, first: int, count: int) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``count`` plain messages numbered from ``first`` (after the planned ones), one template after another."""
    data = {name: example(name) for names in TEMPLATES.values() for name in names}
    names = list(data)
    bodies, kinds = [], {}
    for i in range(first, first + count):
        message_id, template = f"soak-{run}-{i:06d}", names[i % len(names)]
        message = {"id": message_id, "template": template, "to": f"reader-{i}@example.com", "data": data[template]}
        bodies.append((stream_of(template), json.dumps(message)))
        kinds[message_id] = "plain"
    return bodies, kinds


def given_once(faults: str) -> set[str]:
    """The kinds a spec gives at their first chance (``each_once=1``); none without it."""
    from postline_cli.local.faults import parse_spec

    rates, _, each_once, _ = parse_spec(faults)
    return {kind for kind, rate in rates.items() if rate > 0} if each_once else set()


def pipeline_faults(fault_log: list[dict]) -> Counter:
    """The faults injected into the pipeline's calls, by kind: not those on the soak's own table scans, nor its
    ``--kill-every`` kills."""
    return Counter(e["kind"] for e in fault_log if e.get("action") != "Scan" and e["kind"] != "kill_every")


class Stack:
    """The local stack on free ports, with its own state folder and the faults."""

    def __init__(self, faults: str):
        self.dir = Path(tempfile.mkdtemp(prefix="postline-soak-"))
        self.state = self.dir / "state"
        aws_port = free_port()
        self.endpoint = f"http://127.0.0.1:{aws_port}"
        self.ports = [str(p) for p in (aws_port, free_port(), free_port(), free_port())]
        self.env = dict(os.environ, POSTLINE_LOCAL_DIR=str(self.state), POSTLINE_OUTBOX=str(self.dir / "outbox"),
                        AWS_ENDPOINT_URL=self.endpoint, AWS_DEFAULT_REGION="us-east-1",
                        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                        POSTLINE_LOCAL_SES_RATE="200", POSTLINE_LOCAL_SES_QUOTA="10000000",
                        POSTLINE_LOCAL_ENDPOINT_FAULTS=faults, POSTLINE_STALE_CLAIM_SECONDS=str(STALE_CLAIM_SECONDS),
                        POSTLINE_CLAIM_CHECK_THRESHOLD_BYTES=str(CLAIM_CHECK_THRESHOLD_BYTES))

    def __enter__(self) -> Stack:
        self.cli("local", "up", "--detach", "--aws-port", self.ports[0], "--api-port", self.ports[1],
                 "--smtp-port", self.ports[2], "--smtp-relay-port", self.ports[3])
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                        region_name="us-east-1")
        self.sqs = session.client("sqs", endpoint_url=self.endpoint, config=CLIENT_CONFIG)
        self.dynamodb = session.client("dynamodb", endpoint_url=self.endpoint, config=CLIENT_CONFIG)
        return self

    def __exit__(self, *_) -> None:
        self.cli("local", "down", check=False)

    def cli(self, *args: str, check: bool = True, attempts: int = 3) -> subprocess.CompletedProcess:
        """A postline command; tried again when it fails (its own calls meet the injected faults too)."""
        for attempt in range(attempts):
            result = subprocess.run([POSTLINE, *args], env=self.env, cwd=ROOT, capture_output=True, text=True,
                                    timeout=180)
            if result.returncode == 0 or attempt == attempts - 1:
                break
            time.sleep(1)
        if check and result.returncode != 0:
            raise RuntimeError(f"postline {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-800:]}")
        return result

    def queue_url(self, name: str) -> str:
        return f"{self.endpoint}/123456789012/{name}"


def enqueue(stack: Stack, bodies: list[tuple[str, str]]) -> None:
    by_stream: dict[str, list[str]] = {}
    for stream, body in bodies:
        by_stream.setdefault(stream, []).append(body)
    for stream, stream_bodies in by_stream.items():
        url = stack.queue_url(f"postline-{stream}")
        for start in range(0, len(stream_bodies), 10):
            entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(stream_bodies[start:start + 10])]
            for _ in range(5):
                failed = stack.sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed", [])
                entries = [e for e in entries if e["Id"] in {f["Id"] for f in failed}]
                if not entries:
                    break
            if entries:
                raise RuntimeError(f"the inbound queue refused {len(entries)} messages")


def still_queued(stack: Stack) -> int:
    """Messages waiting on the inbound and send queues (not those in flight): 0 once the run has sent everything."""
    names = [f"postline-{stream}" for stream in TEMPLATES] + [f"postline-send-{stream}" for stream in TEMPLATES]
    return sum(int(stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url(name), AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]) for name in names)


def statuses(stack: Stack, caller_ids: dict[str, str]) -> dict[str, tuple[str, str, float | None]]:
    """The caller's id -> (status, reason, claimed at) from the messages table (keyed by postline's id, derived
    from it)."""
    found = {}
    pages = stack.dynamodb.get_paginator("scan").paginate(
        TableName="postline-messages", ProjectionExpression="message_id, #s, reason, claimed_at",
        ExpressionAttributeNames={"#s": "status"})
    for page in pages:
        for item in page["Items"]:
            key = item["message_id"]["S"]
            claimed_at = item.get("claimed_at", {}).get("N")
            found[caller_ids.get(key, key)] = (item.get("status", {}).get("S", ""), item.get("reason", {}).get("S", ""),
                                               float(claimed_at) if claimed_at else None)
    return found


def dead_letters(stack: Stack) -> list[dict]:
    """Every message in the dead-letter queues (left there, hidden for the rest of the run): queue, message id
    (postline's attribute), reason, body."""
    from postline_cli.local.resources import all_queue_names

    found = []
    for name in [n for n in all_queue_names() if n.endswith("-dlq")]:
        url, empty = stack.queue_url(name), 0
        while empty < 2:
            got = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=3600,
                                            MessageAttributeNames=["All"]).get("Messages", [])
            empty = empty + 1 if not got else 0
            for message in got:
                attributes = message.get("MessageAttributes", {})
                found.append({"queue": name, "body": message["Body"],
                              "message_id": attributes.get("postline_message_id", {}).get("StringValue"),
                              "reason": attributes.get("postline_reason", {}).get("StringValue")})
    return found


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Killer(threading.Thread):
    """Every ``seconds``, ``postline local workers kill`` a random function's worker."""

    def __init__(self, stack: Stack, seconds: float, stop: threading.Event, seed: int):
        super().__init__(daemon=True)
        self.stack, self.seconds, self.stop, self.kills, self.failed = stack, seconds, stop, Counter(), 0
        self.send_kill_times: list[float] = []
        self.draw = random.Random(seed)

    def run(self) -> None:
        while not self.stop.wait(self.seconds):
            function = self.draw.choice(FUNCTIONS)
            if self.stack.cli("local", "workers", "kill", function, check=False, attempts=1).returncode == 0:
                self.kills[function] += 1
                if function == "send":
                    self.send_kill_times.append(time.time())
            else:
                self.failed += 1


def soak(messages: int, faults: str, kill_every: float | None, deadline: float, seed: int = 7) -> dict:
    from postline.contract import message_id_for

    started = time.time()
    run = f"{int(started) % 100000:05d}"
    bodies, kinds = plan(messages, run, seed)
    progress(f"starting the local stack with faults {faults!r}")
    with Stack(faults) as stack:
        for address in SUPPRESSED_ALL:
            stack.cli("suppressions", "add", address, "--note", "soak")
        stack.cli("suppressions", "add", SUPPRESSED_MARKETING, "--scope", "marketing", "--reason", "unsubscribe")
        stop = threading.Event()
        killer = None
        if kill_every:
            if stack.cli("local", "workers", "--help", check=False, attempts=1).returncode == 0:
                killer = Killer(stack, kill_every, stop, seed)
                killer.start()
            else:
                print("postline local workers is not available: kills are skipped", flush=True)
        progress(f"putting {len(bodies):,} messages on the inbound queues")
        enqueue(stack, bodies)
        sent_at = time.time()
        ids = [i for i, kind in kinds.items() if kind != "garbage"]
        caller_ids = {message_id_for(i): i for i in ids}
        until, top_up_until, topped_up = sent_at + deadline, sent_at + deadline / 2, 0
        once = given_once(faults)
        while True:
            found = statuses(stack, caller_ids)
            waiting = [i for i in ids if found.get(i, ("",))[0] not in SETTLED]
            progress(f"{len(ids) - len(waiting):,} of {len(ids):,} ids settled, {time.time() - sent_at:.0f} s")
            due = once - set(pipeline_faults(read_jsonl(stack.state / "endpoint-faults.jsonl"))) if once else set()
            if due and time.time() < top_up_until and not still_queued(stack):
                more, more_kinds = plain_messages(run, len(bodies), TOP_UP_MESSAGES)
                progress(f"{', '.join(sorted(due))} not injected yet: {len(more)} more plain messages")
                enqueue(stack, more)
                bodies += more
                kinds.update(more_kinds)
                ids += list(more_kinds)
                caller_ids.update((message_id_for(i), i) for i in more_kinds)
                topped_up += len(more)
                waiting += list(more_kinds)
            if not waiting or time.time() > until:
                break
            # Rejected messages without a record settle in the DLQ: looked for at the end, not waited on here.
            time.sleep(20 if messages > 2000 else 3)
        stop.set()
        drained_at = time.time()
        dlq = dead_letters(stack)
        send_log = read_jsonl(stack.state / "ses-send-log.jsonl")
        fault_log = read_jsonl(stack.state / "endpoint-faults.jsonl")
        for entry in dlq:
            entry["message_id"] = caller_ids.get(entry["message_id"], entry["message_id"])
        for entry in send_log:
            tagged = entry["tags"].get("postline_message_id")
            entry["tags"]["postline_message_id"] = caller_ids.get(tagged, tagged)
        for entry in fault_log:
            if entry.get("message_id"):
                entry["message_id"] = caller_ids.get(entry["message_id"], entry["message_id"])
        if killer:  # the random kills of the send worker, in the fault log's terms
            fault_log += [{"kind": "kill_every", "service": "workers", "action": "kill send", "time": at}
                          for at in killer.send_kill_times]
        result = account(kinds, found, dlq, send_log, fault_log)
        result.update(messages=len(bodies), ids=len(kinds), topped_up=topped_up, faults_spec=faults,
                      state_dir=str(stack.dir),
                      wall_seconds=round(time.time() - started, 1), drain_seconds=round(drained_at - sent_at, 1),
                      kills=dict(killer.kills) if killer else None,
                      kills_failed=killer.failed if killer else None)
    return result


def parked_causes(parked: list[str], found: dict[str, tuple[str, str, float | None]],
                  fault_log: list[dict]) -> dict[str, str]:
    """Each parked message's cause: the last fault on its own id that may leave a claim open, else the first kill
    of the send worker (at a chosen moment, or ``--kill-every``'s) within reach after it was claimed, else "other"
    (the record keeps only its last claim's time, so a message parked on a later attempt is not put down to the
    kill that started its troubles)."""
    own: dict[str, str] = {}
    for entry in fault_log:
        if entry["kind"] in CLAIM_FAULTS and entry.get("message_id"):
            own[entry["message_id"]] = entry["kind"]
    kills = sorted((e["time"], e["kind"]) for e in fault_log if e["kind"] in (*KILL_KINDS, "kill_every"))
    causes = {}
    for message_id in parked:
        claimed_at = found[message_id][2]
        after = [kind for at, kind in kills if claimed_at is not None and 0 <= at - claimed_at <= KILL_REACH_SECONDS]
        causes[message_id] = own.get(message_id) or (f"collateral of {after[0]}" if after else "other")
    return causes


def account(kinds: dict[str, str], found: dict[str, tuple[str, str, float | None]], dlq: list[dict],
            send_log: list[dict], fault_log: list[dict]) -> dict:
    """The figures: statuses, faults, SES's acceptances per message, the lost and the suppressed sends."""
    def id_of(entry: dict) -> str | None:
        marked = _MARKER.search(entry["body"])  # a body without a valid id: found by the id it holds
        return entry["message_id"] if entry["message_id"] in kinds else marked and marked.group(0)

    in_dlq: dict[str, dict] = {}
    without_reason = [entry for entry in dlq if not entry["reason"]]
    for entry in dlq:
        if entry["reason"] and (key := id_of(entry)):
            in_dlq.setdefault(key, entry)
    lost = sorted(i for i in kinds if found.get(i, ("",))[0] not in FINAL and i not in in_dlq)
    accepted = Counter((e["tags"].get("postline_message_id"), e["tags"].get("postline_retry", "0")) for e in send_log)
    twice = {f"{mid} (attempt {retry})": n for (mid, retry), n in accepted.items() if n > 1}
    def to_suppressed(entry: dict) -> bool:
        return bool(set(entry["destination"]) & set(SUPPRESSED_ALL)) or (
            SUPPRESSED_MARKETING in entry["destination"] and entry["tags"].get("postline_stream") == "marketing")

    suppressed_sends = [e["tags"].get("postline_message_id") for e in send_log if to_suppressed(e)]
    outcome = Counter(found.get(i, ("(none)",))[0] or "(none)" for i in kinds if kinds[i] != "garbage")
    by_kind: dict[str, Counter] = {}
    for i, kind in kinds.items():
        status = found.get(i, ("",))[0] or ("dlq" if i in in_dlq else "(none)")
        by_kind.setdefault(kind, Counter())[status] += 1
    parked = sorted(i for i, (status, _, _) in found.items() if status == "unknown")
    causes = parked_causes(parked, found, fault_log)
    rejected_by_ses = sum(1 for status, reason, _ in found.values()
                          if status == "failed" and reason.startswith("SES MessageRejected"))
    return {
        "statuses": dict(outcome.most_common()),
        "by_kind": {kind: dict(counts.most_common()) for kind, counts in sorted(by_kind.items())},
        "faults": dict(sorted(pipeline_faults(fault_log).items())),
        "faults_on_the_soaks_own_scans": sum(1 for e in fault_log if e.get("action") == "Scan"),
        "ses_accepted": len(send_log),
        "ses_accepted_ids": len(accepted),
        "duplicates": len(twice), "duplicated": dict(list(twice.items())[:20]),
        "lost": len(lost), "lost_ids": lost[:20],
        "dlq": dict(Counter(entry["queue"] for entry in dlq)), "dlq_without_reason": len(without_reason),
        # The lost whose job SQS moved itself (a worker died on the job's last receive): where to look first.
        "lost_in_dlq_without_reason": sorted(set(lost) & {id_of(entry) for entry in without_reason})[:20],
        "parked": len(parked), "parked_ids": parked[:20],
        "parked_by_cause": dict(Counter(causes.values()).most_common()),
        "parked_other_ids": [i for i, cause in causes.items() if cause == "other"][:20],
        "failed_rejected_by_ses": rejected_by_ses,
        "send_dlq_parked": sum(1 for i in parked if i in in_dlq and "-send-" in in_dlq[i]["queue"]),
        # Jobs in a send DLQ whose email has another state (an operator would see them in the DLQ alarm): why.
        "send_dlq_settled": dict(Counter(
            f"{found.get(key, ('(none)',))[0]}: {_reason_kind(entry['reason'])}"
            for entry in dlq if "-send-" in entry["queue"] and entry["reason"]
            and (key := entry["message_id"] if entry["message_id"] in kinds else None)
            and found.get(key, ("",))[0] != "unknown").most_common()),
        "suppressed_sends": len(suppressed_sends), "suppressed_send_ids": suppressed_sends[:20],
    }


def _reason_kind(reason: str) -> str:
    """A DLQ reason without what varies per message (times, ids, quoted values), to count alike ones together."""
    return re.sub(r"\d[\d:.\-T+]*|'[^']*'|\"[^\"]*\"", "#", reason)[:90]


def report(figures: dict) -> list[str]:
    lines = [f"soak: {figures['messages']:,} messages put on the queues ({figures['ids']:,} ids, "
             f"{figures['topped_up']:,} of them plain ones added while some fault had not come yet), "
             f"faults {figures['faults_spec']!r}",
             f"  wall time {figures['wall_seconds']:.0f} s (queues drained in {figures['drain_seconds']:.0f} s)",
             "  faults injected: " + (", ".join(f"{k} {v}" for k, v in figures["faults"].items()) or "none")
             + f" (and {figures['faults_on_the_soaks_own_scans']} on the soak's own table scans)"]
    if figures["kills"] is not None:
        lines.append(f"  workers killed: {figures['kills']} ({figures['kills_failed']} kill commands failed)")
    lines += ["  final states: " + ", ".join(f"{k} {v}" for k, v in figures["statuses"].items()),
              "  by kind: " + "; ".join(f"{kind}: " + ", ".join(f"{s} {n}" for s, n in counts.items())
                                        for kind, counts in figures["by_kind"].items()),
              f"  in dead-letter queues: {figures['dlq'] or 'none'}; parked (unknown): {figures['parked']} "
              f"{figures['parked_ids'] or ''}",
              "  parked by cause: " + (", ".join(f"{k} {v}" for k, v in figures["parked_by_cause"].items()) or "none")
              + (f" (other: {figures['parked_other_ids']})" if figures["parked_other_ids"] else ""),
              f"  failed, SES rejected them (MessageRejected): {figures['failed_rejected_by_ses']}",
              "  in a send DLQ, not parked (final state: reason): "
              + (", ".join(f"{k} x{v}" for k, v in figures["send_dlq_settled"].items()) or "none"),
              f"  emails SES accepted: {figures['ses_accepted']:,} for {figures['ses_accepted_ids']:,} message ids",
              f"  duplicates (ids SES accepted more than once): {figures['duplicates']} {figures['duplicated'] or ''}",
              f"  lost (no final state, no DLQ reason): {figures['lost']} {figures['lost_ids'] or ''}"
              + (f" (in a DLQ without postline's reason: {figures['lost_in_dlq_without_reason']})"
                 if figures["lost_in_dlq_without_reason"] else ""),
              f"  sends to suppressed addresses: {figures['suppressed_sends']} {figures['suppressed_send_ids'] or ''}"]
    return lines


def progress(what: str) -> None:
    print(f"... {what}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="messages put on the inbound queues")
    parser.add_argument("--faults", default=DEFAULT_FAULTS, help="POSTLINE_LOCAL_ENDPOINT_FAULTS for the endpoint")
    parser.add_argument("--kill-every", type=float, metavar="SECONDS",
                        help="SIGKILL a random function's worker this often (postline local workers kill)")
    parser.add_argument("--deadline", type=float, metavar="SECONDS",
                        help="how long to wait for every message to settle (default: 300 s + 0.15 s a message)")
    parser.add_argument("--seed", type=int, default=7, help="the draw of the messages and the kills")
    parser.add_argument("--json", metavar="PATH", help="also write the figures there")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    from postline_cli.local.faults import parse_spec

    try:
        parse_spec(args.faults)
    except ValueError as error:
        parser.error(f"--faults: {error}")
    figures = soak(args.messages, args.faults, args.kill_every,
                   args.deadline if args.deadline is not None else 300 + 0.15 * args.messages, args.seed)
    print("\n".join(report(figures)), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 1 if figures["duplicates"] or figures["lost"] or figures["suppressed_sends"] else 0


if __name__ == "__main__":
    sys.exit(main())
