"""The local stack's SMTP relay: what a stream configured with ``"transport": "smtp"`` hands its email to, on
loopback (aiosmtpd), so the SMTP transport (postline.smtp) runs end to end without a provider.

It asks for AUTH (the credentials are in the local Secrets Manager, as a real relay's are) and writes each email it
accepts to the outbox as the local SES does: ``<postline message id>.eml`` (from the ``X-Postline-Message-Id``
header), with the Message-ID and Date a relay adds when they are missing, then answers ``250 ... queued as ID``. It
writes nothing to SES's send log: a relay that is not SES sends no SES events, so these emails stay ``sent``.

It misbehaves on request, chosen by the recipient's address as SES's mailbox simulator is (``relay_fault``)::

    smtp-421@example.com        421 to RCPT TO, and the connection closed (the relay is going away)
    smtp-450@example.com        450 4.2.0 to RCPT TO (greylisting, a full mailbox)
    smtp-550-5.1.1@example.com  550 5.1.1 to RCPT TO (no such user)
    smtp-drop@example.com       the email is taken (and written to the outbox), then the connection dropped
                                before the reply: the client cannot know the relay has it

each for the first attempt to that address only, or the first N with ``xN`` (``smtp-450x3@``); a ``+label`` is
ignored (``smtp-450+a1@``) so each test can use an address of its own. Every other address is accepted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from pathlib import Path

from postline.ses import MESSAGE_ID_HEADER
from postline.settings import STREAMS

from .aws_endpoint import _UNSAFE_FILENAME, _set_headers

DEFAULT_SMTP_RELAY_PORT = 2525
STREAMS_VARIABLE = "POSTLINE_LOCAL_SMTP_STREAMS"
RELAY_SECRET = "postline/local-smtp-relay"  # noqa: S105 - the secret's name, not its value
RELAY_HOSTNAME = "relay.local"
DATA_SIZE_LIMIT = 40 * 1024 * 1024  # SES's own limit for a message, so both paths take the same emails

REFUSE_421, REFUSE_450, REFUSE_550_USER_UNKNOWN, DROP_AFTER_DATA = "421", "450", "550-5.1.1", "drop"
_FAULT_ADDRESS = re.compile(r"^smtp-(421|450|550-5\.1\.1|drop)(?:x(\d{1,4}))?(?:\+[^@]*)?@", re.IGNORECASE)
_REPLIES = {
    REFUSE_421: "421 4.3.2 relay.local closing the connection, try again later",
    REFUSE_450: "450 4.2.0 Mailbox busy, try again later",
    REFUSE_550_USER_UNKNOWN: "550 5.1.1 User unknown",
}


# What aiosmtpd says on every connection of a relay that takes AUTH without TLS, as this one does on purpose.
_EXPECTED_NOTICES = ("auth_required == True but auth_require_tls == False", "Session.login_data is deprecated")


class _WithoutExpectedNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_EXPECTED_NOTICES)


class RelaySetupError(ValueError):
    """The relay's environment names something that is not a stream."""


