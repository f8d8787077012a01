"""The SMTP transport against a real relay on loopback (aiosmtpd): TLS with a certificate from a throwaway CA,
AUTH, each kind of reply, a connection lost after the content, connections reused and replaced (issue 26)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from postline import smtp
from postline.ses import PERMANENT, SENT, TRANSIENT, UNKNOWN
from postline.smtp import SmtpRelay, SmtpTransport
from postline.transports import Email

from .smtp_relay import DROP, free_port, make_ca, start_relay

CREDENTIALS = ("relay-user", "relay-password")


class Secrets:
    """Secrets Manager's GetSecretValue, counting reads."""

    def __init__(self, *values: tuple[str, str]):
        self.values, self.reads = list(values), 0

    def get_secret_value(self, SecretId):  # noqa: N803 - boto3's name
        self.reads += 1
        user, password = self.values[0] if len(self.values) == 1 else self.values.pop(0)
        return {"SecretString": json.dumps({"username": user, "password": password})}


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def relays():
    started = []

    def start(*args, **kwargs):
        relay, controller = start_relay(*args, **kwargs)
        started.append(controller)
        return relay, controller

    yield start
    for controller in started:
        controller.stop()


def email(n: int = 0, to: str = "bob@example.com", **overrides) -> Email:
    mime = (f"From: Lumen <hello@mail.example.com>\r\nTo: {to}\r\nSubject: Reset {n}\r\n"
            f"X-Postline-Message-Id: m{n:024d}\r\n\r\n.a line starting with a dot\r\nbye\r\n").encode()
    fields = dict(message_id=f"m{n:024d}", sender="Lumen <hello@mail.example.com>", recipient=to, mime=mime,
                  stream="critical", configuration_set="postline-critical", template="password-reset")
    return Email(**{**fields, **overrides})


def transport(relay, tls="none", ca=None, secrets=None, **kwargs) -> SmtpTransport:
    secret = "postline/relay" if secrets else None
    return SmtpTransport(SmtpRelay(relay.host, relay.port, tls, secret), secrets=secrets,
                         ssl_context=ca.client_context() if ca else None, timeout=5, **kwargs)


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_an_email_goes_over_verified_tls_with_auth_and_the_relays_id_is_kept(relays, ca, tls):
    relay, _ = relays(tls, ca, CREDENTIALS)
    sender = transport(relay, tls, ca, Secrets(CREDENTIALS))
    answer = sender.send(email(1))
    assert (answer.kind, answer.ses_message_id) == (SENT, "Q00001")
    (received,) = relay.received
    assert received.sender == "hello@mail.example.com" and received.recipients == ["bob@example.com"]
    assert received.message["Subject"] == "Reset 1" and received.message["X-Postline-Message-Id"] == f"m{1:024d}"
    assert b"\r\n.a line starting with a dot\r\n" in received.content  # dot-stuffed on the wire, as it was here
    assert received.message["X-SES-CONFIGURATION-SET"] is None  # not SES: no SES headers
    sender.close()


def test_a_certificate_no_trusted_ca_signed_is_refused_and_nothing_is_sent(relays, ca):
    relay, _ = relays("implicit", ca, CREDENTIALS)
    sender = SmtpTransport(SmtpRelay(relay.host, relay.port, "implicit", "postline/relay"),
                           secrets=Secrets(CREDENTIALS), timeout=5)  # the system's CAs only
    answer = sender.send(email())
    assert answer.kind == TRANSIENT and relay.received == []
    assert answer.reason.startswith("the SMTP relay 127.0.0.1: could not connect (its TLS certificate did not "
                                    "verify: unable to get local issuer certificate)")


def test_a_relay_without_starttls_is_never_sent_to_in_clear(relays, ca):
    relay, _ = relays("none")
    answer = transport(relay, "starttls", ca).send(email())
    assert answer.kind == TRANSIENT and answer.reason == "the SMTP relay 127.0.0.1: it does not offer STARTTLS"
    assert relay.received == []


def test_refused_credentials_wait_and_are_read_again_for_the_next_connection(relays, ca):
    relay, _ = relays("starttls", ca, CREDENTIALS)
    secrets = Secrets(("relay-user", "before-rotation"), CREDENTIALS)
    sender = transport(relay, "starttls", ca, secrets)
    first = sender.send(email(1))
    assert first.kind == TRANSIENT and first.reason == ("the SMTP relay 127.0.0.1: it refused postline's "
                                                        "credentials (535)")
    assert sender.send(email(2)).kind == SENT and secrets.reads == 2 and relay.count("bob@example.com") == 1


