"""Signed tokens in the open, click and unsubscribe URLs: only tokens postline signed are ever honoured."""
from __future__ import annotations

import base64
import json
import re

import pytest

from postline.contract import message_id_for
from postline.suppression import erased_address
from postline.tokens import CLICK, OPEN, UNSUBSCRIBE, KeyRing

from .fakes import KEY_NEW, KEY_OLD, secret_json

MESSAGE_ID = message_id_for("order-1234")
SUBSCRIBER = erased_address("ada.lovelace@example.com", b"e" * 32)
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- the signing secret --------------------------------------------------------------------------------------------

def test_from_secret_reads_active_key_and_all_keys():
    ring = KeyRing.from_secret(secret_json())
    assert ring.active_key_id == "k2"
    assert ring.keys == {"k1": KEY_OLD, "k2": KEY_NEW}


def test_active_key_id_must_be_among_the_keys():
    with pytest.raises(ValueError, match="active key id is not among its keys"):
        KeyRing.from_secret(secret_json(active="k3"))


def test_short_keys_are_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        KeyRing.from_secret(secret_json(active="k1", keys={"k1": b"x" * 31}))
    with pytest.raises(ValueError, match="at least 32 bytes"):  # even a retired one
        KeyRing.from_secret(secret_json(active="k1", keys={"k1": b"x" * 32, "k0": b"short"}))


def test_secret_that_is_not_json_is_refused():
    with pytest.raises(ValueError):
        KeyRing.from_secret("not json")


# --- round trips ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [OPEN, UNSUBSCRIBE])
def test_open_and_unsubscribe_tokens_verify(keyring, kind):
    claims = keyring.verify(keyring.sign(kind, MESSAGE_ID))
    assert claims is not None
    assert (claims.kind, claims.message_id, claims.target, claims.key_id) == (kind, MESSAGE_ID, None, "k2")
    assert claims.subscriber is None  # links sent before unsubscribe tokens carried the subscriber still work


def test_unsubscribe_token_carries_the_subscribers_erased_name(keyring):
    claims = keyring.verify(keyring.sign(UNSUBSCRIBE, MESSAGE_ID, SUBSCRIBER))
    assert (claims.kind, claims.message_id, claims.subscriber, claims.target) == (
        UNSUBSCRIBE, MESSAGE_ID, SUBSCRIBER, None)


@pytest.mark.parametrize("target", [
    "https://shop.example.com/orders/1234",
    "https://shop.example.com/p?utm_source=postline&utm_medium=email&q=a+b%20c#reviews",
    "http://example.com/#/spa/route?x=1",
    "https://例え.jp/パス?検索=東京&emoji=🎉#節",
    "https://example.com/search?q=" + "ab%2F" * 2000,
    "https://example.com/a.b/c?d=e.f&g=h..i",  # dots in the target must not confuse the token format
    "https://example.com/?redirect=https%3A%2F%2Fother.example%2F",
])
def test_click_target_survives_exactly(keyring, target):
    token = keyring.sign(CLICK, MESSAGE_ID, target)
    claims = keyring.verify(token)
    assert claims is not None and claims.kind == CLICK
    assert claims.target == target
    assert claims.message_id == MESSAGE_ID


@pytest.mark.parametrize("kind, target", [(OPEN, None), (CLICK, "https://example.com/?a=1&b=ü"), (UNSUBSCRIBE, None)])
def test_tokens_are_url_safe(keyring, kind, target):
    assert URL_SAFE.match(keyring.sign(kind, MESSAGE_ID, target))


def test_token_never_carries_the_recipient_address(keyring):
    recipient = "ada.lovelace@example.com"
    message_id = message_id_for(recipient)  # even when the caller used the address as its idempotency key
    for kind, target in ((OPEN, None), (UNSUBSCRIBE, None), (UNSUBSCRIBE, SUBSCRIBER),
                         (CLICK, "https://example.com/welcome")):
        token = keyring.sign(kind, message_id, target)
        payload = _unb64(token.split(".")[0]).decode()
        assert "@" not in token and "@" not in payload
        assert recipient not in payload and "ada.lovelace" not in payload
        assert keyring.verify(token).message_id == message_id


def test_different_messages_get_different_tokens(keyring):
    assert keyring.sign(OPEN, message_id_for("a")) != keyring.sign(OPEN, message_id_for("b"))


# --- key rotation --------------------------------------------------------------------------------------------------

def test_token_signed_with_retired_key_still_verifies(keyring):
    before_rotation = KeyRing.from_secret(secret_json(active="k1"))
    token = before_rotation.sign(UNSUBSCRIBE, MESSAGE_ID)
    claims = keyring.verify(token)  # k2 is active now, k1 still listed
    assert claims is not None and claims.key_id == "k1" and claims.message_id == MESSAGE_ID


