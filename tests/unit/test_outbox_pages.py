"""The outbox viewer's pages, answered without a browser: what the list reads, what an email's document may load,
and what no URL can reach."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from postline_cli.web.outbox import list_outbox, viewer_routes
from postline_cli.web.server import WebApp, response_headers
from tests.outbox_emails import newsletter_html, write_email

HOST = {"host": "127.0.0.1:8025"}
PIXEL = "https://t.example.com/o/open-token"


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 4, hour, minute, tzinfo=timezone.utc)


@pytest.fixture
def outbox(tmp_path):
    folder = tmp_path / "outbox"
    write_email(folder, "mnewsletter1", html=newsletter_html(PIXEL, "https://t.example.com/c/click-token"),
                sent_at=at(9, 30))
    return folder


@pytest.fixture
def app(outbox) -> WebApp:
    return WebApp(viewer_routes(outbox), 8025)


def get(app: WebApp, path: str):
    return app.respond("GET", path, HOST)


def test_the_list_is_newest_first_and_reads_stream_template_and_campaign_from_the_send_log(tmp_path, outbox):
    write_email(outbox, "mreset1", to="grace@example.org", subject="Reset your password", sent_at=at(10, 15))
    write_email(outbox, "mwelcome1", to="linus@example.net", subject="Welcome", sent_at=at(8))
    send_log = tmp_path / "ses-send-log.jsonl"
    send_log.write_text(json.dumps({"tags": {"postline_message_id": "mreset1", "postline_stream": "critical",
                                             "postline_template": "password-reset"}}) + "\n"
                        + '{"tags": {"postline_mess')  # a line still being written
    emails = list_outbox(outbox, send_log)
    assert [(e.email_id, e.to, e.sent_at) for e in emails] == [
        ("mreset1", "grace@example.org", at(10, 15)), ("mnewsletter1", "ada@example.com", at(9, 30)),
        ("mwelcome1", "linus@example.net", at(8))]
    assert (emails[0].stream, emails[0].template, emails[0].campaign) == ("critical", "password-reset", "")
    assert emails[1].stream == ""  # not in the log: unknown, not guessed


def test_the_filter_matches_every_word_in_address_subject_and_tags(app, outbox):
    write_email(outbox, "mreset1", to="grace@example.org", subject="Reset your password")
    assert "mreset1" in get(app, "/outbox?q=GRACE+reset").body
    assert "mnewsletter1" not in get(app, "/outbox?q=GRACE+reset").body
    assert "0 of 2 emails match" in get(app, "/outbox?q=nobody").body


def test_an_empty_outbox_says_where_emails_will_appear(tmp_path):
    body = get(WebApp(viewer_routes(tmp_path / "empty"), 8025), "/outbox").body
    assert "The outbox is empty" in body and str(tmp_path / "empty") in body


def test_subjects_and_addresses_are_escaped_on_the_pages(app, outbox):
    write_email(outbox, "mxss", subject='<script>alert("x")</script>', to='"<b>Eve</b>" <eve@example.com>')
    for path in ("/outbox", "/outbox/mxss"):
        body = get(app, path).body
        assert "<script>alert" not in body and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
        assert "<b>Eve</b>" not in body


def test_the_email_document_may_load_no_remote_image_until_asked(app):
    blocked = get(app, "/outbox/mnewsletter1/html")
    policy = response_headers(blocked)["Content-Security-Policy"]
    assert "img-src data: cid:;" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert "sandbox allow-popups allow-popups-to-escape-sandbox" in policy  # also when opened on its own
    assert f' src="{PIXEL}"' not in blocked.body and f' data-blocked-src="{PIXEL}"' in blocked.body

    loaded = get(app, "/outbox/mnewsletter1/html?images=1")
    assert "img-src data: cid: http: https:;" in response_headers(loaded)["Content-Security-Policy"]
    assert f' src="{PIXEL}"' in loaded.body


def test_the_email_document_may_be_framed_only_by_the_viewer(app):
    headers = response_headers(get(app, "/outbox/mnewsletter1/html"))
    assert "frame-ancestors 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "SAMEORIGIN"


def test_the_emails_links_open_in_a_new_tab(app):
    assert '<head><base target="_blank"><meta charset="utf-8">' in get(app, "/outbox/mnewsletter1/html").body


def test_the_iframe_is_sandboxed_without_scripts(app):
    body = get(app, "/outbox/mnewsletter1").body
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in body
    assert 'src="/outbox/mnewsletter1/html"' in body


def test_the_raw_email_is_the_file_as_an_attachment(app, outbox):
    raw = get(app, "/outbox/mnewsletter1/raw")
    assert raw.body == (outbox / "mnewsletter1.eml").read_bytes()
    assert raw.content_type == "message/rfc822"
    assert raw.headers["Content-Disposition"] == 'attachment; filename="mnewsletter1.eml"'


@pytest.mark.parametrize("path", ["/outbox/..%2Fsecret", "/outbox/..%2Fsecret/raw", "/outbox/.hidden/html",
                                  "/outbox/missing", "/outbox/missing/raw", "/outbox/missing/html"])
def test_no_url_reaches_a_file_outside_the_outbox_or_one_that_is_not_there(app, outbox, path):
    (outbox.parent / "secret.eml").write_bytes(b"Subject: private\r\n\r\nnot for the viewer")
    (outbox / ".hidden.eml").write_bytes(b"Subject: private\r\n\r\nnot for the viewer")
    response = get(app, path)
    assert response.status == 404
    assert "private" not in str(response.body) and "not for the viewer" not in str(response.body)


def test_the_root_leads_to_the_list(app):
    response = get(app, "/")
    assert (response.status, response.headers["Location"]) == (303, "/outbox")
