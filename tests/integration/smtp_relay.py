"""A real SMTP relay on loopback for the SMTP transport's tests (aiosmtpd): implicit TLS, STARTTLS or plaintext, AUTH
optionally, a certificate from a throwaway CA made here, and answers the test scripts per recipient (a 4xx, a 5xx,
or the connection dropped once the email's content arrived). It counts the connections it accepts."""
from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DROP = "drop the connection after the content"


@dataclass
class TestCa:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        """What the transport would use, trusting this CA instead of the system's: verification stays on."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context


def make_ca(folder: Path) -> TestCa:
    """A CA and a certificate it signs for 127.0.0.1 and localhost, valid for a day."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("postline test CA")).issuer_name(name("postline test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TestCa(folder / "ca.pem", folder / "relay.pem", folder / "relay.key")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return files


@dataclass
class Received:
    sender: str
    recipients: list[str]
    content: bytes

    @property
    def message(self):
        return message_from_bytes(self.content)


@dataclass
class Relay:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    # recipient -> the answers to give in turn (None: accept), at RCPT TO or at the end of DATA
    rcpt_answers: dict[str, list[str | None]] = field(default_factory=dict)
    data_answers: dict[str, list[str | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _servers: list = field(default_factory=list)
    _loop: object = None

    def hang_up(self) -> None:
        """Close every open connection, as a relay does to idle ones (or when it restarts)."""
        done = threading.Event()

        def close_all():
            for server in self._servers:
                if server.transport is not None:
                    server.transport.abort()
            done.set()

        self._loop.call_soon_threadsafe(close_all)
        done.wait(5)

    def count(self, recipient: str) -> int:
        return sum(1 for r in self.received if recipient in r.recipients)

    def _next(self, answers: dict[str, list[str | None]], recipient: str) -> str | None:
        with self._lock:
            queued = answers.get(recipient)
            return queued.pop(0) if queued else None


class _Handler:
    def __init__(self, relay: Relay):
        self.relay = relay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.relay._next(self.relay.rcpt_answers, address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        answer = self.relay._next(self.relay.data_answers, envelope.rcpt_tos[0])
        if answer and answer != DROP:
            return answer
        with self.relay._lock:
            self.relay.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            number = len(self.relay.received)
        if answer == DROP:  # the relay has the email; its reply never reaches the client
            server.transport.abort()
        return f"250 2.0.0 Ok: queued as Q{number:05d}"


class _CountingController(Controller):
    def __init__(self, relay: Relay, **kwargs):
        self.relay = relay
        super().__init__(_Handler(relay), **kwargs)

    def factory(self):
        self.relay.connections += 1
        server = SMTP(self.handler, **self.SMTP_kwargs)
        self.relay._servers.append(server)
        return server


def start_relay(tls: str = "none", ca: TestCa | None = None, credentials: tuple[str, str] | None = None
                ) -> tuple[Relay, Controller]:
    """A relay on a free loopback port; the caller stops the controller."""
    relay = Relay("127.0.0.1", free_port())
    kwargs: dict = {"hostname": "127.0.0.1", "port": relay.port}
    # aiosmtpd sees only STARTTLS as TLS; with implicit TLS the whole connection is encrypted anyway.
    smtp: dict = {"auth_require_tls": tls == "starttls"}
    if tls == "implicit":
        kwargs["ssl_context"] = ca.server_context()
    elif tls == "starttls":
        smtp.update(tls_context=ca.server_context(), require_starttls=True)
    if credentials:
        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode(), auth_data.password.decode()) == credentials
            return AuthResult(success=ok, handled=False)
        # PLAIN only: after a refused PLAIN, smtplib tries LOGIN, which aiosmtpd 1.4.6 leaves unanswered.
        smtp.update(authenticator=authenticate, auth_required=True, auth_exclude_mechanism=["LOGIN"])
    controller = _CountingController(relay, **smtp, **kwargs)
    controller.start()
    relay.connections = 0  # start() connected once to see it up
    relay._loop = controller.loop
    return relay, controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
