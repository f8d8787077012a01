"""The finished RFC 5322 message handed to SES as raw content.

Headers go through the standard library's email policy: address parsing, RFC 2047 encoding, folding, and its
refusal of a line break inside a value (no header injection from template data). The body is assembled here, as
the standard library would write it: multipart/alternative, a text part then an HTML part, each UTF-8 and
quoted-printable (base64 where that is shorter, as for most non-Latin scripts), every line ending in CRLF.
Building the parts with ``EmailMessage`` cost more than rendering the template, because its quoted-printable
encoder is pure Python; ``binascii`` encodes in C.
"""
from __future__ import annotations

import binascii
import functools
import os
from email.policy import SMTP
from email.utils import formatdate

# 7-bit headers: the MIME travels as ASCII text through SQS.
_POLICY = SMTP.clone(cte_type="7bit")


@functools.lru_cache(maxsize=256)
def _header(name: str, value: str) -> bytes:
    """One header as the standard library writes it; raises ValueError for a value with a line break (the
    library's own check misses a single trailing one: "Hi\n".splitlines() is one line)."""
    if value.endswith(("\r", "\n")):
        raise ValueError(f"header {name} ends in a line break")
    name, parsed = _POLICY.header_store_parse(name, value)
    return _POLICY.fold_binary(name, parsed)


def _list_header(name: str, values: list[str]) -> bytes:
    """A header listing ``values`` (ASCII, e.g. <url>s), folded after each comma. The email package would
    RFC 2047-encode a long unbroken URL, which mail providers do not accept in List-Unsubscribe."""
    line = f"{name}: " + ",\r\n ".join(values) + "\r\n"
    return line.encode("ascii")


def _part(subtype: str, content: str) -> bytes:
    """A text part: its headers, a blank line and its body, which ends with a line end (as ``set_content``)."""
    data = b"\r\n".join(content.encode("utf-8").splitlines()) + b"\r\n"
    body, encoding = binascii.b2a_qp(data, istext=True), b"quoted-printable"
    if len(body) > len(data) * 4 // 3 + len(data) // 28:  # base64: 4 per 3 bytes, in lines of 76
        body, encoding = b"".join(binascii.b2a_base64(data[i:i + 57], newline=False) + b"\r\n"
                                  for i in range(0, len(data), 57)), b"base64"
    return b"".join([b"Content-Type: text/", subtype.encode("ascii"), b'; charset="utf-8"\r\n',
                     b"Content-Transfer-Encoding: ", encoding, b"\r\n\r\n", body])


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
    # "=_" occurs in neither body: quoted-printable follows "=" with two hex digits or a line end, base64 has no "_".
    boundary = b"=_" + os.urandom(12).hex().encode("ascii")
    head = [
        _header("From", sender),
        _header("To", recipient),
        _header("Subject", subject),
        f"Date: {formatdate(usegmt=True)}\r\n".encode("ascii"),
    ]
    if reply_to:
        head.append(_header("Reply-To", reply_to))
    head.extend(_list_header(name, values) for name, values in (list_headers or {}).items())
    delimiter = b"--" + boundary
    return b"".join([
        *head,
        b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="', boundary, b'"\r\n\r\n',
        delimiter, b"\r\n", _part("plain", text),
        b"\r\n", delimiter, b"\r\n", _part("html", html),
        b"\r\n", delimiter, b"--\r\n",
    ])
