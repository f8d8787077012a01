"""Signed tokens for the tracking and unsubscribe URLs.

A token is ``base64url(payload).base64url(mac)``; the payload names the key id (for rotation), the kind
(``o`` open, ``c`` click, ``u`` unsubscribe), postline's message id, for clicks the target URL, and for
unsubscribes the recipient's keyed hash (``suppression.erased_address``), so the link still works after the
message's record has expired. It never carries an email address. The MAC is HMAC-SHA256 truncated to 128 bits
and compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from .suppression import is_erased_name

OPEN, CLICK, UNSUBSCRIBE = "o", "c", "u"
KINDS = (OPEN, CLICK, UNSUBSCRIBE)
_MAC_BYTES = 16
_SEPARATOR = "\x1f"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Only the form ``_b64`` writes decodes: no padding, no standard-alphabet characters, no other value in a last
    character's unused bits. So a token is exactly one string (anything that counts or dedupes by token can)."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not base64url as postline writes it")
    return data


@dataclass(frozen=True)
class Claims:
    kind: str
    message_id: str
    target: str | None = None  # clicks: the URL to redirect to
    key_id: str = ""
    subscriber: str | None = None  # unsubscribes: the recipient's erased name (older links have none)


@dataclass(frozen=True)
class KeyRing:
    """The active signing key and every key still accepted for verification."""

    active_key_id: str
    keys: dict[str, bytes]
    # Keys the hashes of erased addresses (``suppression.erased_address``); never rotated, or erased addresses
    # would stop being recognised.
    erasure_key: bytes | None = None

    @classmethod
    def from_secret(cls, secret_string: str) -> KeyRing:
        document = json.loads(secret_string)
        keys = {kid: base64.b64decode(value) for kid, value in document["keys"].items()}
        if document["active"] not in keys:
            raise ValueError("the signing secret's active key id is not among its keys")
        erasure_key = base64.b64decode(document["erasure_key"]) if document.get("erasure_key") else None
        if any(len(k) < 32 for k in [*keys.values(), *filter(None, [erasure_key])]):
            raise ValueError("signing keys must be at least 32 bytes")
        return cls(document["active"], keys, erasure_key)

    def sign(self, kind: str, message_id: str, extra: str | None = None) -> str:
        """A token for ``message_id``; ``extra`` is a click's target URL or an unsubscribe's subscriber."""
        fields = [self.active_key_id, kind, message_id] + ([extra] if extra is not None else [])
        payload = _SEPARATOR.join(fields).encode()
        mac = hmac.new(self.keys[self.active_key_id], payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return f"{_b64(payload)}.{_b64(mac)}"

    def verify(self, token: str) -> Claims | None:
        """The token's claims, or None for anything not signed by one of our keys."""
        try:
            encoded_payload, encoded_mac = token.split(".")
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
            fields = payload.decode().split(_SEPARATOR)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if len(fields) not in (3, 4) or fields[0] not in self.keys:
            return None
        expected = hmac.new(self.keys[fields[0]], payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(expected, mac):
            return None
        key_id, kind, message_id, *rest = fields
        if kind not in KINDS or (kind == CLICK and not rest) or (kind == OPEN and rest):
            return None
        extra = rest[0] if rest else None
        if kind == UNSUBSCRIBE:
            if extra is not None and not is_erased_name(extra):
                return None
            return Claims(kind, message_id, key_id=key_id, subscriber=extra)
        return Claims(kind, message_id, extra, key_id)


def key_id_of(token: str) -> str | None:
    """The key id a token claims (unverified), or None when it cannot be read."""
    try:
        return _unb64(token.split(".")[0]).decode().split(_SEPARATOR)[0]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


class RefreshingKeyRing:
    """The key ring as Secrets Manager has it now: loaded on first use, reloaded when older than ``max_age``,
    and reloaded early (at most once per ``min_interval``) when a token names a key this container has not
    seen, so a rotation reaches warm containers without a restart and a flood of bad tokens costs nothing."""

    def __init__(
        self,
        load: Callable[[], KeyRing],
        max_age: float = 600,
        min_interval: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._load, self._max_age, self._min_interval, self._clock = load, max_age, min_interval, clock
        self._ring: KeyRing | None = None
        self._loaded_at = 0.0

    @property
    def current(self) -> KeyRing:
        if self._ring is None or self._clock() - self._loaded_at > self._max_age:
            self._reload()
        return self._ring

    def _reload(self) -> None:
        self._ring, self._loaded_at = self._load(), self._clock()

    def sign(self, kind: str, message_id: str, extra: str | None = None) -> str:
        return self.current.sign(kind, message_id, extra)

    def verify(self, token: str) -> Claims | None:
        claims = self.current.verify(token)
        if claims is None:
            key_id = key_id_of(token)
            if key_id and key_id not in self._ring.keys and self._clock() - self._loaded_at > self._min_interval:
                self._reload()
                claims = self._ring.verify(token)
        return claims


def load_keyring(secret_id: str, secrets_client) -> KeyRing:
    value = secrets_client.get_secret_value(SecretId=secret_id)["SecretString"]
    return KeyRing.from_secret(value)
