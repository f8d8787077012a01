"""Unsubscribe by email, the parts without AWS: SES's receipt notification, the token in the subject or the text,
automatic mail and SES's verdicts recognised."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from postline.contract import message_id_for
from postline.inbound_mail import (
    KeptMail,
    RefusedNotification,
    UnreadableNotification,
    automatic_reason,
    parse_mail,
    receipt_of,
    sender_of,
    token_candidates,
    verdict_reason,
)
from postline.suppression import erased_address
from postline.tokens import UNSUBSCRIBE

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ses" / "receipt-s3.json"
TOPIC = "arn:aws:sns:eu-west-1:111122223333:postline-unsubscribe-mail"  # the stack's own


def notification(**receipt_changes) -> dict:
    document = json.loads(FIXTURE.read_text())
    document["receipt"].update(receipt_changes)
    return document


def sns_envelope(message: dict, topic: str | None = TOPIC, kind: str = "Notification") -> str:
    """What the function's queue holds: SNS's envelope (raw message delivery off), SES's notification inside."""
    envelope = {"Type": kind, "MessageId": "5c6f", "Subject": "Amazon SES Email Receipt Notification",
                "Message": json.dumps(message)}
    return json.dumps(envelope if topic is None else {**envelope, "TopicArn": topic})


def read(body: str):
    return receipt_of(body, TOPIC)


def mail(subject: str = "unsubscribe", body: str = "", headers: str = "", content_type: str = "text/plain") -> bytes:
    return (f"From: Reader <Reader@Example.net>\r\nTo: unsubscribe@unsubscribe.example.com\r\nSubject: {subject}\r\n"
            f"{headers}MIME-Version: 1.0\r\nContent-Type: {content_type}; charset=utf-8\r\n\r\n{body}\r\n").encode()


@pytest.fixture
def token(keyring) -> str:
    return keyring.sign(UNSUBSCRIBE, message_id_for("n1"), erased_address("reader@example.net", b"e" * 32))


# --- SES's notification ------------------------------------------------------------------------------------------

def test_a_receipt_is_read_from_sns_envelope():
    receipt = read(sns_envelope(notification()))
    assert (receipt.mail_id, receipt.bucket, receipt.key) == (
        "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1", "postline-unsubscribe-mail",
        "incoming/o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1")
    assert receipt.envelope_sender == "reader@example.net"
    assert (receipt.spam, receipt.virus) == ("PASS", "PASS")
    assert receipt.received_at == pytest.approx(1796033702.123)


@pytest.mark.parametrize("body, reason", [
    (sns_envelope(notification(), "arn:aws:sns:eu-west-1:444455556666:postline-unsubscribe-mail"),
     "refused: SNS Notification from the topic arn:aws:sns:eu-west-1:444455556666:postline-unsubscribe-mail, not "
     "postline's unsubscribe mail topic"),
    (sns_envelope(notification(), "arn:aws:sns:eu-west-1:111122223333:another-topic"),
     "refused: SNS Notification from the topic arn:aws:sns:eu-west-1:111122223333:another-topic, not postline's "
     "unsubscribe mail topic"),
    (sns_envelope(notification(), None),
     "refused: SNS Notification from the topic (none), not postline's unsubscribe mail topic"),
    (sns_envelope({}, "arn:aws:sns:eu-west-1:444455556666:x", kind="SubscriptionConfirmation"),
     "refused: SNS SubscriptionConfirmation from the topic arn:aws:sns:eu-west-1:444455556666:x, not postline's "
     "unsubscribe mail topic"),
    (json.dumps(notification()),
     "refused: not an SNS message (no envelope), not from postline's unsubscribe mail topic"),
], ids=["same name, another account", "another topic", "no topic", "foreign subscription", "no envelope"])
def test_a_notification_from_anywhere_but_the_stack_s_topic_is_refused(body, reason):
    with pytest.raises(RefusedNotification) as refused:
        read(body)
    assert str(refused.value) == reason


