"""The local SES endpoint applies an SES account's sending limits as SES does: a maximum sending rate (a sliding
one-second window) and a 24-hour quota, refused with SES's ThrottlingException, told by GetAccount, and kept across
a restart of the endpoint. Each test runs the endpoint as the local stack does, in its own process."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from postline_cli.local.aws_endpoint import SesSendingLimits
from postline_cli.local.clock import write_offset

ROOT = Path(__file__).resolve().parents[2]
POSTLINE = str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "postline")
RATE_EXCEEDED = ("ThrottlingException", "Maximum sending rate exceeded.")
QUOTA_EXCEEDED = ("ThrottlingException", "Daily message quota exceeded.")
LIMIT_VARIABLES = ("POSTLINE_LOCAL_SES_RATE", "POSTLINE_LOCAL_SES_QUOTA")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Endpoint:
    """``python -m postline_cli.local.aws_endpoint`` on a free port, with an SESv2 client that never retries (so
    each refusal is seen, as postline's SES client sees it)."""

    def __init__(self, folder: Path, options: list[str], environment: dict[str, str] | None = None):
        self.folder, self.port = folder, free_port()
        self.send_log, self.refusal_log = folder / "sends.jsonl", folder / "ses-refusals.jsonl"
        self.outbox = folder / "outbox"
        env = {name: value for name, value in os.environ.items() if name not in LIMIT_VARIABLES}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "postline_cli.local.aws_endpoint", "--port", str(self.port),
             "--outbox", str(self.outbox), "--send-log", str(self.send_log), *options],
            env={**env, **(environment or {})})
        deadline = time.time() + 30
        while not self._listening():
            assert self.process.poll() is None, "the endpoint exited at start"
            assert time.time() < deadline, "the endpoint did not start"
            time.sleep(0.05)
        self.ses = boto3.client("sesv2", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
                                aws_access_key_id="testing", aws_secret_access_key="testing",
                                config=Config(retries={"mode": "standard", "total_max_attempts": 1},
                                              max_pool_connections=32))
        self.ses.create_email_identity(EmailIdentity="example.com")

    def _listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def send(self, message_id: str) -> tuple[str, str] | None:
        """None when SES took the email, else the refusal's (code, message)."""
        try:
            self.ses.send_email(FromEmailAddress="news@example.com", Destination={"ToAddresses": ["ada@example.net"]},
                                Content={"Raw": {"Data": b"Subject: hi\r\n\r\nhello\r\n"}},
                                EmailTags=[{"Name": "postline_message_id", "Value": message_id}])
        except ClientError as error:
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            return error.response["Error"]["Code"], error.response["Error"]["Message"]
        return None

    def send_quota(self) -> dict:
        return self.ses.get_account()["SendQuota"]

    def logged(self, log: Path) -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def start(tmp_path):
    started = []

    def start_endpoint(*options: str, environment: dict[str, str] | None = None) -> Endpoint:
        started.append(Endpoint(tmp_path, list(options), environment))
        return started[-1]

    yield start_endpoint
    for endpoint in started:
        if endpoint.process.poll() is None:
            endpoint.stop()


def test_get_account_tells_the_limits_from_the_environment_and_counts_the_sends_taken(start):
    endpoint = start(environment={"POSTLINE_LOCAL_SES_RATE": "7.5", "POSTLINE_LOCAL_SES_QUOTA": "1200"})
    account = endpoint.ses.get_account()
    assert account["SendQuota"] == {"Max24HourSend": 1200.0, "MaxSendRate": 7.5, "SentLast24Hours": 0.0}
    assert (account["SendingEnabled"], account["ProductionAccessEnabled"], account["EnforcementStatus"],
            account["DedicatedIpAutoWarmupEnabled"]) == (True, True, "HEALTHY", False)
    assert [endpoint.send(f"m{i}") for i in range(3)] == [None] * 3
    assert endpoint.send_quota()["SentLast24Hours"] == 3.0


def test_without_settings_the_limits_are_a_new_production_accounts(start):
    endpoint = start()
    assert endpoint.send_quota() == {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 0.0}


