"""End to end: an email sent through the local stack, looked at in the outbox viewer in Chromium, records no open
until the person loads remote images."""
from __future__ import annotations

import json

import pytest

from postline_cli.web.outbox import outbox_routes
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

OPENS = {"opened", "machine_opened"}


def event_types(stack, message_id: str) -> set[str]:
    return {event["type"] for event in stack.cli_json("status", message_id)["events"]}


def test_a_sent_email_is_shown_as_sent_and_opened_only_when_its_images_are_loaded(
        browser_stack, page, web_server, screenshot):
    data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
    stack = browser_stack
    message_id = stack.cli_json("send", "--template", "welcome", "--to", "ada@example.com", "--data",
                                json.dumps({**data, "name": "Ada"}))["message_id"]
    assert stack.wait_for(message_id, {"delivered"})["status"] == "delivered"
    viewer = web_server(outbox_routes(stack.outbox, stack.send_log))

    page.goto(f"{viewer}/outbox")
    row = page.locator("tbody tr").filter(has_text="ada@example.com")
    assert row.locator("td").all_inner_texts()[1:5] == ["ada@example.com", "Welcome to Lumen, Ada",
                                                        "transactional", "welcome"]
    screenshot(page, "outbox-local-stack-list")

    row.locator("a").click()
    page.wait_for_load_state("load")  # the page, its iframe and whatever images the iframe may load
    assert page.locator("h1").inner_text() == "Welcome to Lumen, Ada"
    assert "Connect your first data source" in page.inner_text("pre.text-part")
    assert "Connect your first data source" in page.frame_locator("iframe.email").locator("body").inner_text()
    screenshot(page, "outbox-local-stack-email")
    assert not event_types(stack, message_id) & OPENS

    with page.expect_response(lambda response: response.url.startswith(f"{stack.api_url}/o/")) as pixel:
        page.click("text=Load remote images")
    assert pixel.value.status == 200
    assert event_types(stack, message_id) & OPENS
