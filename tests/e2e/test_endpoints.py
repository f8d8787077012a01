"""The public endpoints over real HTTP on the local stack: open pixel, click redirect, unsubscribe (RFC 8058)."""
from __future__ import annotations

import base64
import http.client
import json
import re
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from postline.engagement import MACHINE_OPEN_SECONDS
from postline.tokens import CLICK, KeyRing
from postline_cli.local import resources
from tests.e2e.conftest import ROOT, only_marketing_is_suppressed

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
           "Version/17.5 Safari/605.1.15")


def request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                       headers={"User-Agent": BROWSER, **(headers or {})})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def newsletter(local_stack, address: str) -> tuple[str, dict]:
    data = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
    sent = local_stack.cli_json("send", "--template", "newsletter", "--to", address, "--data", json.dumps(data),
                                "--campaign", "june")
    local_stack.wait_for(sent["message_id"], statuses={"delivered"})
    mail = local_stack.outbox_for(address)[0]
    html = mail.get_body(("html",)).get_content()
    links = {
        "pixel": re.search(r'src="([^"]+/o/[^"]+)"', html).group(1),
        "clicks": re.findall(r'href="([^"]+/c/[^"]+)"', html),
        "unsubscribe": mail["List-Unsubscribe"].split(",")[0].strip(" <>"),
    }
    return sent["message_id"], links


def event_types(local_stack, message_id: str) -> list[str]:
    return [e["type"] for e in local_stack.cli_json("status", message_id)["events"]]


@pytest.fixture(scope="module")
def mail(local_stack):
    address = f"reader-{uuid.uuid4().hex[:8]}@example.org"
    return address, *newsletter(local_stack, address)


def test_the_pixel_is_always_a_gif_and_records_opens_by_who_fetched_it(local_stack, mail):
    _, message_id, links = mail
    status, headers, body = request(links["pixel"],
                                    headers={"User-Agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"})
    assert status == 200 and headers["Content-Type"] == "image/gif" and body.startswith(b"GIF89a")
    assert "no-store" in headers["Cache-Control"]
    assert event_types(local_stack, message_id).count("machine_opened") == 1
    events = local_stack.cli_json("status", message_id)["events"]
    went = max(datetime.fromisoformat(e["time"]).timestamp() for e in events if e["type"] in ("send_attempt", "sent"))
    time.sleep(max(0.0, went + MACHINE_OPEN_SECONDS + 0.5 - time.time()))  # past the prefetch window: a person reads it
    request(links["pixel"])
    assert event_types(local_stack, message_id).count("opened") == 1
    for bogus in (links["pixel"][:-3], links["pixel"].rsplit("/", 1)[0] + "/garbage"):
        status, headers, body = request(bogus)  # the same answer: nothing tells a valid token from another
        assert status == 200 and body.startswith(b"GIF89a")


def test_a_click_redirects_to_exactly_the_original_url_and_is_recorded(local_stack, mail):
    _, message_id, links = mail
    data = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
    status, headers, _ = request(links["clicks"][0])
    assert status == 302
    assert headers["Location"] in {a["url"] for a in data["articles"]} | {data["cta_url"]}
    assert "clicked" in event_types(local_stack, message_id)


def tampered_tokens(links: dict, local_stack) -> list[str]:
    base, token = links["clicks"][0].rsplit("/", 1)
    payload, mac = token.split(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    other_token = next(t for t in (c.rsplit("/", 1)[1] for c in links["clicks"]) if t != token)
    foreign = KeyRing("k1", {"k1": b"x" * 32})
    ours = KeyRing.from_secret((Path(local_stack.env["POSTLINE_LOCAL_DIR"]) / "signing-keys.json").read_text())
    claims = ours.verify(token)
    retired = KeyRing("k0", {"k0": b"y" * 32})  # a key that is no longer in the secret
    return [
        f"{base}/{payload}.{flipped}",                                   # flipped byte
        f"{base}/{payload}.{other_token.split('.')[1]}",                 # another link's signature
        f"{base}/{token[:-5]}",                                          # truncated
        f"{base}/{foreign.sign(CLICK, claims.message_id, 'https://evil.example')}",   # foreign key
        f"{base}/{retired.sign(CLICK, claims.message_id, claims.target)}",           # expired key id
        f"{base}/{foreign.sign(CLICK, claims.message_id, 'javascript:alert(1)')}",   # javascript: target
        f"{base}/{_swap_target(payload, mac)}",                          # target swapped, old signature
    ]


def _swap_target(payload: str, mac: str) -> str:
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).split(b"\x1f")
    raw[-1] = b"https://evil.example/phish"
    return base64.urlsafe_b64encode(b"\x1f".join(raw)).rstrip(b"=").decode() + "." + mac


