"""End-to-end: the local stack's failures as an operator meets them, each one line on the terminal and exit 1:
`postline local up --detach` that cannot start (the reason comes from the background process, not only its log),
and a stack that dies while a command waits on it."""
from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.e2e.conftest import POSTLINE, ROOT, free_port, started_stack

pytestmark = pytest.mark.e2e


def test_local_up_detach_on_a_port_in_use_says_so_on_the_terminal(tmp_path):
    env = dict(os.environ, POSTLINE_LOCAL_DIR=str(tmp_path / "state"), POSTLINE_OUTBOX=str(tmp_path / "outbox"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([POSTLINE, "local", "up", "--detach", "--aws-port", str(port), "--api-port",
                                 str(free_port())], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 1
    assert result.stderr == (f"error: port {port} is in use by another process: stop it, or choose another port "
                             "with --aws-port\n")
    assert not (tmp_path / "state" / "local.json").exists()


def test_local_up_with_a_missing_deploy_config_refuses_before_starting_anything(tmp_path):
    env = dict(os.environ, POSTLINE_LOCAL_DIR=str(tmp_path / "state"), POSTLINE_OUTBOX=str(tmp_path / "outbox"))
    (tmp_path / "outbox").mkdir()
    (tmp_path / "outbox" / "kept.eml").write_text("an earlier run's email")
    result = subprocess.run([POSTLINE, "local", "up", "--detach", "--config", "nope.json", "--aws-port",
                             str(free_port())], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr == (f"error: --config: postline config {tmp_path / 'nope.json'} does not exist (start from "
                             f"{ROOT / 'infra/config/example.json'})\n")
    assert not (tmp_path / "state" / "local.json").exists()
    assert (tmp_path / "outbox" / "kept.eml").read_text() == "an earlier run's email"


def test_a_stack_that_dies_while_a_command_waits_is_one_line(tmp_path):
    with started_stack(tmp_path) as stack:
        waiting = subprocess.Popen([POSTLINE, "status", "never-sent", "--wait", "600"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=stack.env, cwd=ROOT)
        stack.cli("local", "down")
        _, stderr = waiting.communicate(timeout=120)
    assert waiting.returncode == 1
    assert stderr == (f"error: cannot reach the AWS endpoint {stack.endpoint}: is the local stack up? "
                      "`postline local up`\n")
