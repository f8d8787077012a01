"""The SMTP transport: a stream's email handed to an SMTP relay (SES's SMTP interface, or another provider).

Replies decide the outcome, as SES's API answers do (postline.ses): ``250`` sent, the relay's queue id kept as the
provider message id; ``4xx`` transient (the claim is released and the email waits on its queue, never counted as
sent nor failed); ``5xx`` permanent, ``failed`` with the reply as the reason, and a user-unknown reply (``5.1.1``)
also a hard-bounce suppression. A connection lost once the email's content was sent, before the relay's reply, is
an unknown outcome: the claim stays, as when SES's API does not answer, and postline never sends it again on its
own (docs/delivery-guarantees.md). A connection lost before that sent nothing: the email is tried once more on a
new connection.

TLS is implicit (465) or STARTTLS (587) with the certificate always verified; plaintext is refused for any relay
but one on this machine (the local stack's). Credentials come from a Secrets Manager secret, JSON
``{"username": ..., "password": ...}``, read when a connection is opened and read again after the relay refuses
them (rotation). Connections are kept open across a batch and across warm invocations: one idle for a while is
checked with NOOP before it is used, and replaced if it does not answer.
"""

from __future__ import annotations

import json
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from .ses import (
    PERMANENT,
    QUOTA_THROTTLE,
    RATE_THROTTLE,
    SENT,
    TRANSIENT,
    UNKNOWN,
    SendResult,
    message_tags,
    unverified,
)
from .transports import SMTP, Email

IMPLICIT_TLS, STARTTLS, PLAINTEXT = "implicit", "starttls", "none"
TLS_MODES = (IMPLICIT_TLS, STARTTLS, PLAINTEXT)
RELAY_KEYS = ("host", "port", "tls", "secret")
# Plaintext only where nothing leaves the machine: the local stack's relay.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# SES's SMTP endpoints (docs.aws.amazon.com/ses/latest/dg/smtp-connect.html): through them SES's events still flow,
# so postline adds the configuration set and message tags SES reads from these headers, and removes.
_SES_SMTP_HOST = re.compile(r"^email-smtp(-fips)?\.[a-z0-9-]+\.amazonaws\.com$", re.IGNORECASE)
CONFIGURATION_SET_HEADER = "X-SES-CONFIGURATION-SET"
MESSAGE_TAGS_HEADER = "X-SES-MESSAGE-TAGS"

TIMEOUT_SECONDS = 15  # as the SES client's read timeout: well inside the send function's 60 s
HEALTH_CHECK_IDLE_SECONDS = 1.0  # a connection idle this long is checked with NOOP before it carries an email

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
# Enhanced status codes that say the address cannot receive mail: bad mailbox, bad domain, domain accepts no mail.
_NO_SUCH_ADDRESS = {"5.1.1", "5.1.2", "5.1.10"}
_USER_UNKNOWN_WORDS = re.compile(
    r"user unknown|unknown user|no such user|recipient unknown|mailbox not found|"
    r"does not exist",
    re.IGNORECASE,
)
_AUTH_CODES = {530, 534, 535, 538}  # the relay wants (other) credentials: the relay's setup, not the email, is wrong
_QUEUED_AS = re.compile(r"queued as\s+<?([^\s>]+)", re.IGNORECASE)
_SES_OK = re.compile(r"^(?:2\.0\.0\s+)?ok\s+(\S+)", re.IGNORECASE)  # SES: "250 Ok <SES message id>"
_ADDRESS = re.compile(r"<?[^\s<>@:;,]+@[^\s<>;,]+>?")
MAIL, RCPT, DATA = "MAIL FROM", "RCPT TO", "DATA"


@dataclass(frozen=True)
class SmtpRelay:
    host: str
    port: int
    tls: str  # IMPLICIT_TLS, STARTTLS or PLAINTEXT (loopback only)
    secret: str | None = None  # the Secrets Manager secret (name or ARN) with the credentials; None: no AUTH

    @property
    def is_ses(self) -> bool:
        return bool(_SES_SMTP_HOST.match(self.host))