def smtp_streams(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The streams ``POSTLINE_LOCAL_SMTP_STREAMS`` (comma-separated) sends through the local relay."""
    named = [name.strip() for name in environ.get(STREAMS_VARIABLE, "").split(",") if name.strip()]
    unknown = [name for name in named if name not in STREAMS]
    if unknown:
        raise RelaySetupError(
            f"{STREAMS_VARIABLE}: {', '.join(unknown)} is not a stream (streams: {', '.join(STREAMS)})"
        )
    return tuple(dict.fromkeys(named))


def relays_setting(streams: tuple[str, ...], port: int) -> str:
    """``POSTLINE_SMTP_RELAYS`` for the send function: each stream named to the local relay, in plaintext (allowed
    on loopback only) with the local secret; empty when none is."""
    if not streams:
        return ""
    relay = {"host": "127.0.0.1", "port": port, "tls": "none", "secret": RELAY_SECRET}
    return json.dumps({stream: relay for stream in streams})


def relay_fault(recipient: str) -> tuple[str, int] | None:
    """The fault the relay acts out for ``recipient`` and for how many attempts, or None: accept it."""
    found = _FAULT_ADDRESS.match(recipient)
    if not found:
        return None
    return found.group(1).lower(), int(found.group(2) or 1)


def queue_id() -> str:
    """An id shaped like Postfix's queue ids."""
    return secrets.token_hex(6).upper()


@dataclass
class Delivered:
    queue_id: str
    path: Path


def write_to_outbox(outbox: Path, raw: bytes, queue: str, at: float) -> Path:
    """The email as the relay passes it on (a Message-ID and Date added if missing), in the outbox under postline's
    message id. Written aside first, so whoever lists ``*.eml`` never reads half of one."""
    headers = BytesHeaderParser().parsebytes(raw)
    missing = {
        name: value
        for name, value in (
            ("Message-ID", f"<{queue}@{RELAY_HOSTNAME}>"),
            ("Date", format_datetime(datetime.fromtimestamp(at, timezone.utc))),
        )
        if headers[name] is None
    }
    if missing:
        raw = _set_headers(raw, missing)
    name = _UNSAFE_FILENAME.sub("_", str(headers[MESSAGE_ID_HEADER] or "").strip() or queue)
    path = outbox / f"{name}.eml"
    partial = outbox / f".{name}.eml.part"
    partial.write_bytes(raw)
    os.replace(partial, path)
    return path


class _RelayHandler:
    """aiosmtpd's handler: faults by recipient, each accepted email written to the outbox."""

    def __init__(self, outbox: Path, clock: Callable[[], float]):
        self.outbox, self.clock = outbox, clock
        self.attempts: dict[str, int] = {}  # recipient (lower-cased) -> attempts seen, for the faults' counts
        self.delivered: list[Delivered] = []
        self._lock = threading.Lock()

    def _fault(self, recipient: str) -> str | None:
        fault = relay_fault(recipient)
        if fault is None:
            return None
        with self._lock:
            seen = self.attempts[recipient.lower()] = self.attempts.get(recipient.lower(), 0) + 1
        kind, times = fault
        return kind if seen <= times else None

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options) -> str:
        fault = self._fault(address)
        if fault == DROP_AFTER_DATA:
            envelope.drop_after_data = True  # aiosmtpd's Envelope takes attributes
        elif fault is not None:
            if fault == REFUSE_421:  # a 421 ends the session: closed once the reply is written
                asyncio.get_running_loop().call_soon(server.transport.close)
            return _REPLIES[fault]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        queue = queue_id()
        raw = envelope.original_content or envelope.content
        try:
            path = write_to_outbox(self.outbox, raw, queue, self.clock())
        except OSError as error:
            return f"451 4.3.0 could not store the message ({error.strerror})"
        with self._lock:
            self.delivered.append(Delivered(queue, path))
        if getattr(envelope, "drop_after_data", False):  # the relay has it; its reply never reaches the client
            server.transport.abort()
        return f"250 2.0.0 Ok: queued as {queue}"


class LocalSmtpRelay:
    """The relay in its own thread, until ``stop``."""

    def __init__(
        self, host: str, port: int, outbox: Path, credentials: tuple[str, str], clock: Callable[[], float] = time.time
    ):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        def authenticate(server, session, envelope, mechanism, auth_data):
            given = (
                (auth_data.login.decode(), auth_data.password.decode())
                if isinstance(auth_data, LoginPassword)
                else None
            )
            return AuthResult(
                success=given is not None and secrets.compare_digest("\0".join(given), "\0".join(credentials)),
                handled=False,
            )

        outbox.mkdir(parents=True, exist_ok=True)
        logging.getLogger("mail.log").addFilter(_WithoutExpectedNotices())
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
        self.handler = _RelayHandler(outbox, clock)
        # AUTH in plaintext: it never leaves loopback (the transport refuses plaintext to any other host). PLAIN
        # only: after a refused PLAIN, smtplib tries LOGIN, which aiosmtpd 1.4.6 leaves unanswered.
        self.controller = Controller(
            self.handler,
            hostname=host,
            port=port,
            server_hostname=RELAY_HOSTNAME,
            data_size_limit=DATA_SIZE_LIMIT,
            decode_data=False,
            enable_SMTPUTF8=True,
            authenticator=authenticate,
            auth_required=True,
            auth_require_tls=False,
            auth_exclude_mechanism=["LOGIN"],
        )

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def start_smtp_relay(secrets_client, host: str, port: int, outbox: Path, clock) -> LocalSmtpRelay:
    """The relay, with fresh credentials stored where the send function reads them (the local Secrets Manager)."""
    credentials = ("postline-local", secrets.token_urlsafe(24))
    value = json.dumps({"username": credentials[0], "password": credentials[1]})
    try:
        secrets_client.create_secret(Name=RELAY_SECRET, SecretString=value)
    except secrets_client.exceptions.ResourceExistsException:
        secrets_client.put_secret_value(SecretId=RELAY_SECRET, SecretString=value)
    relay = LocalSmtpRelay(host, port, outbox, credentials, clock)
    relay.start()
    return relay
