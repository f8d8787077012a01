"""The SMTP transport's pure parts: what each reply means, the relay's message id, SES's headers, the relays'
configuration (issue 26)."""
from __future__ import annotations

import pytest

from postline.ses import PERMANENT, QUOTA_THROTTLE, RATE_THROTTLE, TRANSIENT, UNVERIFIED_SENDER
from postline.settings import ConfigurationError, settings_from_environ
from postline.smtp import (
    DATA,
    MAIL,
    RCPT,
    SmtpRelay,
    _dot_stuffed,
    classify,
    parse_relays,
    provider_message_id,
    ses_headers,
)
from postline.transports import Email

STREAMS = ("critical", "transactional", "marketing")
SENDER, RECIPIENT = "Lumen <hello@mail.example.com>", "bob@example.com"


def _classify(code: int, text: str, stage: str = DATA, ses: bool = False):
    return classify(code, text, stage, sender=SENDER, recipient=RECIPIENT, ses_relay=ses)


@pytest.mark.parametrize("code, text", [(421, "4.3.2 Service shutting down"), (450, "4.2.1 Mailbox busy"),
                                        (451, "4.3.0 Try again later"), (452, "4.5.3 Too many recipients")])
def test_a_4xx_reply_is_transient(code, text):
    answer = _classify(code, text)
    assert answer.kind == TRANSIENT and answer.throttle is None and not answer.hard_bounce
    assert answer.reason == f"the SMTP relay answered {code} {text} (to DATA)"


@pytest.mark.parametrize("text, throttle", [("Throttling failure: Maximum sending rate exceeded.", RATE_THROTTLE),
                                            ("Throttling failure: Daily message quota exceeded.", QUOTA_THROTTLE)])
def test_ses_throttles_over_smtp_slow_the_limiter_like_its_api_throttles(text, throttle):
    assert _classify(454, text, ses=True).throttle == throttle
    assert _classify(454, text, ses=False).throttle is None  # another relay's limits are not SES's