def test_token_signed_with_a_removed_key_no_longer_verifies():
    old = KeyRing.from_secret(secret_json(active="k1"))
    token = old.sign(OPEN, MESSAGE_ID)
    after_removal = KeyRing.from_secret(secret_json(active="k2", keys={"k2": KEY_NEW}))
    assert after_removal.verify(token) is None


def test_new_tokens_are_signed_with_the_active_key(keyring):
    assert keyring.verify(keyring.sign(OPEN, MESSAGE_ID)).key_id == "k2"


# --- everything else verifies to None ------------------------------------------------------------------------------

def test_tampered_payload_is_refused(keyring):
    token = keyring.sign(CLICK, MESSAGE_ID, "https://shop.example.com/")
    payload, mac = token.split(".")
    evil = _unb64(payload).replace(b"shop.example.com", b"evil.example.net")
    assert keyring.verify(f"{_b64(evil)}.{mac}") is None


def test_changed_message_id_is_refused(keyring):
    token = keyring.sign(UNSUBSCRIBE, MESSAGE_ID)
    payload, mac = token.split(".")
    other = _unb64(payload).replace(MESSAGE_ID.encode(), message_id_for("someone-else").encode())
    assert keyring.verify(f"{_b64(other)}.{mac}") is None


@pytest.mark.parametrize("position", [0, 7, 15])
def test_flipped_mac_byte_is_refused(keyring, position):
    payload, mac = keyring.sign(OPEN, MESSAGE_ID).split(".")
    raw = bytearray(_unb64(mac))
    raw[position] ^= 0x01
    assert keyring.verify(f"{payload}.{_b64(bytes(raw))}") is None


def test_truncated_tokens_are_refused(keyring):
    token = keyring.sign(CLICK, MESSAGE_ID, "https://example.com/")
    payload, mac = token.split(".")
    for broken in (token[:-1], token[:-4], f"{payload}.", payload, f"{payload}.{mac[:11]}", token[1:]):
        assert keyring.verify(broken) is None, broken


def test_token_signed_by_an_unknown_key_id_is_refused(keyring):
    stranger = KeyRing.from_secret(secret_json(active="k9", keys={"k9": b"s" * 32}))
    assert keyring.verify(stranger.sign(OPEN, MESSAGE_ID)) is None


def test_token_signed_with_a_guessed_key_under_our_key_id_is_refused(keyring):
    forger = KeyRing.from_secret(secret_json(active="k2", keys={"k2": b"g" * 32}))
    assert keyring.verify(forger.sign(UNSUBSCRIBE, MESSAGE_ID)) is None


def test_payload_swapped_from_another_messages_token_is_refused(keyring):
    mine = keyring.sign(UNSUBSCRIBE, MESSAGE_ID)
    theirs = keyring.sign(UNSUBSCRIBE, message_id_for("someone-else"))
    assert keyring.verify(f"{theirs.split('.')[0]}.{mine.split('.')[1]}") is None
    assert keyring.verify(f"{mine.split('.')[0]}.{theirs.split('.')[1]}") is None


def test_open_token_cannot_be_passed_off_as_click_with_a_target(keyring):
    open_token = keyring.sign(OPEN, MESSAGE_ID)
    payload, mac = open_token.split(".")
    as_click = _unb64(payload).replace(b"\x1fo\x1f", b"\x1fc\x1f") + b"\x1fhttps://evil.example/"
    assert keyring.verify(f"{_b64(as_click)}.{mac}") is None
    assert keyring.verify(open_token).kind == OPEN  # the genuine token says what it is


@pytest.mark.parametrize("kind, target", [
    (CLICK, None),                          # a click without a target would redirect nowhere
    (OPEN, "https://example.com/"),         # open and unsubscribe tokens carry no target
    (OPEN, SUBSCRIBER),
    (UNSUBSCRIBE, "https://example.com/"),  # an unsubscribe carries nothing but its subscriber's erased name
    (UNSUBSCRIBE, "ada.lovelace@example.com"),
    (UNSUBSCRIBE, SUBSCRIBER.upper()),
    ("x", None),                            # unknown kinds
    ("", None),
])
def test_signed_tokens_with_inconsistent_kind_are_refused(keyring, kind, target):
    assert keyring.verify(keyring.sign(kind, MESSAGE_ID, target)) is None


@pytest.mark.parametrize("garbage", [
    "", ".", "..", "a.b.c", "not a token", "abc", "abc.", ".abc", "%%%.%%%", "ü.ü", "====.====", "x" * 10_000,
    _b64(b"k2\x1fo\x1fm123") + "." + _b64(b"\x00" * 16),
    _b64(b"\xff\xfe\xfd") + "." + _b64(b"\x00" * 16),
    _b64(json.dumps({"kid": "k2"}).encode()) + "." + _b64(b"\x00" * 16),
])
def test_garbage_is_refused(keyring, garbage):
    assert keyring.verify(garbage) is None
