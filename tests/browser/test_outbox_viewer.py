"""The outbox viewer in Chromium: the list, one email as its recipient would see it, and the open pixel left alone
until the person asks for remote images."""
from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timezone

import pytest

from postline_cli.web.outbox import outbox_routes
from postline_cli.web.server import CONTENT_SECURITY_POLICY, Response, Route
from tests.e2e.conftest import POSTLINE
from tests.outbox_emails import newsletter_html, write_email

GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


@pytest.fixture
def tracking(web_server):
    """A stand-in for the HTTP API's open pixel and click redirect on its own loopback origin: what it was asked."""
    hits: list[str] = []

    def pixel(request):
        hits.append(request.path)
        return Response(GIF, content_type="image/gif")

    url = web_server([Route("GET", "/o/{token}", pixel)])
    return url, hits


@pytest.fixture
def viewer(tmp_path, web_server, tracking):
    tracking_url, _ = tracking
    outbox, send_log = tmp_path / "outbox", tmp_path / "ses-send-log.jsonl"
    write_email(outbox, "mnewsletter1", subject="The December issue",
                html=newsletter_html(f"{tracking_url}/o/open-token", f"{tracking_url}/c/click-token"),
                text="Hello Ada,\n\nthree things we shipped this month.\n\nUnsubscribe: https://t.example.com/u/x")
    write_email(outbox, "mreset1", to="grace@example.org", subject="Reset your password",
                html="<p>Use the link below within 30 minutes.</p>", text="Use the link below within 30 minutes.",
                sent_at=datetime(2026, 12, 4, 10, 15, tzinfo=timezone.utc))
    send_log.write_text("".join(json.dumps({"tags": tags}) + "\n" for tags in (
        {"postline_message_id": "mnewsletter1", "postline_stream": "marketing", "postline_template": "newsletter",
         "postline_campaign": "december"},
        {"postline_message_id": "mreset1", "postline_stream": "critical", "postline_template": "password-reset"})))
    return web_server(outbox_routes(outbox, send_log))


def test_the_list_shows_each_email_newest_first_with_its_stream_and_template(page, viewer, screenshot):
    response = page.goto(f"{viewer}/outbox")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).inner_text().split("\t")[:6] == [
        "2026-12-04 10:15:00 UTC", "grace@example.org", "Reset your password", "critical", "password-reset", ""]
    assert rows.nth(1).inner_text().split("\t")[:6] == [
        "2026-12-04 09:30:00 UTC", "ada@example.com", "The December issue", "marketing", "newsletter", "december"]
    screenshot(page, "outbox-list")


def test_the_filter_box_narrows_the_list(page, viewer):
    page.goto(f"{viewer}/outbox")
    page.fill("input[name=q]", "december")
    page.click("button:has-text('Filter')")
    assert page.locator("tbody tr").count() == 1
    assert page.locator("tbody tr a").inner_text() == "The December issue"
    assert "1 of 2 emails match" in page.inner_text("header")


def test_an_email_is_shown_as_sent_with_its_text_part_and_headers_and_the_pixel_is_not_fetched(
        page, browser_log, viewer, tracking, screenshot):
    tracking_url, pixel_hits = tracking
    page.goto(f"{viewer}/outbox")
    page.click("text=The December issue")
    page.wait_for_load_state("load")

    assert page.locator("h1").first.inner_text() == "The December issue"
    assert "three things we shipped this month." in page.inner_text("pre.text-part")
    headers = dict(zip(page.locator("table.headers th").all_inner_texts(),
                       page.locator("table.headers td").all_inner_texts(), strict=True))
    assert headers["X-Postline-Message-Id"] == "mnewsletter1"
    assert headers["Message-ID"] == "<0100-mnewsletter1@email.amazonses.com>"
    email_frame = page.frame_locator("iframe.email")
    assert email_frame.locator("h1").inner_text() == "The December issue"
    assert email_frame.locator("a").get_attribute("href") == f"{tracking_url}/c/click-token"
    screenshot(page, "outbox-email")

    assert pixel_hits == []
    assert not [url for url in browser_log.requests if url.startswith(tracking_url)]  # not even tried


def test_loading_remote_images_fetches_the_pixel_and_says_so(page, viewer, tracking, screenshot):
    tracking_url, pixel_hits = tracking
    page.goto(f"{viewer}/outbox/mnewsletter1")
    with page.expect_response(f"{tracking_url}/o/open-token") as pixel:
        page.click("text=Load remote images")
    assert pixel.value.status == 200
    assert pixel_hits == ["/o/open-token"]
    assert "recorded an open" in page.inner_text(".notice")
    screenshot(page, "outbox-email-images")


def test_a_remote_image_hidden_in_css_is_still_kept_out_by_the_emails_policy(page, browser_log, tmp_path,
                                                                            web_server, tracking):
    tracking_url, pixel_hits = tracking
    blocked = re.escape(f"'{tracking_url}/o/in-css' violates the following Content Security Policy directive: "
                        f'"img-src data: cid:"')
    browser_log.allow(blocked)
    outbox = tmp_path / "outbox"
    write_email(outbox, "mcss", html=f'<div style="width:10px;height:10px;background:url({tracking_url}/o/in-css)">'
                                     f"</div><p>Hi</p>")
    viewer = web_server(outbox_routes(outbox))
    page.goto(f"{viewer}/outbox/mcss")
    page.frame_locator("iframe.email").locator("p").wait_for()
    page.wait_for_load_state("networkidle")
    assert pixel_hits == []
    assert [error for error in browser_log.console_errors if re.search(blocked, error)]


def test_the_emails_html_cannot_run_scripts(page, browser_log, tmp_path, web_server):
    sandboxed = r"Blocked script execution in '.*/outbox/mhostile/html' because the document's frame is sandboxed"
    browser_log.allow(sandboxed)  # Chromium saying the sandbox stopped it, checked below
    outbox = tmp_path / "outbox"
    write_email(outbox, "mhostile", html='<p id="greeting">Hi</p><script>document.getElementById("greeting")'
                                         '.textContent = "script ran"; parent.document.title = "owned"</script>')
    viewer = web_server(outbox_routes(outbox))
    page.goto(f"{viewer}/outbox/mhostile")
    assert page.frame_locator("iframe.email").locator("#greeting").inner_text() == "Hi"
    assert page.title() != "owned"
    assert page.evaluate("document.querySelector('iframe.email').contentDocument") is None  # another origin
    assert [error for error in browser_log.console_errors if re.search(sandboxed, error)]


def test_the_raw_email_downloads_as_it_is_in_the_outbox(page, viewer, tmp_path):
    page.goto(f"{viewer}/outbox/mnewsletter1")
    with page.expect_download() as download:
        page.click("text=Download the .eml")
    assert download.value.suggested_filename == "mnewsletter1.eml"
    assert download.value.path().read_bytes() == (tmp_path / "outbox" / "mnewsletter1.eml").read_bytes()


def test_postline_outbox_serve_prints_where_it_serves_and_serves_the_viewer(page, tmp_path):
    write_email(tmp_path / "outbox", "mnewsletter1")
    server = subprocess.Popen([POSTLINE, "outbox", "serve", "--port", "0", "--outbox", str(tmp_path / "outbox")],
                              stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={**os.environ, "POSTLINE_LOCAL_DIR": str(tmp_path / "state")})
    try:
        printed = server.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/outbox", printed).group()
        page.goto(url.removesuffix("/outbox"))  # the root leads to the list
        assert page.url == url
        assert page.locator("tbody tr a").inner_text() == "The December issue"
    finally:
        server.terminate()
        server.wait(10)
