"""Unsubscribe by email on the local stack, over real SMTP to its MX for the unsubscribe subdomain: the email a mail
client writes from the List-Unsubscribe mailto unsubscribes; one without a token waits in the operator's inbox and
is applied by hand; transactional mail still arrives after."""
from __future__ import annotations

import smtplib
import uuid
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.conftest import only_marketing_is_suppressed, wait_until
from tests.e2e.test_endpoints import event_types, newsletter


def mailto_of(local_stack, address: str) -> tuple[str, str]:
    """The address and subject of the List-Unsubscribe mailto in the newsletter ``address`` received."""
    [mail] = local_stack.outbox_for(address)
    mailto = urlsplit(mail["List-Unsubscribe"].split(",")[1].strip(" <>"))
    return mailto.path, parse_qs(mailto.query)["subject"][0]


def write(local_stack, sender: str, to: str, subject: str, body: str = "", **headers: str) -> None:
    """What a person's mail client does: an SMTP conversation with the domain's MX."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body or "Sent from my phone")
    with smtplib.SMTP("127.0.0.1", local_stack.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)


def suppressions_of(local_stack, address: str) -> list[tuple[str, str, str]]:
    return [(s["scope"], s["reason"], s["source"])
            for s in local_stack.cli_json("suppressions", "show", address)["suppressions"]]


def test_an_email_to_the_mailto_address_unsubscribes_and_transactional_mail_still_arrives(local_stack):
    address = f"mailto-{uuid.uuid4().hex[:8]}@example.org"
    message_id, _ = newsletter(local_stack, address)
    to, subject = mailto_of(local_stack, address)
    assert to == "unsubscribe@unsubscribe.mail.example.com" and subject.startswith("unsubscribe ")

    write(local_stack, address, to, subject)
    wait_until(lambda: suppressions_of(local_stack, address), 30, "the email's unsubscribe")
    assert suppressions_of(local_stack, address) == [("marketing", "unsubscribe", "mailto")]
    assert event_types(local_stack, message_id).count("unsubscribed") == 1

    only_marketing_is_suppressed(local_stack, address)


def test_an_email_without_token_lands_in_the_inbox_and_an_operator_applies_it(local_stack):
    address = f"asks-{uuid.uuid4().hex[:8]}@example.org"
    subject = f"Please stop sending me newsletters {uuid.uuid4().hex[:6]}"
    write(local_stack, f"Asker <{address}>", "unsubscribe@unsubscribe.mail.example.com", subject)
    wait_until(lambda: any(k["subject"] == subject for k in local_stack.cli_json("suppressions", "inbox")), 30,
               "the email in the inbox")
    [kept] = [k for k in local_stack.cli_json("suppressions", "inbox") if k["subject"] == subject]
    assert (kept["sender"], kept["why"], kept["applied"]) == (address, "it carries no unsubscribe token", None)
    assert suppressions_of(local_stack, address) == []

    listed = local_stack.cli("suppressions", "inbox").stdout.splitlines()
    at = listed.index(f"{kept['received']}  {kept['id'][:12]}  {address}")
    assert listed[at + 1:at + 3] == [f"  subject: {subject}", "  not applied: it carries no unsubscribe token"]

    applied = local_stack.cli("suppressions", "inbox", "apply", kept["id"][:12])
    assert applied.stdout == f"unsubscribed {address} from marketing mail (kept email {kept['id']})\n"
    assert suppressions_of(local_stack, address) == [("marketing", "unsubscribe", "mailto-inbox")]
    [kept] = [k for k in local_stack.cli_json("suppressions", "inbox") if k["subject"] == subject]
    assert kept["applied_to"] == address


def test_applying_an_unknown_inbox_email_is_one_line_and_exit_1(local_stack):
    result = local_stack.cli("suppressions", "inbox", "apply", "nosuchmail", check=False)
    assert (result.returncode, result.stderr) == (
        1, "error: no kept email has the id nosuchmail (postline suppressions inbox lists them)\n")


def test_auto_replies_are_ignored_and_not_kept(local_stack):
    subject = f"Out of office {uuid.uuid4().hex[:6]}"
    write(local_stack, "away@example.org", "unsubscribe@unsubscribe.mail.example.com", subject,
          Auto_Submitted="auto-replied")
    person = f"Person {uuid.uuid4().hex[:6]}"  # sent after it: once this one is kept, the auto-reply was handled
    write(local_stack, "someone@example.org", "unsubscribe@unsubscribe.mail.example.com", person)
    wait_until(lambda: any(k["subject"] == person for k in local_stack.cli_json("suppressions", "inbox")), 30,
               "the person's email in the inbox")
    assert not [k for k in local_stack.cli_json("suppressions", "inbox") if k["subject"] == subject]


def test_mail_for_another_domain_is_refused_at_rcpt(local_stack):
    with smtplib.SMTP("127.0.0.1", local_stack.smtp_port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.mail("someone@example.org")
        code, reply = smtp.rcpt("ceo@example.com")
    assert (code, reply) == (550, b"5.1.1 Mailbox does not exist")


@pytest.fixture(autouse=True)
def _stack_has_smtp(local_stack):
    assert local_stack.smtp_port, "the local stack fixture must start the local MX on a port of its own"