def test_without_a_topic_to_trust_every_message_is_refused():
    with pytest.raises(RefusedNotification):
        receipt_of(sns_envelope(notification()), None)


def test_the_stack_s_own_subscription_messages_carry_no_mail():
    assert read(sns_envelope({}, kind="SubscriptionConfirmation")) is None


def test_ses_setup_notification_carries_no_mail():
    setup = {"notificationType": "AMAZON_SES_SETUP_NOTIFICATION", "receipt": {}}
    assert read(sns_envelope(setup)) is None


@pytest.mark.parametrize("body, why", [
    ("not json", "not an SES receipt notification"),
    ("[1]", "not an SES receipt notification (TypeError: a JSON list, not an object)"),
    (sns_envelope({"notificationType": "Received", "mail": {}}), "not an SES receipt notification (KeyError"),
    (json.dumps({"Type": "Notification", "TopicArn": TOPIC}), "not an SES receipt notification (KeyError: 'Message')"),
    (json.dumps({"Type": "Notification", "TopicArn": TOPIC, "Message": "{"}), "not an SES receipt notification ("),
    (sns_envelope(notification(), kind="Weird"), "not an SES receipt notification (ValueError: an SNS Weird, not a"),
    (sns_envelope(notification(action={"type": "Lambda"})), "the receipt rule's action is Lambda, not S3"),
])
def test_an_unreadable_notification_says_why(body, why):
    with pytest.raises(UnreadableNotification, match=re.escape(why)):
        read(body)


@pytest.mark.parametrize("spam, virus, why", [
    ("FAIL", "PASS", "SES marked it as spam"),
    ("PASS", "FAIL", "SES found a virus"),
    ("FAIL", "FAIL", "SES found a virus"),
    ("GRAY", "PASS", None),
    ("PROCESSING_FAILED", "PROCESSING_FAILED", None),
])
def test_ses_verdicts(spam, virus, why):
    receipt = read(sns_envelope(notification(spamVerdict={"status": spam}, virusVerdict={"status": virus})))
    assert verdict_reason(receipt) == why


# --- the token ---------------------------------------------------------------------------------------------------

def test_the_token_is_found_in_the_subject_the_mailto_link_writes(token, keyring):
    found = token_candidates(parse_mail(mail(subject=f"unsubscribe {token}")))
    assert found == [token]
    assert keyring.verify(found[0]).kind == UNSUBSCRIBE


def test_the_token_is_found_in_a_reply_subject_and_with_the_link_s_space_left_encoded(token):
    assert token_candidates(parse_mail(mail(subject=f"Re: unsubscribe {token}"))) == [token]
    assert token_candidates(parse_mail(mail(subject=f"unsubscribe%20{token}"))) == [token]


def test_a_long_subject_folded_by_the_client_still_gives_the_token(token):
    folded = f"=?utf-8?q?unsubscribe_?=\r\n =?utf-8?q?{token.replace('-', '=2D').replace('_', '=5F')}?="
    assert token_candidates(parse_mail(mail(subject=folded))) == [token]


def test_the_token_is_found_in_the_text_when_the_subject_lost_it(token):
    message = parse_mail(mail(subject="please take me off", body=f"Hello,\r\nunsubscribe {token}\r\nthanks"))
    assert token_candidates(message) == [token]


def test_the_token_is_found_in_the_html_of_a_message_without_text(token):
    message = parse_mail(mail(subject="stop", body=f"<p>unsubscribe {token}</p>", content_type="text/html"))
    assert token_candidates(message) == [token]


def test_the_subject_s_token_is_tried_before_the_text_s(token, keyring):
    other = keyring.sign(UNSUBSCRIBE, message_id_for("n2"))
    message = parse_mail(mail(subject=f"unsubscribe {token}", body=f"> unsubscribe {other}"))
    assert token_candidates(message) == [token, other]


