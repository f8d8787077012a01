"""End-to-end: the local stack started as a user starts it (``postline local up --detach``), on free loopback
ports with its own state folder and outbox, driven through SQS and the CLI exactly as an application and an
operator would."""
from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTLINE = str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "postline")
CRASH_ADDRESS = "crash-after-ses@example.com"
FINAL = {"sent", "delivered", "bounced", "complained", "suppressed", "rejected", "failed"}
SETTLED = {"delivered", "bounced", "complained", "suppressed", "rejected", "failed", "cancelled"}  # status --wait's


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalStack:
    env: dict[str, str]
    endpoint: str
    api_url: str
    outbox: Path
    send_log: Path
    smtp_port: int = 0  # the unsubscribe address's local MX
    smtp_relay_port: int = 0  # the local SMTP relay (POSTLINE_LOCAL_SMTP_STREAMS)
    up_stderr: str = ""  # what `postline local up --detach` said on stderr

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([POSTLINE, *args], capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"postline {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
        return result

    def cli_json(self, *args: str):
        return json.loads(self.cli(*args, "--json").stdout)

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def queue_url(self, name: str) -> str:
        return self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]

    def wait_for(self, message_id: str, statuses=FINAL, seconds: float = 60) -> dict:
        # Where every awaited status is one `status --wait` stops at, one CLI process polls for up to a few seconds,
        # rather than one process started every 0.3 s (each a second of CPU the stack then lacks).
        waits = statuses <= SETTLED
        deadline = time.time() + seconds
        while True:
            wait = ["--wait", f"{max(0.0, min(5.0, deadline - time.time())):.1f}"] if waits else []
            view = json.loads(self.cli("status", message_id, "--json", *wait, check=False).stdout)  # exit 3: no record
            if view["status"] in statuses or time.time() > deadline:
                return view
            time.sleep(0.3)

    def outbox_for(self, address: str) -> list[email.message.EmailMessage]:
        found = []
        for path in sorted(self.outbox.glob("*.eml")):
            parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address in str(parsed["To"]):
                found.append(parsed)
        return found

    def ses_sends_for(self, message_id: str) -> int:
        if not self.send_log.exists():
            return 0
        lines = [json.loads(line) for line in self.send_log.read_text().splitlines() if line]
        return sum(1 for entry in lines if entry["tags"].get("postline_message_id") == message_id)


def only_marketing_is_suppressed(stack: LocalStack, address: str) -> None:
    """After an unsubscribe: a password reset to ``address`` is still delivered, the next newsletter is not."""
    def send(template: str) -> str:
        data = json.loads((ROOT / "templates" / template / "example.json").read_text())
        return stack.cli_json("send", "--template", template, "--to", address, "--data", json.dumps(data))["message_id"]

    assert stack.wait_for(send("password-reset"), statuses={"delivered"})["status"] == "delivered"
    assert stack.wait_for(send("newsletter"))["status"] == "suppressed"


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.5)


@contextlib.contextmanager
def started_stack(state: Path, *up_args: str, **environment: str):
    """``postline local up --detach`` in its own state folder, on free ports, with ``environment`` added."""
    aws_port, api_port, smtp_port, relay_port = free_port(), free_port(), free_port(), free_port()
    env = dict(os.environ, POSTLINE_LOCAL_DIR=str(state / "state"), POSTLINE_OUTBOX=str(state / "outbox"),
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{aws_port}", AWS_DEFAULT_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", **environment)
    stack = LocalStack(env, f"http://127.0.0.1:{aws_port}", f"http://127.0.0.1:{api_port}", state / "outbox",
                       state / "state" / "ses-send-log.jsonl", smtp_port, relay_port)
    stack.up_stderr = stack.cli("local", "up", "--detach", "--aws-port", str(aws_port), "--api-port", str(api_port),
                                "--smtp-port", str(smtp_port), "--smtp-relay-port", str(relay_port), *up_args).stderr
    try:
        yield stack
    finally:
        stack.cli("local", "down", check=False)
        log = state / "state" / "local.log"
        if log.exists():
            print(log.read_text()[-5000:])


@pytest.fixture(scope="package")  # down once tests/e2e is done: its pollers would slow the rest of the suite
def local_stack(tmp_path_factory):
    with started_stack(tmp_path_factory.mktemp("postline-local"), "--fault",
                       f"crash_after_ses:{CRASH_ADDRESS}") as stack:
        yield stack
