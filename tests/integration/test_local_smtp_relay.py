"""The local stack's SMTP relay (cli/postline_cli/local/smtp_relay.py): which streams it serves, the setting it gives
the send function, its faults by address, and what it writes to the outbox, with the real transport talking to it."""
from __future__ import annotations

import email
import json

import pytest

from postline.settings import STREAMS
from postline.smtp import PLAINTEXT, SmtpRelay, SmtpTransport, parse_relays
from postline.transports import Email
from postline_cli.local.smtp_relay import (
    RELAY_SECRET,
    LocalSmtpRelay,
    RelaySetupError,
    relay_fault,
    relays_setting,
    smtp_streams,
)
from tests.integration.smtp_relay import free_port

CREDENTIALS = ("postline-local", "s3cret")


class _Secret:
    def get_secret_value(self, SecretId):  # noqa: N803 - boto3's name
        assert SecretId == RELAY_SECRET
        return {"SecretString": json.dumps({"username": CREDENTIALS[0], "password": CREDENTIALS[1]})}


def test_the_streams_are_read_from_the_environment_and_a_wrong_name_is_told():
    assert smtp_streams({"POSTLINE_LOCAL_SMTP_STREAMS": " critical,transactional,critical "}) == (
        "critical", "transactional")
    assert smtp_streams({}) == ()
    with pytest.raises(RelaySetupError) as refused:
        smtp_streams({"POSTLINE_LOCAL_SMTP_STREAMS": "critical,urgent"})
    assert str(refused.value) == ("POSTLINE_LOCAL_SMTP_STREAMS: urgent is not a stream (streams: critical, "
                                  "transactional, marketing)")


def test_the_setting_names_the_local_relay_in_plaintext_which_the_transport_accepts_on_loopback():
    relays = parse_relays(relays_setting(("critical",), 2525), STREAMS)
    assert relays == {"critical": SmtpRelay("127.0.0.1", 2525, PLAINTEXT, RELAY_SECRET)}
    assert relays_setting((), 2525) == ""


@pytest.mark.parametrize("address, fault", [
    ("smtp-450@example.com", ("450", 1)), ("SMTP-450x3+a1@example.org", ("450", 3)),
    ("smtp-550-5.1.1+b@example.com", ("550-5.1.1", 1)), ("smtp-drop@x.test", ("drop", 1)),
    ("smtp-421x2@example.com", ("421", 2)), ("ada@example.com", None), ("smtp-499@example.com", None),
])
def test_the_fault_is_read_from_the_recipient(address, fault):
    assert relay_fault(address) == fault


@pytest.fixture
def relay(tmp_path):
    port = free_port()
    server = LocalSmtpRelay("127.0.0.1", port, tmp_path / "outbox", CREDENTIALS)
    server.start()
    transport = SmtpTransport(SmtpRelay("127.0.0.1", port, PLAINTEXT, RELAY_SECRET), secrets=_Secret())
    yield transport, tmp_path / "outbox"
    transport.close()
    server.stop()


def _email(message_id: str, recipient: str) -> Email:
    mime = (f"From: hello@mail.example.com\nTo: {recipient}\nSubject: Reset\nX-Postline-Message-Id: {message_id}\n"
            "\n.hidden line\nbody\n").encode()
    return Email(message_id=message_id, sender="hello@mail.example.com", recipient=recipient, mime=mime,
                 stream="critical", configuration_set="postline-critical", template="password-reset")


def test_an_accepted_email_is_in_the_outbox_under_its_message_id(relay):
    transport, outbox = relay
    answer = transport.send(_email("m1", "ada@example.com"))
    assert answer.kind == "sent" and len(answer.ses_message_id) == 12
    written = email.message_from_bytes((outbox / "m1.eml").read_bytes())
    assert written["Message-ID"] == f"<{answer.ses_message_id}@relay.local>" and written["Date"]
    assert written["Subject"] == "Reset" and written.get_payload() == ".hidden line\r\nbody\r\n"


def test_each_fault_is_acted_for_its_first_attempts_only(relay):
    transport, outbox = relay
    busy = "smtp-450x2@example.com"
    assert [transport.send(_email("m2", busy)).kind for _ in range(3)] == ["transient", "transient", "sent"]
    unknown = transport.send(_email("m3", "smtp-550-5.1.1@example.com"))
    assert (unknown.kind, unknown.hard_bounce) == ("permanent", True)
    dropped = transport.send(_email("m4", "smtp-drop@example.com"))
    assert dropped.kind == "unknown" and (outbox / "m4.eml").exists()
    assert sorted(path.name for path in outbox.iterdir()) == ["m2.eml", "m4.eml"]