@pytest.mark.parametrize("where, answer, kind, hard_bounce", [
    ("rcpt", "450 4.2.1 Mailbox busy, try later", TRANSIENT, False),
    ("data", "421 4.3.2 Service shutting down", TRANSIENT, False),
    ("data", "451 4.3.0 Local error in processing", TRANSIENT, False),
    ("rcpt", "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown", PERMANENT, True),
    ("data", "554 5.7.1 Message rejected as spam", PERMANENT, False),
])
def test_each_reply_decides_the_outcome_and_nothing_is_taken(relays, where, answer, kind, hard_bounce):
    relay, _ = relays("none")
    (relay.rcpt_answers if where == "rcpt" else relay.data_answers)["bob@example.com"] = [answer]
    sender = transport(relay)
    result = sender.send(email())
    assert (result.kind, result.hard_bounce) == (kind, hard_bounce)
    assert answer.split(" ")[0] in result.reason and "bob@example.com" not in result.reason
    assert relay.received == []
    # The connection is still good for the next email (reset), unless the relay closed it (421).
    assert sender.send(email(2, to="carol@example.com")).kind == SENT
    assert relay.connections == (2 if answer.startswith("421") else 1)


def test_a_connection_lost_after_the_content_is_an_unknown_outcome_never_resent(relays):
    relay, _ = relays("none")
    relay.data_answers["bob@example.com"] = [DROP]
    answer = transport(relay).send(email())
    assert answer.kind == UNKNOWN and answer.reason.startswith(
        "the SMTP relay 127.0.0.1 did not answer once the email was sent")
    assert relay.count("bob@example.com") == 1  # the relay has it: sending it again would send it twice


def test_connections_are_reused_across_emails_and_threads(relays):
    relay, _ = relays("none")
    sender = transport(relay)
    assert all(sender.send(email(n)).kind == SENT for n in range(30))
    assert relay.connections == sender.connections_opened == 1
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: sender.send(email(n, to=f"user{n}@example.com")), range(100)))
    assert [a.kind for a in answers] == [SENT] * 100 and len(relay.received) == 130
    assert relay.connections <= 4


def test_an_idle_connection_the_relay_closed_is_found_by_noop_and_replaced(relays, monkeypatch):
    relay, _ = relays("none")
    now = [0.0]
    sender = transport(relay, clock=lambda: now[0])
    assert sender.send(email(1)).kind == SENT
    relay.hang_up()  # the relay drops its idle connections (its idle timeout, or a restart)
    now[0] += smtp.HEALTH_CHECK_IDLE_SECONDS  # idle long enough to be checked
    assert sender.send(email(2)).kind == SENT
    assert sender.connections_opened == 2 and len(relay.received) == 2


def test_a_reused_connection_lost_before_the_content_is_replaced_and_the_email_sent_once(relays):
    relay, _ = relays("none")
    sender = transport(relay, clock=lambda: 0.0)  # never idle long enough for a NOOP
    assert sender.send(email(1)).kind == SENT
    relay.hang_up()
    assert sender.send(email(2)).kind == SENT
    assert sender.connections_opened == 2 and [r.message["Subject"] for r in relay.received] == ["Reset 1", "Reset 2"]


def test_an_unreachable_relay_is_transient():
    answer = SmtpTransport(SmtpRelay("127.0.0.1", free_port(), "none"), timeout=5).send(email())
    assert answer.kind == TRANSIENT and answer.reason.startswith("the SMTP relay 127.0.0.1: could not connect "
                                                                 "(ConnectionRefusedError")


def test_through_ses_relay_the_configuration_set_and_tags_travel_as_headers(relays, monkeypatch):
    relay, _ = relays("none")
    monkeypatch.setattr(SmtpRelay, "is_ses", property(lambda self: True))  # SES's host cannot be on loopback
    answer = transport(relay).send(email(7, tags={"plan": "pro"}, retry=1))
    assert answer.kind == SENT
    (received,) = relay.received
    assert received.message["X-SES-CONFIGURATION-SET"] == "postline-critical"
    assert received.message["X-SES-MESSAGE-TAGS"] == (f"postline_message_id=m{7:024d}, postline_retry=1, "
                                                       "postline_stream=critical, postline_template=password-reset, "
                                                       "plan=pro")
