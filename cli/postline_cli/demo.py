"""``postline demo``: start the local stack, send a realistic mix of messages, and show what became of each."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Column, Table

FINAL = {"sent", "delivered", "bounced", "complained", "suppressed", "rejected", "failed"}
NEWSLETTER_AUDIENCE = [
    "grace@example.org",
    "linus@example.net",
    "bounce@simulator.amazonses.com",
    "complaint@simulator.amazonses.com",
]
SUPPRESSED_ADDRESS = "blocked@example.com"
UNSUBSCRIBES_BY_EMAIL = "linus@example.net"  # a newsletter reader whose mail client uses the mailto


@dataclass
class Sent:
    label: str
    message_id: str
    expect: str


def run_demo(console: Console, wait_seconds: float = 90) -> int:
    from postline.client import PostlineClient
    from postline.clients import client
    from postline.contract import message_id_for

    from . import suppressions
    from .local.stack import LocalPaths, running_state, start_detached, stop
    from .publish import active_templates
    from .target import target
    from .views import message_view

    paths = LocalPaths.default()
    state = running_state(paths)
    started_here = state is None
    if started_here:
        console.print("starting the local stack ...")
        state = start_detached(paths, [])
    outbox = Path(state["outbox"])  # where the stack writes, whatever POSTLINE_OUTBOX says now
    try:
        where = target()
        examples = {t.name: t.example_data for t in active_templates()}
        run = uuid.uuid4().hex[:6]
        mail = PostlineClient(where.inbound_queue_urls(), client("sqs"))
        suppressions.add(SUPPRESSED_ADDRESS, "all", "manual", "added by the demo", source="demo")

        sent: list[Sent] = []

        def send(label, template, to, stream, expect, **kw) -> str:
            message_id = mail.send(template, to, examples[template], stream=stream, **kw)
            sent.append(Sent(label, message_id, expect))
            return message_id

        send("password reset", "password-reset", "ada@example.com", "critical", "delivered", id=f"reset-{run}")
        send(
            "order confirmation",
            "order-confirmation",
            "ada@example.com",
            "transactional",
            "delivered",
            id=f"order-{run}",
        )
        send("welcome", "welcome", "alan@example.com", "transactional", "delivered", id=f"welcome-{run}")
        campaign = f"june-{run}"
        for address, message_id in _schedule_newsletter(campaign, examples["newsletter"]).items():
            expect = (
                "bounced"
                if address.startswith("bounce@")
                else ("complained" if address.startswith("complaint@") else "delivered")
            )
            sent.append(Sent(f"newsletter to {address.split('@')[0]} (campaign)", message_id, expect))
        send(
            "duplicate of the order confirmation",
            "order-confirmation",
            "ada@example.com",
            "transactional",
            "duplicate",
            id=f"order-{run}",
        )
        send(
            "welcome to a suppressed address",
            "welcome",
            SUPPRESSED_ADDRESS,
            "transactional",
            "suppressed",
            id=f"blocked-{run}",
        )
        malformed_key = f"malformed-{run}"
        client("sqs").send_message(
            QueueUrl=where.inbound_queue_url("transactional"),
            MessageBody=json.dumps({"id": malformed_key, "template": "welcome", "to": "not-an-address", "data": {}}),
        )
        sent.append(Sent("malformed message (bad address)", message_id_for(malformed_key), "rejected"))

        console.print(f"sent {len(sent)} messages; waiting for the pipeline ...")
        views = _wait(sent, message_view, wait_seconds)
        unexpected = [s for s in sent if _result(s, views[s.message_id]) != s.expect]
        reader = next(s for s in sent if s.label.startswith(f"newsletter to {UNSUBSCRIBES_BY_EMAIL.split('@')[0]}"))
        if not _unsubscribe_by_email(
            console, outbox / f"{reader.message_id}.eml", state.get("smtp_port"), wait_seconds
        ):
            unexpected.append(reader)
        _report(console, sent, views, outbox)
        if unexpected:
            console.print(f"[red]{len(unexpected)} message(s) did not end as expected[/red]")
            return 1
        return 0
    finally:
        if started_here:
            stop(paths)
            console.print("local stack stopped")


def _unsubscribe_by_email(console: Console, eml: Path, smtp_port: int | None, seconds: float) -> bool:
    """What a mail client does with the newsletter's List-Unsubscribe mailto: an email to the address, with the
    subject it gives, through the unsubscribe subdomain's local MX; True once the reader is unsubscribed."""
    import email
    import email.policy
    import smtplib
    from email.message import EmailMessage
    from urllib.parse import parse_qs, urlsplit

    from postline.models import Suppression

    if not eml.exists() or not smtp_port:
        console.print("[red]the newsletter to unsubscribe by email was not delivered[/red]")
        return False
    header = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)["List-Unsubscribe"]
    mailto = urlsplit(next(part.strip(" <>") for part in str(header).split(",") if "mailto:" in part))
    request = EmailMessage()
    request["From"], request["To"] = UNSUBSCRIBES_BY_EMAIL, mailto.path
    request["Subject"] = parse_qs(mailto.query)["subject"][0]
    request.set_content("This message was automatically generated by the mail client's unsubscribe button.")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        smtp.send_message(request)
    deadline = time.time() + seconds
    while time.time() < deadline:
        if any(s.source == "mailto" for s in Suppression.query(UNSUBSCRIBES_BY_EMAIL)):
            console.print(
                f"{UNSUBSCRIBES_BY_EMAIL} unsubscribed by email: its mail client wrote to {mailto.path} "
                "as the newsletter's List-Unsubscribe says (docs/unsubscribe.md)",
                highlight=False,
            )
            return True
        time.sleep(0.5)
    console.print(f"[red]{UNSUBSCRIBES_BY_EMAIL}'s email to {mailto.path} did not unsubscribe it[/red]")
    return False


