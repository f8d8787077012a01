"""The local SES writes each email to the outbox as SES sends it: with SES's own Message-ID and Date headers,
every other byte as the sender gave it."""
from __future__ import annotations

import email
import email.policy

from postline.mime import build_mime
from postline_cli.local.aws_endpoint import as_ses_sends

ACCEPTED_AT = 1_718_000_000.25
SES_DATE = b"Mon, 10 Jun 2024 06:13:20 +0000"


def test_a_postline_email_gets_ses_message_id_and_date_and_keeps_everything_else():
    raw = build_mime(sender="Lumen <hello@mail.example.com>", recipient="ada@example.com", subject="Hi",
                     text="Hello\n" * 50, html="<p>Hello</p>" * 50)
    sent = as_ses_sends(raw, "ses-id", "us-east-1", ACCEPTED_AT)

    parsed = email.message_from_bytes(sent, policy=email.policy.default)
    assert parsed.get_all("Message-ID") == ["<ses-id@email.amazonses.com>"]
    assert parsed.get_all("Date") == [SES_DATE.decode()]
    head, body = sent.split(b"\r\n\r\n", 1)
    original_head, original_body = raw.split(b"\r\n\r\n", 1)
    assert body == original_body
    original_lines = original_head.split(b"\r\n")
    assert head.split(b"\r\n") == [b"Message-ID: <ses-id@email.amazonses.com>"] + [
        b"Date: " + SES_DATE if line.startswith(b"Date: ") else line for line in original_lines]


def test_given_headers_are_replaced_in_place_folded_lines_and_duplicates_included():
    raw = (b"From: a@example.com\n"
           b"message-id:\n <app-chosen@example.com>\n"
           b"Subject: hi\n"
           b"Date: Tue, 1 Jan 2019 00:00:00 +0000\n"
           b"Date: Wed, 2 Jan 2019 00:00:00 +0000\n"
           b"\n"
           b"Message-ID: <in-the-body@example.com>\n")
    assert as_ses_sends(raw, "ses-id", "eu-west-1", ACCEPTED_AT) == (
        b"From: a@example.com\n"
        b"Message-ID: <ses-id@eu-west-1.amazonses.com>\n"
        b"Subject: hi\n"
        b"Date: " + SES_DATE + b"\n"
        b"\n"
        b"Message-ID: <in-the-body@example.com>\n")


def test_a_message_of_headers_alone_gets_them_too():
    sent = as_ses_sends(b"Subject: hi\r\n", "ses-id", "us-east-1", ACCEPTED_AT)
    assert sent == b"Message-ID: <ses-id@email.amazonses.com>\r\nDate: " + SES_DATE + b"\r\nSubject: hi\r\n"
