"""Every CLI failure is one line on stderr (what is wrong, what to do) and a non-zero exit, never a traceback
unless POSTLINE_DEBUG asks for it; and against a loopback endpoint the CLI brings the local stack's credentials."""
from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path

import boto3
import click
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ProfileNotFound, ReadTimeoutError
from click.testing import CliRunner
from pynamodb.exceptions import ScanError

from postline import clients
from postline.models import ALL_MODELS
from postline_cli import main, views
from postline_cli.errors import explain
from postline_cli.main import cli
from postline_cli.target import is_loopback, target

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.fixture
def environ(monkeypatch, tmp_path):
    """No AWS settings, no local stack here and nothing cached from an earlier test; afterwards os.environ as it
    was (``target()`` writes to it)."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith(("AWS_", "POSTLINE_"))]:
        del os.environ[name]
    os.environ.update({"AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_EC2_METADATA_DISABLED": "true",
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
                       "POSTLINE_LOCAL_DIR": str(tmp_path / ".postline")})
    for model in ALL_MODELS:
        monkeypatch.setattr(model, "_connection", None)
        monkeypatch.setattr(model.Meta, "table_name", model.Meta.table_name)
    forget_clients()
    yield os.environ
    forget_clients()
    os.environ.clear()
    os.environ.update(saved)


def forget_clients() -> None:
    target.cache_clear()
    clients._session.cache_clear()
    clients.client.cache_clear()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_line_error(result) -> str:
    assert "Traceback" not in result.output
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.rstrip("\n")


def break_status(monkeypatch, error: BaseException) -> None:
    """``postline status`` raises ``error`` (and needs no AWS)."""
    def message_view(message_id):
        raise error

    monkeypatch.setattr(main, "target", lambda: None)
    monkeypatch.setattr(views, "message_view", message_view)


def test_an_unreachable_local_endpoint_is_one_line_saying_to_start_the_local_stack(environ):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    environ["AWS_ENDPOINT_URL"] = endpoint
    result = run("templates", "list")
    assert result.exit_code == 1
    assert one_line_error(result) == (
        f"error: cannot reach the AWS endpoint {endpoint}: is the local stack up? `postline local up`")


def test_no_credentials_against_aws_says_to_configure_them_or_start_the_local_stack(environ):
    environ["AWS_DEFAULT_REGION"] = "eu-west-1"
    result = run("templates", "list")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert line.startswith("error: no AWS credentials found: configure them")
    assert line.endswith("or start the local stack with `postline local up`")


def test_no_region_against_aws_says_to_set_one_or_start_the_local_stack(environ):
    environ.update({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"})
    result = run("status", "m1")
    assert result.exit_code == 1
    assert one_line_error(result) == (
        "error: no AWS region is set: set AWS_DEFAULT_REGION or a region in the AWS profile (`aws configure`), or "
        "start the local stack with `postline local up`")


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4566", "http://localhost:4566", "http://[::1]:4566"])
def test_a_loopback_endpoint_without_credentials_gets_the_local_stacks(environ, endpoint):
    environ["AWS_ENDPOINT_URL"] = endpoint
    target()
    session = boto3.session.Session()
    credentials = session.get_credentials()
    assert (credentials.access_key, credentials.secret_key, session.region_name) == ("testing", "testing", "us-east-1")


@pytest.mark.parametrize("given", [{"AWS_ACCESS_KEY_ID": "mine", "AWS_SECRET_ACCESS_KEY": "my-secret"},
                                   {"AWS_PROFILE": "local"}])
def test_credentials_the_environment_names_are_kept(environ, given):
    environ.update({"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", **given})
    target()
    assert {name: environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")} == {
        "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_PROFILE": None, **given}


def test_an_endpoint_elsewhere_gets_no_dummy_credentials(environ):
    environ["AWS_ENDPOINT_URL"] = "https://vpce-0a1b.dynamodb.eu-west-1.vpce.amazonaws.com"
    target()
    assert "AWS_ACCESS_KEY_ID" not in environ


@pytest.mark.parametrize("url, loopback", [
    ("http://127.0.0.1:4566", True), ("http://127.0.0.53", True), ("http://localhost:4566", True),
    ("http://[::1]:4566", True), ("http://10.0.0.5:4566", False), ("http://localhost.example.com:4566", False),
    ("https://dynamodb.us-east-1.amazonaws.com", False), ("", False),
])
def test_loopback_endpoints(url, loopback):
    assert is_loopback(url) is loopback


def test_templates_work_against_a_loopback_endpoint_without_credentials(environ):
    from moto.server import ThreadedMotoServer

    endpoint = f"http://127.0.0.1:{free_port()}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(endpoint.rsplit(":", 1)[1]), verbose=False)
    server.start()
    try:
        boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup",
                     aws_secret_access_key="setup").create_table(
            TableName="postline-templates", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}, {"AttributeName": "version", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"},
                                  {"AttributeName": "version", "AttributeType": "N"}])
        environ["AWS_ENDPOINT_URL"] = endpoint
        pushed = run("templates", "push", str(TEMPLATES / "welcome"), "--json")
        listed = run("templates", "list", "--json")
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
        server.stop()
    assert pushed.exit_code == 0, pushed.output
    assert listed.exit_code == 0, listed.output
    assert [t["name"] for t in json.loads(listed.stdout)] == ["welcome"]


def test_an_aws_refusal_behind_pynamodb_names_the_operation_code_and_message(environ, monkeypatch):
    environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:4566"
    refusal = ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "Requested resource not found"}},
                          "Scan")
    break_status(monkeypatch, ScanError("Failed to scan table: Requested resource not found", refusal))
    result = run("status", "m1")
    assert result.exit_code == 1
    assert one_line_error(result) == ("error: AWS refused Scan: ResourceNotFoundException: Requested resource not "
                                      "found: is the local stack up here? `postline local up` creates its resources")


def refused(code: str, message: str = "no") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "SendMessage")


@pytest.mark.parametrize("error, line", [
    (EndpointConnectionError(endpoint_url="https://sqs.eu-west-1.amazonaws.com/"),
     "cannot reach the AWS endpoint https://sqs.eu-west-1.amazonaws.com: check the network and any proxy settings"),
    (ReadTimeoutError(endpoint_url="https://sqs.eu-west-1.amazonaws.com/"),
     'cannot reach the AWS endpoint https://sqs.eu-west-1.amazonaws.com (Read timeout on endpoint URL: '
     '"https://sqs.eu-west-1.amazonaws.com/"): check the network and any proxy settings'),
    (refused("ExpiredTokenException", "The security token included in the request is expired"),
     "AWS refused SendMessage: ExpiredTokenException: The security token included in the request is expired: "
     "check the AWS credentials (expired? `aws sso login` renews an SSO session)"),
    (refused("AccessDenied"),
     "AWS refused SendMessage: AccessDenied: no: the credentials lack this permission; use a role that has it"),
    (refused("AWS.SimpleQueueService.NonExistentQueue"),
     "AWS refused SendMessage: AWS.SimpleQueueService.NonExistentQueue: no: is postline deployed to this account "
     "and region? (docs/deploy.md)"),
    (refused("ThrottlingException", "Rate exceeded"),
     "AWS refused SendMessage: ThrottlingException: Rate exceeded: AWS is throttling requests; try again in a moment"),
    (refused("InvalidParameterValue", "Value is\ninvalid"),
     "AWS refused SendMessage: InvalidParameterValue: Value is invalid (POSTLINE_DEBUG=1 shows the traceback)"),
    (ProfileNotFound(profile="work"),
     "AWS SDK error: The config profile (work) could not be found: check the AWS credentials and settings "
     "(AWS_PROFILE, ~/.aws/config)"),
    (KeyError(), "unexpected KeyError (a bug? POSTLINE_DEBUG=1 shows the traceback)"),
])
def test_each_failure_against_aws_says_what_is_wrong_and_what_to_do(environ, error, line):
    assert explain(error) == line


def test_an_unexpected_exception_is_one_line_and_exit_1(environ, monkeypatch):
    break_status(monkeypatch, RuntimeError("boom\non two lines"))
    result = run("status", "m1")
    assert result.exit_code == 1
    assert one_line_error(result) == (
        "error: unexpected RuntimeError: boom on two lines (a bug? POSTLINE_DEBUG=1 shows the traceback)")


def test_postline_debug_prints_the_traceback_before_the_line(environ, monkeypatch):
    break_status(monkeypatch, RuntimeError("boom"))
    environ["POSTLINE_DEBUG"] = "1"
    result = run("status", "m1")
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: unexpected RuntimeError: boom")


@pytest.mark.parametrize("raised, exit_code, stderr", [
    (click.Abort(), 1, "Aborted!\n"),
    (click.ClickException("in click's words"), 1, "Error: in click's words\n"),
    (click.exceptions.Exit(3), 3, ""),
    (SystemExit(4), 4, ""),
])
def test_clicks_own_exceptions_and_exits_stay_clicks(environ, monkeypatch, raised, exit_code, stderr):
    break_status(monkeypatch, raised)
    result = run("status", "m1")
    assert (result.exit_code, result.stderr) == (exit_code, stderr)


def test_a_usage_error_stays_clicks(environ):
    result = run("status")
    assert result.exit_code == 2
    assert "Usage:" in result.stderr and "Missing argument 'MESSAGE'" in result.stderr


def test_the_help_mentions_postline_debug():
    assert "POSTLINE_DEBUG=1" in run("--help").output


# ---------------------------------------------------------------- status: no record, --wait
def test_status_wait_returns_once_the_message_settles(environ, monkeypatch):
    answers = iter(["unknown", "rendered", "sent", "delivered", "delivered"])
    monkeypatch.setattr(views, "message_view", lambda reference: {
        "message_id": "m1", "status": (status := next(answers)), "found": status != "unknown", "events": []})
    view = views.settled_message_view("m1", wait_seconds=60, clock=lambda: 0.0, sleep=lambda seconds: None)
    assert view["status"] == "delivered"


def test_status_wait_shows_the_message_as_it_is_when_the_time_is_up(environ, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(views, "message_view", lambda reference: {"message_id": "m1", "status": "sent"})
    view = views.settled_message_view("m1", wait_seconds=2, clock=lambda: now[0],
                                      sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    assert (view["status"], now[0]) == ("sent", 2.0)


def test_no_record_after_waiting_exits_3(environ, monkeypatch):
    monkeypatch.setattr(main, "target", lambda: None)
    monkeypatch.setattr(views, "message_view", lambda reference: {
        "message_id": "m1", "status": "unknown", "found": False, "reason": views.NO_RECORD, "events": []})
    result = run("status", "m1", "--wait", "0.01")
    assert result.exit_code == 3
    assert result.stdout == ("m1: unknown: no record for this id (not received yet, never sent, or older than the "
                             "history kept)\n")  # one line, though longer than the 80 columns rich assumes here


# ---------------------------------------------------------------- the local stack
def test_a_local_stack_that_died_here_is_one_line_not_a_silent_switch_to_aws(environ, tmp_path):
    state_dir = Path(environ["POSTLINE_LOCAL_DIR"])
    state_dir.mkdir()
    (state_dir / "local.json").write_text(json.dumps({
        "pid": 2 ** 22 + 1, "endpoint": f"http://127.0.0.1:{free_port()}", "ready": True}))  # no such process
    result = run("status", "m1")
    assert result.exit_code == 1
    assert one_line_error(result) == (
        f"error: the local stack started in this folder is not answering (it died? its log: {state_dir}/local.log): "
        "`postline local down`, then `postline local up` starts it again")


def test_local_up_on_a_port_in_use_says_which_and_what_to_do(environ):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("local", "up", "--aws-port", str(port), "--api-port", str(free_port()))
    assert result.exit_code == 1
    assert one_line_error(result) == (
        f"error: port {port} is in use by another process: stop it, or choose another port with --aws-port")


def test_local_up_detach_with_a_state_folder_it_cannot_write_says_so(environ, tmp_path):
    (tmp_path / "a-file").write_text("")
    environ["POSTLINE_LOCAL_DIR"] = str(tmp_path / "a-file" / "state")
    result = run("local", "up", "--detach")
    assert result.exit_code == 1
    assert one_line_error(result) == (f"error: cannot write the local stack's state folder {tmp_path}/a-file/state: "
                                      "Not a directory (POSTLINE_LOCAL_DIR moves it)")


@pytest.mark.parametrize("log, reason", [
    ("[render] batch of 1\nerror: port 4566 is in use by another process: stop it, or choose another port with "
     "--aws-port\n", "port 4566 is in use by another process: stop it, or choose another port with --aws-port"),
    ("error: unexpected TemplateProblem: x (a bug? POSTLINE_DEBUG=1 shows the traceback)\n",
     "the local stack exited at start: unexpected TemplateProblem: x (a bug? POSTLINE_DEBUG=1 shows the traceback) "
     "(its log: LOG)"),
    ("Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'moto'\n",
     "the local stack exited at start: ModuleNotFoundError: No module named 'moto' (its log: LOG)"),
    ("", "the local stack exited at start: it wrote nothing (its log: LOG)"),
])
def test_a_detached_stack_that_exits_at_start_is_explained_by_what_it_wrote(tmp_path, log, reason):
    from postline_cli.local.stack import _why_it_exited

    log_file = tmp_path / "local.log"
    earlier = "error: port 3000 is in use by another process: from an earlier start\n"
    log_file.write_text(earlier + log)
    assert _why_it_exited(log_file, len(earlier)) == reason.replace("LOG", str(log_file))


def test_a_file_the_cli_cannot_use_is_named_not_called_a_bug():
    assert explain(PermissionError(13, "Permission denied", "/srv/list.csv")) == "Permission denied: /srv/list.csv"


# ---------------------------------------------------------------- the demo's table
def test_the_demo_shows_where_each_email_really_is_and_whole_addresses(monkeypatch, tmp_path):
    from rich.console import Console

    from postline_cli import demo, suppressions

    monkeypatch.setattr(suppressions, "iterate", lambda: [])
    sent = [demo.Sent("password reset", "m1", "delivered"), demo.Sent("newsletter", "m2", "complained")]
    views_by_id = {"m1": {"status": "delivered", "recipient": "ada@example.com", "template": "password-reset"},
                   "m2": {"status": "complained", "recipient": "complaint@simulator.amazonses.com",
                          "template": "newsletter"}}
    console = Console(width=200, soft_wrap=True, record=True)
    demo._report(console, sent, views_by_id, tmp_path / "mail")  # POSTLINE_OUTBOX outside the current folder
    shown = console.export_text()
    assert f"{tmp_path}/mail/m1.eml" in shown and "complaint@simulator.amazonses.com" in shown
    assert f"open them in a mail client): {tmp_path}/mail\n" in shown