def _schedule_newsletter(campaign: str, example: dict) -> dict[str, str]:
    """``postline campaigns create`` for the newsletter, five seconds from now; each address's message id."""
    from datetime import datetime, timedelta, timezone

    from postline.campaigns.audience import recipient_id
    from postline.contract import message_id_for

    from .campaigns import campaigns as campaign_commands

    start = (datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat(timespec="seconds")
    shared = {key: value for key, value in example.items() if key != "name"}
    with tempfile.TemporaryDirectory() as folder:
        audience = Path(folder) / "june.csv"
        audience.write_text(
            "email,name\n"
            + "".join(f"{address},{address.split('@')[0].capitalize()}\n" for address in NEWSLETTER_AUDIENCE)
        )
        campaign_commands.main(
            [
                "create",
                campaign,
                "--template",
                "newsletter",
                "--audience",
                str(audience),
                "--data",
                json.dumps(shared),
                "--at",
                start,
            ],
            standalone_mode=False,
        )
    return {address: message_id_for(recipient_id(campaign, address)) for address in NEWSLETTER_AUDIENCE}


def _result(item: Sent, view: dict) -> str:
    if item.expect == "duplicate":
        return "duplicate" if view.get("duplicates_ignored") else view["status"]
    return view["status"]


def _wait(sent: list[Sent], message_view, seconds: float) -> dict[str, dict]:
    deadline = time.time() + seconds
    while True:
        views = {s.message_id: message_view(s.message_id) for s in sent}
        settled = all(
            _result(s, views[s.message_id]) == s.expect
            or (s.expect != "duplicate" and views[s.message_id]["status"] in FINAL - {"sent"})
            for s in sent
        )
        if settled or time.time() > deadline:
            return views
        time.sleep(0.5)


def _report(console: Console, sent: list[Sent], views: dict, outbox: Path) -> None:
    recipients = [views[item.message_id].get("recipient") or "" for item in sent]
    table = Table(
        "message",
        Column("to", no_wrap=True, min_width=max(map(len, recipients))),
        "template",
        "result",
        Column("detail", overflow="fold"),
        title="What happened",
    )  # whole addresses and paths
    for item in sent:
        view = views[item.message_id]
        result = _result(item, view)
        if item.expect == "duplicate":
            detail, result = "same id as an earlier message: not sent again", "duplicate ignored"
        else:
            detail = view.get("reason") or ""
            if view["status"] in ("sent", "delivered"):
                detail = _shown(outbox / f"{item.message_id}.eml")
            elif view["status"] in ("bounced", "complained"):
                detail = "sent; the address is now suppressed"
        colour = "green" if result in ("sent", "delivered") else "yellow"
        table.add_row(
            item.label,
            view.get("recipient") or "",
            view.get("template") or "",
            f"[{colour}]{result}[/{colour}]",
            detail,
        )
    console.print(table)
    from . import suppressions

    listed = [f"{s.email} ({s.reason})" for s in suppressions.iterate()]
    console.print(f"suppression list now: {', '.join(sorted(listed))}", highlight=False)
    console.print(f"emails (RFC 5322 .eml, open them in a mail client): {outbox}", highlight=False)
    console.print(
        "rejected messages wait in their inbound queue's DLQ with the reason as the postline_reason message attribute."
    )


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it (shorter), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