def test_tampered_click_tokens_never_redirect(local_stack, mail):
    _, _, links = mail
    for url in tampered_tokens(links, local_stack):
        status, headers, body = request(url)
        assert status == 404, url
        assert "Location" not in headers
        assert b"not valid" in body


def test_get_shows_a_page_and_changes_nothing_then_one_click_post_unsubscribes(local_stack, mail):
    address, message_id, links = mail
    status, headers, body = request(links["unsubscribe"])
    assert status == 200 and b"Unsubscribe" in body and b"<form method=\"post\"" in body
    assert address.encode() not in body  # the address is shown masked
    assert local_stack.cli_json("suppressions", "show", address)["suppressions"] == []

    for _ in range(2):  # exactly as mail providers send it, and repeated
        status, headers, body = request(links["unsubscribe"], "POST", b"List-Unsubscribe=One-Click",
                                        {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200 and "Location" not in headers
    shown = local_stack.cli_json("suppressions", "show", address)["suppressions"]
    assert [(s["scope"], s["reason"]) for s in shown] == [("marketing", "unsubscribe")]
    assert event_types(local_stack, message_id).count("unsubscribed") == 1

    only_marketing_is_suppressed(local_stack, address)

    status, _, body = request(links["unsubscribe"], "POST", b"action=resubscribe",
                              {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and b"again" in body
    assert local_stack.cli_json("suppressions", "show", address)["suppressions"] == []


def test_one_click_still_unsubscribes_after_the_message_record_has_expired(local_stack):
    address = f"expired-{uuid.uuid4().hex[:8]}@example.org"
    message_id, links = newsletter(local_stack, address)
    local_stack.client("dynamodb").delete_item(  # what DynamoDB's TTL does after message_ttl_days
        TableName=resources.TABLES["POSTLINE_MESSAGES_TABLE"], Key={"message_id": {"S": message_id}})

    status, _, body = request(links["unsubscribe"])
    assert status == 200 and b"Your address" in body
    status, _, _ = request(links["unsubscribe"], "POST", b"List-Unsubscribe=One-Click",
                           {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    shown = local_stack.cli_json("suppressions", "show", address)["suppressions"]  # found under its keyed hash
    assert [(s["email"][:7], s["scope"], s["reason"]) for s in shown] == [("erased:", "marketing", "unsubscribe")]
    news = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
    again = local_stack.cli_json("send", "--template", "newsletter", "--to", address, "--data", json.dumps(news))
    assert local_stack.wait_for(again["message_id"])["status"] == "suppressed"

    local_stack.cli("suppressions", "remove", address, "--scope", "marketing", "--reason", "asked to rejoin")
    assert local_stack.cli_json("suppressions", "show", address)["suppressions"] == []


def test_multipart_one_click_post(local_stack):
    address = f"multipart-{uuid.uuid4().hex[:8]}@example.org"
    _, links = newsletter(local_stack, address)
    boundary = "----postline"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n"
            f"--{boundary}--\r\n").encode()
    status, headers, _ = request(links["unsubscribe"], "POST", body,
                                 {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and "Location" not in headers
    shown = local_stack.cli_json("suppressions", "show", address)["suppressions"]
    assert [(s["scope"], s["reason"]) for s in shown] == [("marketing", "unsubscribe")]


def test_an_invalid_unsubscribe_token_is_a_404_for_get_and_post(local_stack, mail):
    _, _, links = mail
    bad = links["unsubscribe"][:-4]
    assert request(bad)[0] == 404
    assert request(bad, "POST", b"List-Unsubscribe=One-Click",
                   {"Content-Type": "application/x-www-form-urlencoded"})[0] == 404
