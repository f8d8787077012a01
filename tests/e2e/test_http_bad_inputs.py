"""The bad-request corpus (tests/fixtures/bad_inputs/http.json) over real HTTP against the local stack's HTTP API:
each request gets its exact status and the text a visitor sees, never a Set-Cookie, a Location only where a valid
click token earns one (to the signed target, whatever the query says), and changes nothing it may not: the newsletter
whose tokens the corpus uses records only the clicks and the one unsubscribe its cases declare."""
from __future__ import annotations

import http.client
import json
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from postline.suppression import suppression_key
from postline.tokens import CLICK, OPEN, UNSUBSCRIBE, KeyRing
from postline_cli.local import resources
from tests.e2e.test_endpoints import BROWSER, _swap_target, newsletter

ROOT = Path(__file__).resolve().parents[2]
CORPUS = json.loads((ROOT / "tests/fixtures/bad_inputs/http.json").read_text())["cases"]
# Each kind of event once, whoever caused it (a person, a scanner or a proxy).
KINDS = {"machine_opened": "opened", "machine_clicked": "clicked"}


def token_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


def tokens(local_stack, links: dict) -> dict[str, str]:
    """Every token the corpus names: the newsletter's own, and what an attacker makes of them."""
    ours = KeyRing.from_secret((Path(local_stack.env["POSTLINE_LOCAL_DIR"]) / "signing-keys.json").read_text())
    foreign, retired = KeyRing("k1", {"k1": b"x" * 32}), KeyRing("k0", {"k0": b"y" * 32})
    o, c, u = token_of(links["pixel"]), token_of(links["clicks"][0]), token_of(links["unsubscribe"])
    click = ours.verify(c)

    def flipped(token: str) -> str:
        return token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]

    return {
        "o": o, "c": c, "u": u, "c_target": click.target,
        "o_retired": retired.sign(OPEN, click.message_id),
        "c_truncated": c[:-5], "u_truncated": u[:-5], "c_flipped": flipped(c), "u_flipped": flipped(u),
        "c_foreign": foreign.sign(CLICK, click.message_id, "https://evil.example/"),
        "u_foreign": foreign.sign(UNSUBSCRIBE, click.message_id),
        "c_swapped": _swap_target(*c.split(".")),
        "c_javascript": ours.sign(CLICK, click.message_id, "javascript:alert(1)"),
        "c_crlf": ours.sign(CLICK, click.message_id, "https://ok.example/\r\nSet-Cookie: session=evil"),
        "huge": "A" * 6000 + "." + "B" * 43, "too_long": "A" * 70_000,
    }


def send(api_url: str, case: dict, values: dict[str, str]):
    parts = urlsplit(api_url)
    path = case["path"]
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    body = bytes.fromhex(case["body_hex"]) if "body_hex" in case else case.get("body", "").encode()
    body += b"x" * case.get("body_padding", 0)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    try:
        connection.request(case["method"], path, body=body or None,
                           headers={"User-Agent": BROWSER, **case.get("headers", {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def recorded(local_stack, message_id: str) -> Counter:
    items = local_stack.client("dynamodb").query(
        TableName=resources.TABLES["POSTLINE_EVENTS_TABLE"], KeyConditionExpression="message_id = :m",
        ExpressionAttributeValues={":m": {"S": message_id}}, ConsistentRead=True)["Items"]
    return Counter(KINDS.get(item["type"]["S"], item["type"]["S"]) for item in items)


def suppressions(local_stack, address: str) -> list[str]:
    items = local_stack.client("dynamodb").query(
        TableName=resources.TABLES["POSTLINE_SUPPRESSIONS_TABLE"], KeyConditionExpression="email = :e",
        ExpressionAttributeValues={":e": {"S": suppression_key(address)}}, ConsistentRead=True)["Items"]
    return sorted(item["scope"]["S"] for item in items)


@pytest.fixture(scope="module")
def target(local_stack, tmp_path_factory):
    address = f"http-corpus-{tmp_path_factory.getbasetemp().name[-6:]}@example.org"
    message_id, links = newsletter(local_stack, address)
    return address, message_id, tokens(local_stack, links)


def test_the_corpus_is_large_enough_and_named_once():
    assert len(CORPUS) >= 20
    assert len({case["name"] for case in CORPUS}) == len(CORPUS)


def test_every_bad_request_gets_its_exact_answer_and_changes_only_what_it_declares(local_stack, target):
    address, message_id, values = target
    expected, unsubscribed = recorded(local_stack, message_id), False
    assert suppressions(local_stack, address) == []
    answers, wanted = {}, {}
    for case in CORPUS:
        status, headers, body = send(local_stack.api_url, case, values)
        answers[case["name"]] = (status, headers.get("Location"), "Set-Cookie" in headers,
                                 case.get("content_type", "") in headers.get("Content-Type", ""),
                                 case.get("shows", "").encode() in body)
        location = case["location"].format(**values) if "location" in case else None
        wanted[case["name"]] = (case["status"], location, False, True, True)
        if case.get("effect"):
            expected[case["effect"]] += 1
            unsubscribed |= case["effect"] == "unsubscribed"
        # Only what the case declares was recorded, and a suppression only once a case unsubscribed.
        assert (case["name"], recorded(local_stack, message_id)) == (case["name"], expected)
        assert (case["name"], suppressions(local_stack, address)) == (case["name"],
                                                                      ["marketing"] if unsubscribed else [])
    assert answers == wanted