def parse_relays(text: str, streams: Collection[str]) -> dict[str, SmtpRelay]:
    """The relays of ``POSTLINE_SMTP_RELAYS``: JSON ``{stream: {"host", "port", "tls", "secret"}}``, every problem
    in one ValueError. Streams not named send through SES's API."""
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error})") from None
    if not isinstance(document, dict):
        raise ValueError('must be a JSON object {stream: {"host", "port", "tls", "secret"}}')
    problems: list[str] = []
    relays: dict[str, SmtpRelay] = {}
    for stream, raw in document.items():
        if stream not in streams:
            problems.append(f"{stream}: not a stream ({', '.join(streams)})")
            continue
        if not isinstance(raw, dict):
            problems.append(f"{stream}: must be an object with host, port, tls and secret")
            continue
        before = len(problems)
        problems += [
            f"{stream}.{key}: unknown key (known: {', '.join(RELAY_KEYS)})" for key in raw if key not in RELAY_KEYS
        ]
        host, port, tls, secret = (raw.get(key) for key in RELAY_KEYS)
        if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host):
            problems.append(f"{stream}.host: must be the relay's host name")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            problems.append(f"{stream}.port: must be a port number (465 for implicit TLS, 587 for STARTTLS)")
        if tls not in TLS_MODES:
            problems.append(f"{stream}.tls: must be one of {', '.join(TLS_MODES)}, got {tls!r}")
        elif tls == PLAINTEXT and host not in LOOPBACK_HOSTS:
            problems.append(
                f'{stream}.tls: "none" (plaintext) is allowed only for a relay on this machine '
                f"({', '.join(LOOPBACK_HOSTS)}); use implicit or starttls"
            )
        if secret is not None and (not isinstance(secret, str) or not secret.strip()):
            problems.append(f"{stream}.secret: must be a Secrets Manager secret's name or ARN")
        if len(problems) == before:
            relays[stream] = SmtpRelay(host, port, tls, secret)
    if problems:
        raise ValueError("; ".join(problems))
    return relays


def classify(code: int, text: str, stage: str, *, sender: str, recipient: str, ses_relay: bool = False) -> SendResult:
    """What an SMTP reply other than success means for the email. The reason quotes the reply without any
    address in it (reasons are logged)."""
    reply = _ADDRESS.sub("<address>", f"{code} {text}".strip())[:300]
    reason = f"the SMTP relay answered {reply} (to {stage})"
    if 400 <= code < 500:
        throttle = None
        if ses_relay and "maximum sending rate" in text.lower():
            throttle = RATE_THROTTLE
        elif ses_relay and "quota" in text.lower():
            throttle = QUOTA_THROTTLE
        return SendResult(TRANSIENT, reason=reason, throttle=throttle)
    if code in _AUTH_CODES:
        return SendResult(TRANSIENT, reason=f"{reason}: the relay refuses postline's credentials (check its secret)")
    if ses_relay and (waiting := unverified(text, sender, recipient)) is not None:
        return waiting
    if 500 <= code < 600:
        enhanced = _ENHANCED.match(text)
        no_such_address = stage != MAIL and (
            enhanced.group(0) in _NO_SUCH_ADDRESS
            if enhanced
            else code in (550, 551, 553) and bool(_USER_UNKNOWN_WORDS.search(text))
        )
        return SendResult(PERMANENT, reason=reason, hard_bounce=no_such_address)
    # Not a reply SMTP defines here: nothing says the relay kept the email, nor that it will.
    return SendResult(TRANSIENT, reason=reason)


def provider_message_id(text: str) -> str | None:
    """The relay's id for the email in its ``250`` reply: ``queued as ID`` (Postfix, most providers), SES's
    ``Ok ID``, else the reply itself (without addresses), so what the relay said is kept."""
    found = _QUEUED_AS.search(text) or _SES_OK.match(text)
    if found:
        return found.group(1)[:200]
    return _ADDRESS.sub("<address>", text).strip()[:200] or None


