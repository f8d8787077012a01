"""End-to-end: the README's "Your first template" walkthrough and its Python application, pasted from the README
itself into a shell against a local stack, so the README cannot drift from what postline does. The shell has
`.venv` activated, as the README asks before its first example; the local stack's port stands in for 4566."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT

README = (ROOT / "README.md").read_text()
VENV_BIN = str(Path(sys.executable).parent)


def blocks(section: str, language: str) -> list[str]:
    """The code blocks of one language under the README heading ``## section``, in order."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```$", body, re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def stack(local_stack):
    """The e2e package's stack: the walkthrough's names (shipping-update, ship-A-1042, welcome-ada) are its own."""
    return local_stack


def shell(stack, script: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(stack.env, PATH=f"{VENV_BIN}:{stack.env['PATH']}")
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_first_template_walkthrough_publishes_previews_and_delivers(stack, tmp_path):
    write_files, publish_and_send = blocks("Your first template", "sh")

    assert shell(stack, write_files, tmp_path).returncode == 0
    result = shell(stack, publish_and_send, tmp_path)

    assert result.returncode == 0, result.stderr
    assert "Leave it at the door." in (tmp_path / "preview.html").read_text()
    assert stack.wait_for("ship-A-1042", {"delivered"})["status"] == "delivered"
    [sent] = [mail for mail in stack.outbox_for("ada@example.com") if "A-1042" in mail["Subject"]]
    assert sent["Subject"] == "Your order A-1042 has shipped"
    text = sent.get_body(("plain",)).get_content()
    assert "- DHL: " in text and "- Post: no tracking yet" in text


def test_the_python_application_enqueues_and_reads_its_events(stack, tmp_path):
    [local_environment] = [block for block in blocks("Your application", "sh") if "127.0.0.1:4566" in block]
    [application] = blocks("Your application", "python")
    (tmp_path / "app.py").write_text(application)
    environment = local_environment.replace("127.0.0.1:4566", stack.endpoint.removeprefix("http://"))
    env = dict(stack.env, PATH=f"{VENV_BIN}:{stack.env['PATH']}")
    process = subprocess.Popen(["bash", "-c", f"{environment}\nexec python -u app.py"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, process.kill)  # the application reads events forever
    watchdog.start()
    try:
        queued = process.stdout.readline().split()
        assert queued[:1] == ["queued"], process.stderr.read()
        seen = set()
        while ("email.delivered", queued[1]) not in seen:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"no email.delivered event for {queued[1]}; saw {sorted(seen)}")
            seen.add(tuple(line.split()))
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()
    assert stack.cli_json("status", "welcome-ada")["message_id"] == queued[1]
