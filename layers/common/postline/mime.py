"""The finished RFC 5322 message handed to SES as raw content."""
from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

# Every part 7-bit (quoted-printable or base64 where needed): the MIME travels as ASCII text through SQS.
_POLICY = SMTP.clone(cte_type="7bit")
from email.utils import formatdate


def _list_header(name: str, values: list[str]) -> bytes:
    """A header listing ``values`` (ASCII, e.g. <url>s), folded after each comma. The email package would
    RFC 2047-encode a long unbroken URL, which mail providers do not accept in List-Unsubscribe."""
    line = f"{name}: " + ",\r\n ".join(values) + "\r\n"
    return line.encode("ascii")


def build_mime(
    *,
    sender: str,
    recipient: str,
    subject: str,
    text: str,
    html: str,
    reply_to: str | None = None,
    list_headers: dict[str, list[str]] | None = None,
) -> bytes:
    message = EmailMessage(policy=_POLICY)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    extra = b"".join(_list_header(name, values) for name, values in (list_headers or {}).items())
    return extra + message.as_bytes()