def ses_headers(email: Email) -> bytes:
    """The headers by which SES's SMTP interface applies the stream's configuration set and the message tags."""
    tags = message_tags(
        message_id=email.message_id,
        retry=email.retry,
        stream=email.stream,
        template=email.template,
        campaign=email.campaign,
        tags=email.tags,
    )
    # Names are the application's: in a header, anything but SES's tag characters could end it.
    pairs = [f"{re.sub(r'[^A-Za-z0-9_-]', '_', tag['Name'])}={tag['Value']}" for tag in tags]
    joined = ", ".join(pairs)
    if len(joined) > 900:  # within SMTP's 998 characters a line: folded
        joined = ",\r\n ".join(pairs)
    return (f"{CONFIGURATION_SET_HEADER}: {email.configuration_set}\r\n{MESSAGE_TAGS_HEADER}: {joined}\r\n").encode(
        "ascii"
    )


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"\r\n|\r|\n", b"\r\n", data)


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: lines starting with a dot doubled, ended by CRLF . CRLF (RFC 5321 4.5.2)."""
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _RelayProblem(Exception):
    """The relay could not be reached or refused the session: no email was offered."""


class Credentials:
    """The relay's user name and password from Secrets Manager, cached until the relay refuses them."""

    def __init__(self, secrets, secret_id: str) -> None:
        self._secrets, self._secret_id = secrets, secret_id
        self._value: tuple[str, str] | None = None
        self._lock = threading.Lock()

    def get(self) -> tuple[str, str]:
        with self._lock:
            if self._value is None:
                try:
                    document = json.loads(self._secrets.get_secret_value(SecretId=self._secret_id)["SecretString"])
                    self._value = (str(document["username"]), str(document["password"]))
                except (KeyError, TypeError, ValueError):
                    raise _RelayProblem('its secret is not JSON {"username": ..., "password": ...}') from None
                except Exception as error:  # noqa: BLE001 - Secrets Manager unreachable or refusing: wait
                    raise _RelayProblem(f"its credentials could not be read: {type(error).__name__}") from None
            return self._value

    def forget(self) -> None:
        with self._lock:
            self._value = None


