"""SES's refusal for an identity it has not verified (the sending domain before DKIM verifies, a recipient while
the account is in the sandbox): a wait that says whose identity, never a failure. Any other refusal stays final.

The messages are SES's own, as AWS documents them and as people have quoted them from SES (API and SMTP)."""
from __future__ import annotations

import pytest

from postline.ses import (
    PERMANENT,
    TRANSIENT,
    UNVERIFIED_IDENTITY,
    UNVERIFIED_RECIPIENT,
    UNVERIFIED_SENDER,
    send_raw,
)

from .fakes import client_error

SENDER = "Lumen <hello@mail.example.com>"
RECIPIENT = "ada@example.com"
PREFIX = "Email address is not verified. The following identities failed the check in region US-EAST-1: "


class RefusingSES:
    def __init__(self, code: str, message: str) -> None:
        self.error = client_error(code, message, "SendEmail", ResponseMetadata={"HTTPStatusCode": 400})

    def send_email(self, **_):
        raise self.error


def answer(message: str, code: str = "MessageRejected", sender: str = SENDER, recipient: str = RECIPIENT):
    return send_raw(RefusingSES(code, message), message_id="mabc", sender=sender, recipient=recipient, mime=b"x",
                    configuration_set="postline-critical", stream="critical", template="password-reset",
                    campaign=None, tags={})


@pytest.mark.parametrize("message", [
    PREFIX + "Lumen <hello@mail.example.com>, hello@mail.example.com",
    PREFIX + "hello@mail.example.com",
    PREFIX + '"Lumen, Inc." <hello@mail.example.com>, hello@mail.example.com',  # a comma inside the display name
    PREFIX + "Hello@Mail.Example.com",
    PREFIX + "mail.example.com",  # the domain identity itself
    ("email address is not verified.  The following identities failed the check in region\n"
     "EU-WEST-1: hello@mail.example.com."),
])
def test_an_unverified_sending_identity_is_a_wait_naming_the_domain(message):
    result = answer(message)
    assert (result.kind, result.unverified) == (TRANSIENT, UNVERIFIED_SENDER)
    assert result.reason == "SES has not verified the sending identity mail.example.com yet"


def test_an_unverified_recipient_means_the_account_is_in_the_sandbox():
    result = answer(PREFIX + "ada@example.com")
    assert (result.kind, result.unverified) == (TRANSIENT, UNVERIFIED_RECIPIENT)
    assert "recipient is not verified" in result.reason and "SES sandbox" in result.reason
    assert "production access" in result.reason  # what to do about it


def test_both_unverified_says_both():
    result = answer(PREFIX + "Lumen <hello@mail.example.com>, hello@mail.example.com, ada@example.com")
    assert result.unverified == UNVERIFIED_SENDER
    assert "sending identity mail.example.com" in result.reason and "SES sandbox" in result.reason


@pytest.mark.parametrize("message", [
    PREFIX + "Lumen <hello@mail.exa...",  # SES cut the list short
    PREFIX + "bounces@elsewhere.example.net",  # a Return-Path or Sender header of another domain
    "Email address is not verified.",
])
def test_an_identity_not_named_or_not_recognised_still_waits(message):
    result = answer(message)
    assert (result.kind, result.unverified) == (TRANSIENT, UNVERIFIED_IDENTITY)
    assert "not verified an identity" in result.reason


@pytest.mark.parametrize("message", [
    PREFIX + "Lumen <hello@mail.example.com>, hello@mail.example.com, ada@example.com",
    PREFIX + "ada@example.com",
    PREFIX + "bounces@elsewhere.example.net",
])
def test_the_reason_never_holds_an_address(message):
    # It is stored, shown and logged; SES's own message names every address.
    assert "@" not in answer(message).reason


@pytest.mark.parametrize("code, message", [
    ("MessageRejected", "Illegal address"),
    ("MessageRejected", "Illegal header 'Bcc'."),
    ("MessageRejected", "Message length is more than 10485760 bytes long: '11000000'."),
    ("MessageRejected", "Did not have authority to send from email hello@mail.example.com"),  # moto's words
    ("BadRequestException", PREFIX + "hello@mail.example.com"),  # SES's words under another code: not this refusal
])
def test_every_other_rejection_stays_permanent(code, message):
    result = answer(message, code=code)
    assert result.kind == PERMANENT and result.unverified is None
    assert result.reason == f"SES {code}: {message}"