@pytest.mark.parametrize("code, text, stage", [
    (550, "5.1.1 <bob@example.com>: Recipient address rejected: User unknown in virtual mailbox table", RCPT),
    (550, "5.1.1 The email account that you tried to reach does not exist.", DATA),
    (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", RCPT),
    (550, "No such user here", RCPT),
    (553, "sorry, user unknown", RCPT),
])
def test_a_user_unknown_reply_is_permanent_and_a_hard_bounce(code, text, stage):
    answer = _classify(code, text, stage)
    assert answer.kind == PERMANENT and answer.hard_bounce


@pytest.mark.parametrize("code, text, stage", [
    (554, "5.7.1 Message rejected as spam", DATA),
    (552, "5.3.4 Message size exceeds fixed limit", DATA),
    (550, "5.7.1 Relaying denied", RCPT),
    (550, "5.1.1 sender mailbox unknown", MAIL),  # about the sender: not the recipient's address
])
def test_other_5xx_replies_fail_the_email_without_suppressing_the_address(code, text, stage):
    answer = _classify(code, text, stage)
    assert answer.kind == PERMANENT and not answer.hard_bounce
    assert answer.reason.startswith(f"the SMTP relay answered {code} ")


def test_a_reason_never_holds_an_address():
    answer = _classify(550, "5.1.1 <bob@example.com>: Recipient address rejected: User unknown", RCPT)
    assert answer.reason == ("the SMTP relay answered 550 5.1.1 <address>: Recipient address rejected: User unknown "
                             "(to RCPT TO)")


@pytest.mark.parametrize("code", [530, 535])
def test_refused_credentials_wait_for_the_relays_setup_to_be_fixed(code):
    answer = _classify(code, "5.7.8 Authentication credentials invalid", MAIL)
    assert answer.kind == TRANSIENT and "credentials" in answer.reason


def test_ses_unverified_identity_over_smtp_waits_as_over_its_api():
    text = ("Message rejected: Email address is not verified. The following identities failed the check in region "
            "US-EAST-1: Lumen <hello@mail.example.com>, hello@mail.example.com")
    answer = _classify(554, text, DATA, ses=True)
    assert (answer.kind, answer.unverified) == (TRANSIENT, UNVERIFIED_SENDER)
    assert answer.reason == "SES has not verified the sending identity mail.example.com yet"


@pytest.mark.parametrize("reply, expected", [
    ("2.0.0 Ok: queued as 4F3A2B1C0D", "4F3A2B1C0D"),
    ("Ok 0100018f1c2d3e4f-5a6b7c8d-1111-2222-3333-444455556666-000000",
     "0100018f1c2d3e4f-5a6b7c8d-1111-2222-3333-444455556666-000000"),
    ("Ok: queued as <abc-123@relay>", "abc-123@relay"),
    ("2.0.0 accepted for <bob@example.com>", "2.0.0 accepted for <address>"),
])
def test_the_relays_message_id_is_read_from_its_250_reply(reply, expected):
    assert provider_message_id(reply) == expected


def _email(**overrides) -> Email:
    fields = dict(message_id="mabcdefghijklmnopqrstuvwx", sender=SENDER, recipient=RECIPIENT,
                  mime=b"Subject: x\r\n\r\nhi",
                  stream="critical", configuration_set="postline-critical", template="password-reset",
                  campaign=None, tags={"plan": "pro plus"}, retry=0)
    return Email(**{**fields, **overrides})


def test_ses_headers_carry_the_configuration_set_and_postlines_tags():
    headers = ses_headers(_email())
    assert headers == (b"X-SES-CONFIGURATION-SET: postline-critical\r\n"
                       b"X-SES-MESSAGE-TAGS: postline_message_id=mabcdefghijklmnopqrstuvwx, postline_retry=0, "
                       b"postline_stream=critical, postline_template=password-reset, plan=pro_plus\r\n")


def test_a_tag_name_cannot_end_the_header():
    headers = ses_headers(_email(tags={"a\r\nBcc: x": "1"}))
    assert headers.count(b"\r\n") == 2 and b"a__Bcc__x=1" in headers


def test_many_tags_fold_the_header_within_smtps_line_length():
    headers = ses_headers(_email(tags={f"tag{n}": "v" * 40 for n in range(40)}))
    assert max(len(line) for line in headers.split(b"\r\n")) <= 998
    assert b",\r\n tag39=" in headers


def test_the_content_is_dot_stuffed_and_terminated():
    assert _dot_stuffed(b"a\r\n.b\r\n..c") == b"a\r\n..b\r\n...c\r\n.\r\n"


def test_relays_are_parsed_from_their_json():
    relays = parse_relays('{"critical": {"host": "smtp.example.net", "port": 465, "tls": "implicit", '
                          '"secret": "postline/smtp"}}', STREAMS)
    assert relays == {"critical": SmtpRelay("smtp.example.net", 465, "implicit", "postline/smtp")}
    assert not relays["critical"].is_ses
    assert SmtpRelay("email-smtp.eu-west-1.amazonaws.com", 587, "starttls").is_ses


def test_every_problem_with_the_relays_is_listed_at_once():
    with pytest.raises(ValueError) as caught:
        parse_relays('{"urgent": {}, "critical": {"host": "smtp.example.net", "port": "587", "tls": "none", '
                     '"user": "x"}}', STREAMS)
    assert str(caught.value) == (
        "urgent: not a stream (critical, transactional, marketing); critical.user: unknown key (known: host, port, "
        "tls, secret); critical.port: must be a port number (465 for implicit TLS, 587 for STARTTLS); "
        "critical.tls: \"none\" (plaintext) is allowed only for a relay on this machine (127.0.0.1, localhost, "
        "::1); use implicit or starttls")


def test_plaintext_to_a_relay_on_this_machine_is_allowed():
    assert parse_relays('{"critical": {"host": "127.0.0.1", "port": 2525, "tls": "none"}}', STREAMS)[
        "critical"].tls == "none"


def test_a_function_with_a_bad_relay_fails_at_cold_start_naming_the_variable(monkeypatch):
    environ = {"POSTLINE_SMTP_RELAYS": '{"critical": {"host": "smtp.example.net", "port": 25, "tls": "none"}}'}
    with pytest.raises(ConfigurationError) as caught:
        settings_from_environ(environ)
    assert ('POSTLINE_SMTP_RELAYS: Value error, critical.tls: "none" (plaintext) is allowed only for a relay on '
            'this machine') in str(caught.value)