def test_a_burst_over_the_rate_gets_exactly_the_rate_through_and_the_rest_throttled(start):
    endpoint = start("--ses-rate", "5", "--ses-quota", "1000")
    ready, answers = threading.Barrier(12), {}

    def send(message_id: str) -> None:
        ready.wait()
        answers[message_id] = endpoint.send(message_id)

    threads = [threading.Thread(target=send, args=(f"m{i}",)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    taken = sorted(message_id for message_id, answer in answers.items() if answer is None)
    assert len(taken) == 5
    assert [answer for answer in answers.values() if answer is not None] == [RATE_EXCEEDED] * 7
    # Only what SES took is in the outbox and the send log (the SES events come from it); each refusal is logged.
    sends = endpoint.logged(endpoint.send_log)
    assert sorted(entry["tags"]["postline_message_id"] for entry in sends) == taken
    assert sorted(path.stem for path in endpoint.outbox.glob("*.eml")) == taken
    refusals = endpoint.logged(endpoint.refusal_log)
    assert sorted(r["tags"]["postline_message_id"] for r in refusals) == sorted(set(answers) - set(taken))
    assert {(r["code"], r["message"]) for r in refusals} == {RATE_EXCEEDED}
    assert all(isinstance(r["timestamp"], float) for r in refusals)
    assert endpoint.send_quota()["SentLast24Hours"] == 5.0

    # The window slides: a second after the first send was taken, SES takes sends again.
    time.sleep(max(0.0, min(entry["timestamp"] for entry in sends) + 1.05 - time.time()))
    assert endpoint.send("later") is None
    assert endpoint.send_quota()["SentLast24Hours"] == 6.0


def test_the_send_over_the_daily_quota_is_refused(start):
    endpoint = start("--ses-rate", "100", "--ses-quota", "3")
    assert [endpoint.send(f"m{i}") for i in range(3)] == [None] * 3
    assert endpoint.send("m3") == QUOTA_EXCEEDED
    assert [(r["message"], r["tags"]) for r in endpoint.logged(endpoint.refusal_log)] == [
        (QUOTA_EXCEEDED[1], {"postline_message_id": "m3"})]
    assert len(endpoint.logged(endpoint.send_log)) == 3
    assert endpoint.send_quota() == {"Max24HourSend": 3.0, "MaxSendRate": 100.0, "SentLast24Hours": 3.0}


def test_a_restarted_endpoint_keeps_the_sends_of_the_last_24_hours(start, tmp_path):
    # A send taken more than 24 hours ago (by an earlier run) no longer counts.
    (tmp_path / "sends.jsonl").write_text(json.dumps({"ses_message_id": "old", "timestamp": time.time() - 86_402,
                                                      "tags": {}}) + "\n")
    first = start("--ses-quota", "4")
    assert first.send_quota()["SentLast24Hours"] == 0.0
    assert [first.send(f"m{i}") for i in range(3)] == [None] * 3
    first.stop()

    again = start("--ses-quota", "4")
    assert again.send_quota()["SentLast24Hours"] == 3.0
    assert again.send("m3") is None
    assert again.send("m4") == QUOTA_EXCEEDED


def test_the_24_hour_window_slides_and_the_quota_comes_back():
    day = 86_400
    limits = SesSendingLimits(rate=10, quota=2, accepted=[1000.2, 1000.7], now=1001.0)
    assert limits.refusal(1001.0) == "Daily message quota exceeded."
    assert limits.sent_last_24_hours(1000.9 + day) == 2  # both within 24 hours (to the second)
    assert limits.refusal(1001.0 + day) is None  # both 24 hours old
    assert limits.sent_last_24_hours(1001.0 + day) == 0


def test_a_day_moved_forward_on_the_local_clock_frees_the_quota_and_what_waits_on_a_queue(start, tmp_path):
    clock_file = tmp_path / "clock.json"
    endpoint = start("--ses-quota", "2", "--clock-file", str(clock_file))
    sqs = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{endpoint.port}", region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    queue = sqs.create_queue(QueueName="waits")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="for tomorrow", DelaySeconds=900)
    assert [endpoint.send(f"m{i}") for i in range(3)] == [None, None, QUOTA_EXCEEDED]
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)

    write_offset(clock_file, 86_402)  # postline local clock --advance 1d2s: the sends are over 24 hours old
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=queue)["Messages"]] == ["for tomorrow"]
    assert endpoint.send_quota()["SentLast24Hours"] == 0.0
    assert endpoint.send("m3") is None
    assert endpoint.logged(endpoint.send_log)[-1]["timestamp"] > time.time() + 86_000


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detached"])
@pytest.mark.parametrize(("variable", "value"), [("POSTLINE_LOCAL_SES_RATE", "abc"),
                                                 ("POSTLINE_LOCAL_SES_RATE", "0"),
                                                 ("POSTLINE_LOCAL_SES_QUOTA", "1.5")])
def test_local_up_refuses_a_limit_that_is_not_one_and_names_the_variable(tmp_path, detach, variable, value):
    env = dict(os.environ, POSTLINE_LOCAL_DIR=str(tmp_path / "state"), POSTLINE_OUTBOX=str(tmp_path / "outbox"),
               **{variable: value})
    result = subprocess.run([POSTLINE, "local", "up", "--aws-port", str(free_port()), "--api-port", str(free_port()),
                             *(["--detach"] if detach else [])], capture_output=True, text=True, env=env, timeout=60,
                            check=False)
    assert result.returncode == 1
    what = "a number of emails per second" if variable.endswith("RATE") else "a whole number of emails"
    assert result.stderr.strip().splitlines() == [f"error: {variable} must be {what} greater than 0, not '{value}'"]
    assert not (tmp_path / "state" / "local.json").exists()  # nothing was started


@pytest.mark.e2e
def test_local_up_gives_the_endpoint_the_limits_from_its_environment(tmp_path):
    env = dict(os.environ, POSTLINE_LOCAL_DIR=str(tmp_path / "state"), POSTLINE_OUTBOX=str(tmp_path / "outbox"),
               POSTLINE_LOCAL_SES_RATE="3", POSTLINE_LOCAL_SES_QUOTA="77")
    aws_port = free_port()

    def postline(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([POSTLINE, "local", *args], capture_output=True, text=True, env=env, timeout=120,
                              check=True)

    postline("up", "--detach", "--aws-port", str(aws_port), "--api-port", str(free_port()), "--smtp-port",
             str(free_port()), "--smtp-relay-port", str(free_port()))
    try:
        ses = boto3.client("sesv2", endpoint_url=f"http://127.0.0.1:{aws_port}", region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        assert ses.get_account()["SendQuota"] == {"Max24HourSend": 77.0, "MaxSendRate": 3.0, "SentLast24Hours": 0.0}
    finally:
        postline("down")