def test_an_email_without_token_gives_none():
    assert token_candidates(parse_mail(mail(subject="unsubscribe me", body="Please remove me. Thanks."))) == []


# --- automatic mail ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("headers, why", [
    ("Auto-Submitted: auto-replied\r\n", "an automatic reply (Auto-Submitted: auto-replied)"),
    ("Auto-Submitted: auto-generated\r\n", "an automatic reply (Auto-Submitted: auto-generated)"),
    ("X-Autoreply: yes\r\n", "an automatic reply (X-Autoreply)"),
    ("X-Autorespond: vacation\r\n", "an automatic reply (X-Autoreply)"),
    ("Precedence: bulk\r\n", "automatic mail (Precedence: bulk)"),
    ("Precedence: auto_reply\r\n", "automatic mail (Precedence: auto_reply)"),
    ("Precedence: junk\r\n", "automatic mail (Precedence: junk)"),
])
def test_auto_replies_are_recognised(headers, why):
    assert automatic_reason(parse_mail(mail(subject="Out of office", headers=headers)), "reader@example.net") == why


def test_auto_submitted_no_is_a_person():
    assert automatic_reason(parse_mail(mail(headers="Auto-Submitted: no\r\n")), "reader@example.net") is None


def test_a_person_s_email_is_not_automatic(token):
    assert automatic_reason(parse_mail(mail(subject=f"unsubscribe {token}")), "reader@example.net") is None


@pytest.mark.parametrize("sender, why", [
    ("", "a bounce (null sender)"),
    ("<>", "a bounce (null sender)"),
    ("MAILER-DAEMON@mx.example.net", "a bounce (from MAILER-DAEMON)"),
    ("postmaster@example.net", "a bounce (from postmaster)"),
])
def test_bounces_from_a_null_sender_or_a_daemon_are_recognised(sender, why):
    assert automatic_reason(parse_mail(mail()), sender) == why


@pytest.mark.parametrize("report_type, why", [
    ("delivery-status", "a delivery status notification (bounce)"),
    ("disposition-notification", "a read receipt"),
])
def test_reports_are_recognised(report_type, why):
    raw = mail(content_type=f'multipart/report; report-type={report_type}; boundary="b"',
               body="--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b--")
    assert automatic_reason(parse_mail(raw), "reader@example.net") == why


# --- what is kept ------------------------------------------------------------------------------------------------

def test_the_sender_is_the_from_address_else_the_envelope_s():
    assert sender_of(parse_mail(mail()), "bounces@example.net") == "Reader@Example.net"
    assert sender_of(parse_mail(b"Subject: x\r\n\r\nbody"), "bounces@example.net") == "bounces@example.net"


def test_a_kept_record_is_named_by_time_then_mail_id_and_reads_back():
    kept = KeptMail("abc123", 1796033702.123, "reader@example.net", "unsubscribe me", "it carries no unsubscribe "
                    "token", "incoming/abc123")
    assert kept.record_key == "kept/2026-11-30T10:15:02.123000Z-abc123.json"
    assert KeptMail.from_json(kept.to_json()) == kept


# --- the public pages' policy (postline.pages) --------------------------------------------------------------------

def test_the_pages_policy_allows_their_one_stylesheet_by_hash_and_nothing_else():
    import base64
    import hashlib

    from postline.pages import (
        CONTENT_SECURITY_POLICY,
        confirm_page,
        method_not_allowed_page,
        not_found_page,
        too_large_page,
        unsubscribed_page,
    )

    for page in (confirm_page("ada@example.com", "june"), unsubscribed_page(None, None), not_found_page(),
                 method_not_allowed_page(), too_large_page()):
        [style] = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        assert f"style-src 'sha256-{digest}'" in CONTENT_SECURITY_POLICY
        assert "<script" not in page and " style=" not in page  # an inline style attribute would be blocked
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none';")
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "form-action 'self'" in CONTENT_SECURITY_POLICY
