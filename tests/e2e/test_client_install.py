"""End-to-end: the client as an application installs it. A wheel built from this checkout is installed alone
(`pip install postline`, no extra) into a fresh virtualenv, which then has none of the CLI's dependencies; the
application's code there sends through the local stack, each template on its own stream's queue, and
`postline events --follow` shows what became of the email."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import POSTLINE, ROOT

pytestmark = pytest.mark.e2e

# Distributions the `cli` extra brings (pyproject.toml): an application's install must have none of them.
CLI_ONLY = {"click", "rich", "moto", "pygal", "aiosmtpd", "jinja2", "pynamodb", "aws-lambda-powertools",
            "css-inline", "inscriptis", "tzdata", "aws-cdk-lib", "pytest"}

APPLICATION = """
import json, os, sys, time
start = time.perf_counter()
from postline.client import PostlineClient, WrongStream
import_seconds = time.perf_counter() - start
import boto3

sqs = boto3.client("sqs")
queues = {stream: sqs.get_queue_url(QueueName=f"postline-{stream}")["QueueUrl"]
          for stream in ("critical", "transactional", "marketing")}
mail = PostlineClient(queues, sqs, templates_table="postline-templates")
data = json.loads(sys.argv[2])
try:
    mail.send("password-reset", "ada@example.com", data, stream="marketing", id=sys.argv[1] + "-wrong")
    refusal = None
except WrongStream as error:
    refusal = str(error)
message_id = mail.send("password-reset", "ada@example.com", data, id=sys.argv[1])
print(json.dumps({"import_seconds": import_seconds, "refusal": refusal, "message_id": message_id,
                  "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def run(*args, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kw)
    assert result.returncode == 0, f"{args} exited {result.returncode}: {result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def application_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with only `pip install postline` from a wheel of this checkout (built from a copy, so the
    checkout gets no build/ or egg-info)."""
    work = tmp_path_factory.mktemp("client-install")
    source = work / "source"
    for part in ("pyproject.toml", "layers/common/postline", "cli/postline_cli"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        (source / part).parent.mkdir(parents=True, exist_ok=True)
        copy(ROOT / part, source / part, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                           if (ROOT / part).is_dir() else {}))
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", work / "dist", source)
    [wheel] = (work / "dist").glob("postline-*.whl")
    venv = work / "app-venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel)
    return venv


@pytest.fixture(scope="module")
def stack(local_stack):
    """The e2e package's stack: the application's idempotency key is its own."""
    return local_stack


def test_the_client_installs_without_the_cli_and_its_dependencies(application_venv):
    installed = {row["name"].lower() for row in json.loads(run(
        application_venv / "bin" / "python", "-m", "pip", "list", "--format", "json").stdout)}
    assert {"postline", "boto3", "email-validator"} <= installed
    assert sorted(installed & CLI_ONLY) == []
    cli = subprocess.run([application_venv / "bin" / "postline", "--help"], capture_output=True, text=True)
    assert (cli.returncode, cli.stdout) == (1, "")
    assert cli.stderr == ("error: postline's CLI needs its extra (click is not installed): "
                          "pip install 'postline[cli]'\n")


def test_the_installed_client_sends_on_the_templates_stream_and_postline_events_shows_the_outcome(
        application_venv, stack, tmp_path):
    follower = subprocess.Popen([POSTLINE, "events", "--follow", "--json"], env=stack.env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(90, follower.kill)
    watchdog.start()
    try:
        key = f"client-{uuid.uuid4().hex[:8]}"
        data = json.loads((ROOT / "templates" / "password-reset" / "example.json").read_text())
        sent = json.loads(run(application_venv / "bin" / "python", "-c", APPLICATION, key, json.dumps(data),
                              env=stack.env, cwd=tmp_path).stdout)
        print(f"import postline.client in the application's virtualenv: {sent['import_seconds'] * 1000:.0f} ms")
        assert sent["refusal"] == ("template 'password-reset' is in the critical stream, not marketing: "
                                   "it goes on the critical queue")
        assert not {"click", "rich", "moto", "jinja2", "pynamodb", "aws_lambda_powertools"} & set(sent["modules"])
        assert stack.wait_for(key, {"delivered"})["status"] == "delivered"
        assert stack.cli_json("status", key)["stream"] == "critical"

        seen = []
        while ("email.delivered", sent["message_id"]) not in seen:
            line = follower.stdout.readline()
            if not line:
                raise AssertionError(f"no email.delivered event for {sent['message_id']}; saw {seen}: "
                                     f"{follower.stderr.read()[-2000:]}")
            event = json.loads(line)
            seen.append((event["detail-type"], event["detail"].get("message_id")))
        assert ("email.sent", sent["message_id"]) in seen
    finally:
        watchdog.cancel()
        follower.send_signal(signal.SIGINT)
        _, errors = follower.communicate(timeout=30)  # reads what it still prints: a full pipe would hold it up
    assert follower.returncode == 0, errors
