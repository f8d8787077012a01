"""Every route of the public HTTP API, every method, over real HTTP on the local stack: the headers that keep the
token in the URL from leaking (no Referer, no caching, no sniffing), the pages' strict Content-Security-Policy with
frame-ancestors 'none', HEAD and OPTIONS answered without side effects, 405 with Allow for anything else, and a POST
body past 8 KB refused from its Content-Length before it is read."""
from __future__ import annotations

import base64
import hashlib
import re
import socket
import uuid
from urllib.parse import urlsplit

import pytest

from postline.pages import CONTENT_SECURITY_POLICY
from tests.e2e.test_endpoints import event_types, newsletter, request

PUBLIC = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
PAGE = {**PUBLIC, "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY",
        "Content-Type": "text/html; charset=utf-8"}
ALLOW = {"o": "GET, HEAD, OPTIONS", "c": "GET, HEAD, OPTIONS", "u": "GET, HEAD, POST, OPTIONS"}


@pytest.fixture(scope="module")
def links(local_stack):
    address = f"headers-{uuid.uuid4().hex[:8]}@example.org"
    message_id, found = newsletter(local_stack, address)
    base = found["pixel"].rsplit("/o/", 1)[0]
    return {"message_id": message_id, "base": base, "o": found["pixel"], "c": found["clicks"][0],
            "u": found["unsubscribe"], "bad": {kind: f"{base}/{kind}/not-a-token" for kind in "ocu"}}


def token_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


def assert_headers(headers: dict, expected: dict, url: str) -> None:
    assert {name: headers.get(name) for name in expected} == expected
    assert "Set-Cookie" not in headers and "Content-Location" not in headers
    assert not any(token_of(url) in value for value in headers.values())  # the token never leaves in a header


def test_the_pages_send_a_strict_policy_and_keep_the_token(local_stack, links):
    for url, status in ((links["u"], 200), (links["bad"]["u"], 404), (links["bad"]["c"], 404)):
        got, headers, body = request(url)
        assert got == status
        assert_headers(headers, PAGE, url)
        # The policy allows the page's one stylesheet by its hash, nothing else: no script, image or frame.
        style = re.search(rb"<style>(.*?)</style>", body, re.DOTALL).group(1)
        assert f"'sha256-{base64.b64encode(hashlib.sha256(style).digest()).decode()}'" in CONTENT_SECURITY_POLICY
        assert b"<script" not in body and b"<img" not in body and b"<iframe" not in body
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY


def test_the_pixel_sends_a_gif_and_what_keeps_it_uncached(local_stack, links):
    for url in (links["o"], links["bad"]["o"]):  # the same answer for a token that is not one
        status, headers, body = request(url)
        assert status == 200 and body.startswith(b"GIF89a")
        assert_headers(headers, {**PUBLIC, "Content-Type": "image/gif",
                                 "Cache-Control": "no-store, no-cache, max-age=0, private"}, url)


def test_the_redirect_sends_the_target_and_no_referrer(local_stack, links):
    status, headers, body = request(links["c"])
    assert status == 302 and body == b""
    assert headers["Location"].startswith("https://")
    assert_headers(headers, PUBLIC, links["c"])


def test_head_answers_as_get_without_a_body_or_an_effect(local_stack, links):
    before = event_types(local_stack, links["message_id"])
    for kind in "ocu":
        for url in (links[kind], links["bad"][kind]):
            get_status, get_headers, _ = request(url)
            status, headers, body = request(url, "HEAD")
            assert (status, body) == (get_status, b"")
            assert {k: v for k, v in headers.items() if k not in ("Date", "Content-Length")} == {
                k: v for k, v in get_headers.items() if k not in ("Date", "Content-Length")}
    after = event_types(local_stack, links["message_id"])
    # Only the GETs counted: a HEAD is a link checker's, never an open or a click.
    assert after.count("opened") + after.count("machine_opened") == before.count("opened") + before.count(
        "machine_opened") + 1
    assert after.count("clicked") + after.count("machine_clicked") == before.count("clicked") + before.count(
        "machine_clicked") + 1


@pytest.mark.parametrize("kind", ["o", "c", "u"])
def test_options_says_what_is_allowed(local_stack, links, kind):
    status, headers, body = request(links[kind], "OPTIONS")
    assert (status, body, headers["Allow"]) == (204, b"", ALLOW[kind])
    assert_headers(headers, PUBLIC, links[kind])
    assert not [name for name in headers if name.lower().startswith("access-control-")]  # no cross-origin use


@pytest.mark.parametrize("kind, method", [(kind, method) for kind in "ocu" for method in ("PUT", "PATCH", "DELETE")]
                         + [("o", "POST"), ("c", "POST")])
def test_any_other_method_is_405_with_allow(local_stack, links, kind, method):
    status, headers, body = request(links[kind], method, b"")
    assert status == 405 and headers["Allow"] == ALLOW[kind]
    assert_headers(headers, PAGE, links[kind])
    assert b"<h1>Not allowed</h1>" in body


def test_a_post_body_past_8_kb_is_refused_and_unsubscribes_nobody(local_stack, links):
    body = b"List-Unsubscribe=One-Click&pad=" + b"x" * (8 * 1024)
    status, headers, page = request(links["u"], "POST", body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413 and b"Request too large" in page
    assert_headers(headers, PAGE, links["u"])
    assert "unsubscribed" not in event_types(local_stack, links["message_id"])


def test_a_huge_declared_body_is_refused_without_waiting_for_it(local_stack, links):
    """A client that announces 100 MB and sends a few bytes gets its 413 at once: nothing waits to read the rest."""
    parts = urlsplit(links["u"])
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: "
                           "application/x-www-form-urlencoded\r\nContent-Length: 100000000\r\n\r\nList-Unsub".encode())
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert "unsubscribed" not in event_types(local_stack, links["message_id"])