class SmtpTransport:
    """One relay's transport, holding its open connections (one per sending thread at most)."""

    name = SMTP

    def __init__(
        self,
        relay: SmtpRelay,
        *,
        secrets: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.relay = relay
        self.credentials = Credentials(secrets, relay.secret) if relay.secret else None
        self.ssl_context = ssl_context or ssl.create_default_context()  # verifies the certificate and host name
        self.timeout = timeout
        self.clock = clock
        self.connections_opened = 0
        self._idle: list[tuple[smtplib.SMTP, float]] = []
        self._lock = threading.Lock()

    def send(self, email: Email) -> SendResult:
        mime = _crlf(email.mime)
        if self.relay.is_ses:
            mime = ses_headers(email) + mime
        for attempt in (1, 2):
            try:
                connection, fresh = self._take(email, new=attempt > 1)
            except _RelayProblem as problem:
                return SendResult(TRANSIENT, reason=f"the SMTP relay {self.relay.host}: {problem}")
            answer = self._transaction(connection, email, mime, fresh)
            if answer is not None:
                return answer
        return SendResult(
            TRANSIENT, reason=f"the SMTP relay {self.relay.host} closed the connection before the email was sent"
        )

    def close(self) -> None:
        """Quit every idle connection (tests; a Lambda container just ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            _quit(connection)

    def _transaction(self, connection: smtplib.SMTP, email: Email, mime: bytes, fresh: bool) -> SendResult | None:
        """One MAIL, RCPT, DATA exchange. None: the connection was lost (or closed by a 421) before the content was
        sent, so nothing was taken and the email may go on a new connection."""
        sender, recipient = parseaddr(email.sender)[1], parseaddr(email.recipient)[1]
        international = not (sender + recipient).isascii()
        content_sent = False
        try:
            if international and not connection.has_extn("smtputf8"):
                self._give_back(connection)
                return SendResult(
                    PERMANENT, reason="the SMTP relay does not accept internationalised addresses (no SMTPUTF8)"
                )
            for stage, command, expected in (
                (MAIL, lambda: connection.mail(sender, ["SMTPUTF8"] if international else ()), (250,)),
                (RCPT, lambda: connection.rcpt(recipient), (250, 251)),
                (DATA, lambda: connection.docmd("data"), (354,)),
            ):
                code, text = command()
                if code not in expected:
                    if code == 421 and not fresh:  # a reused connection the relay was closing: try a new one
                        _quit(connection)
                        return None
                    return self._refused(connection, code, text, stage, email)
            content_sent = True
            connection.send(_dot_stuffed(mime))
            code, text = connection.getreply()
        except (smtplib.SMTPException, OSError) as error:
            _quit(connection)
            if not content_sent:
                return None
            return SendResult(
                UNKNOWN,
                reason=f"the SMTP relay {self.relay.host} did not answer once the email was "
                f"sent ({type(error).__name__}): it may have taken it",
            )
        if 200 <= code < 300:
            self._give_back(connection)
            return SendResult(SENT, ses_message_id=provider_message_id(_text(text)))
        return self._refused(connection, code, text, DATA, email)

    def _refused(self, connection: smtplib.SMTP, code: int, text: bytes | str, stage: str, email: Email) -> SendResult:
        """Classify a refusal, and keep the connection for the next email if the relay still talks on it."""
        answer = classify(
            code, _text(text), stage, sender=email.sender, recipient=email.recipient, ses_relay=self.relay.is_ses
        )
        if code == 421:
            _quit(connection)
        else:
            try:
                if connection.rset()[0] == 250:
                    self._give_back(connection)
                else:
                    _quit(connection)
            except (smtplib.SMTPException, OSError):
                _quit(connection)
        return answer

    def _take(self, email: Email, new: bool) -> tuple[smtplib.SMTP, bool]:
        """An open connection (whether it is new): the most recently used idle one, checked with NOOP if it has
        been idle a while, else a new one."""
        while not new:
            with self._lock:
                if not self._idle:
                    break
                connection, since = self._idle.pop()
            if self.clock() - since < HEALTH_CHECK_IDLE_SECONDS:
                return connection, False
            try:
                if connection.noop()[0] == 250:
                    return connection, False
            except (smtplib.SMTPException, OSError):
                pass
            _quit(connection)
        return self._open(parseaddr(email.sender)[1].rpartition("@")[2] or "localhost"), True

    def _give_back(self, connection: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append((connection, self.clock()))

    def _open(self, helo: str) -> smtplib.SMTP:
        relay = self.relay
        credentials = self.credentials.get() if self.credentials else None
        connection: smtplib.SMTP
        try:
            if relay.tls == IMPLICIT_TLS:
                connection = smtplib.SMTP_SSL(
                    relay.host, relay.port, local_hostname=helo, timeout=self.timeout, context=self.ssl_context
                )
            else:
                connection = smtplib.SMTP(relay.host, relay.port, local_hostname=helo, timeout=self.timeout)
        except (smtplib.SMTPException, OSError) as error:
            raise _RelayProblem(f"could not connect ({_describe(error)})") from None
        with self._lock:
            self.connections_opened += 1
        try:
            connection.ehlo()
            if relay.tls == STARTTLS:
                if not connection.has_extn("starttls"):  # never sent in clear instead
                    raise _RelayProblem("it does not offer STARTTLS")
                connection.starttls(context=self.ssl_context)
                connection.ehlo()
            if credentials:
                try:
                    connection.login(*credentials)
                except smtplib.SMTPAuthenticationError as error:
                    self.credentials.forget()  # rotated, perhaps: read again for the next connection
                    raise _RelayProblem(f"it refused postline's credentials ({error.smtp_code})") from None
        except _RelayProblem:
            _quit(connection)
            raise
        except (smtplib.SMTPException, OSError) as error:
            _quit(connection)
            raise _RelayProblem(f"the session failed ({_describe(error)})") from None
        return connection


def _describe(error: Exception) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"its TLS certificate did not verify: {error.verify_message}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_ADDRESS.sub('<address>', _text(error.smtp_error))}"
    return f"{type(error).__name__}: {error}"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _quit(connection: smtplib.SMTP) -> None:
    """Close a connection, politely if it still answers."""
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()
