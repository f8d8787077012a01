"""``postline suppressions inbox``: the emails sent to the unsubscribe address that postline could not apply (no
valid token; postline.inbound_mail keeps them, never answers them), and applying one by hand."""

from __future__ import annotations

import os
import time

import click

from postline.addresses import InvalidAddress, normalise_address
from postline.inbound_mail import KeptMail, find_kept, list_kept, mark_applied

from .local import resources
from .views import iso

BUCKET_VARIABLE = "POSTLINE_UNSUBSCRIBE_MAIL_BUCKET"
BUCKET_OUTPUT = "UnsubscribeMailBucket"  # infra/stacks/constants.py Outputs.UNSUBSCRIBE_MAIL_BUCKET
SHORT_ID = 12  # of SES's 40 characters: what the list shows and `apply` takes
SOURCE = "mailto-inbox"  # the suppression's source: applied by an operator from the inbox


class InboxError(RuntimeError):
    pass


def mail_bucket() -> str:
    """Where the received emails are: the local stack's bucket, or the AWS stack's (its output)."""
    from postline.clients import client

    from .target import target

    if os.environ.get(BUCKET_VARIABLE):
        return os.environ[BUCKET_VARIABLE]
    if target().endpoint:
        return resources.UNSUBSCRIBE_MAIL_BUCKET
    stack_name = os.environ.get("POSTLINE_STACK", "postline")
    stack = client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if BUCKET_OUTPUT not in outputs:
        raise InboxError(
            f"the stack {stack_name!r} does not receive unsubscribe emails (its config's "
            "receive_unsubscribe_mail is false, or it was deployed before postline received them)"
        )
    return outputs[BUCKET_OUTPUT]


def view(kept: KeptMail) -> dict:
    return {
        "id": kept.mail_id,
        "received": iso(kept.received_at),
        "sender": kept.sender,
        "subject": kept.subject,
        "why": kept.reason,
        "applied": iso(kept.applied_at),
        "applied_to": kept.applied_to,
    }


def apply(mail_id: str, address: str | None) -> tuple[KeptMail, bool]:
    """Unsubscribe the kept email's sender (or ``address``) from marketing mail, as an unsubscribe; returns the kept
    email and whether it was applied now (False: it had been already)."""
    from postline.clients import client

    from . import suppressions as manage

    s3, bucket = client("s3"), mail_bucket()
    kept = find_kept(s3, bucket, mail_id)
    if kept is None:
        raise InboxError(f"no kept email has the id {mail_id} (postline suppressions inbox lists them)")
    if kept.applied_at is not None and address is None:
        return kept, False
    try:
        chosen = normalise_address(address or kept.sender)
    except InvalidAddress as error:
        raise InboxError(
            f"cannot unsubscribe {address or kept.sender!r}: {error}; name the address with --address"
        ) from None
    manage.add(
        chosen,
        "marketing",
        "unsubscribe",
        f"asked by email, applied from the inbox (mail {kept.mail_id})",
        source=SOURCE,
    )
    return mark_applied(s3, bucket, kept, chosen, time.time()), True


@click.group("inbox", invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, help="How many of the most recent to list.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def inbox(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The emails to the unsubscribe address that were not applied (no valid token), newest first, with their sender,
    subject and why; `inbox apply ID` unsubscribes one's sender by hand. Nothing ever answers them."""
    if ctx.invoked_subcommand is not None:
        return
    from postline.clients import client

    from .main import console, emit_json

    found = [view(kept) for kept in list_kept(client("s3"), mail_bucket(), limit)]
    if as_json:
        emit_json(found)
        return
    if not found:
        console.print("no kept emails: every email to the unsubscribe address was applied or ignored")
        return
    # One block per email, not a table: a subject and a reason are sentences, and the address must stay whole.
    for item in found:
        console.print(f"{item['received']}  {item['id'][:SHORT_ID]}  {item['sender']}", highlight=False, markup=False)
        console.print(f"  subject: {item['subject']}", highlight=False, markup=False)
        console.print(f"  not applied: {item['why']}", highlight=False)
        if item["applied"]:
            console.print(f"  applied by hand {item['applied']} to {item['applied_to']}", highlight=False, markup=False)
    console.print("postline suppressions inbox apply ID unsubscribes an email's sender", highlight=False)


@inbox.command("apply")
@click.argument("mail_id")
@click.option("--address", help="Unsubscribe this address instead of the email's sender.")
def inbox_apply(mail_id: str, address: str | None) -> None:
    """Unsubscribe the sender of the kept email MAIL_ID (its id, or the start of it) from marketing mail."""
    from .main import console, fail

    try:
        kept, now = apply(mail_id, address)
    except InboxError as error:
        fail(str(error))
    if now:
        console.print(
            f"unsubscribed {kept.applied_to} from marketing mail (kept email {kept.mail_id})",
            highlight=False,
            markup=False,
        )
    else:
        console.print(f"already applied on {iso(kept.applied_at)}: {kept.applied_to} is unsubscribed", highlight=False)
