"""End to end: ``postline dashboard`` run as an operator runs it, against the local stack, opened in Chromium: the
streams' figures are what ``postline stats --json`` prints, the sent emails are one click away in the outbox, and the
buttons pause and resume a campaign as ``postline campaigns show`` then tells."""
from __future__ import annotations

import json
import re
import subprocess
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.e2e.conftest import POSTLINE, ROOT, wait_until
from tests.unit.test_dashboard import at_path, shown

pytestmark = pytest.mark.e2e


def example(template: str) -> dict:
    return json.loads((ROOT / "templates" / template / "example.json").read_text())


def test_the_dashboard_of_the_local_stack(browser_stack, tmp_path, page, screenshot):
    stack = browser_stack
    address = f"ada-{uuid.uuid4().hex[:8]}@example.com"  # the stack is the browser tests': this test's own mail
    delivered_before = sum(view["totals"]["delivered"] for view in stack.cli_json("stats").values())
    sent = [stack.cli_json("send", "--template", template, "--to", address, "--data",
                           json.dumps(example(template)))["message_id"]
            for template in ("password-reset", "welcome")]
    for message_id in sent:
        assert stack.wait_for(message_id, {"delivered"})["status"] == "delivered"
    wait_until(lambda: sum(view["totals"]["delivered"] for view in stack.cli_json("stats").values())
               == delivered_before + 2, 30, "both deliveries counted")
    audience = tmp_path / "readers.csv"
    audience.write_text("email,name\nada@example.org,Ada\ngrace@example.org,Grace\n")
    start = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(timespec="seconds")
    stack.cli_json("campaigns", "create", "autumn", "--template", "newsletter", "--audience", str(audience),
                   "--data", json.dumps({k: v for k, v in example("newsletter").items() if k != "name"}),
                   "--at", start)

    server = subprocess.Popen([POSTLINE, "dashboard", "--port", "0"], stdout=subprocess.PIPE, text=True,
                              env=stack.env, cwd=ROOT)
    try:
        printed = server.stdout.readline()
        assert f"(the local stack at {stack.endpoint}; Ctrl-C stops it)" in printed
        url = re.search(r"http://127\.0\.0\.1:\d+/", printed).group()
        page.goto(url)
        streams = stack.cli_json("stats")
        figures = page.evaluate("Object.fromEntries([...document.querySelectorAll('[data-figure^=streams]')]"
                                ".map(e => [e.dataset.figure, e.textContent]))")
        assert len(figures) == 33
        for path, text in figures.items():
            assert text == shown(path, at_path(streams, path.removeprefix("streams."))), path
        row = page.locator("tr[data-campaign=autumn]")
        assert row.locator(".state").inner_text() == "scheduled"
        screenshot(page, "dashboard-local-stack")

        row.locator("button.pause").click()
        page.wait_for_url(url)
        assert stack.cli_json("campaigns", "show", "autumn")["state"] == "paused"
        row.locator("button.resume").click()
        page.wait_for_url(url)
        assert stack.cli_json("campaigns", "show", "autumn")["state"] == "scheduled"  # its start is still ahead

        page.click("text=Outbox")
        rows = page.locator("tbody tr").filter(has_text=address)
        assert rows.count() == 2
        assert sorted(rows.locator("td:nth-child(5)").all_inner_texts()) == ["password-reset", "welcome"]
    finally:
        server.terminate()
        server.wait(10)
