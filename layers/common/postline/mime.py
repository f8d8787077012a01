"""The finished RFC 5322 message handed to SES as raw content.

Headers: a value with a line break is refused (no header injection from template data). Text postline writes
as it is (printable ASCII words between single spaces) is folded at its spaces; any other Subject or display name
is written as RFC 2047 encoded words, here rather than by the standard library, which writes a subject that looks
like an encoded word (``=?utf-8?q?...?=`` in a user's data) as it is, for every reader to decode into other text,
and folds a long display name past RFC 2047's 76-character lines. Addresses are parsed and quoted by the standard
library's email policy.

The body is assembled here, as the standard library would write it: multipart/alternative, a text part then an
HTML part, each UTF-8 and quoted-printable (base64 where that is shorter, as for most non-Latin scripts), every
line ending in CRLF. Building the parts with ``EmailMessage`` cost more than rendering the template, because its
quoted-printable encoder is pure Python; ``binascii`` encodes in C.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from email.policy import SMTP
from email.utils import formatdate

# 7-bit headers: the MIME travels as ASCII text through SQS.
_POLICY = SMTP.clone(cte_type="7bit")

# RFC 5322 asks for lines of at most 78 characters; RFC 2047 allows encoded words of at most 75, on lines of 76.
_LINE = 78
_ENCODED_LINE = 76
_ENCODED_WORD = 75
_ENCODED_WORD_OVERHEAD = len("=?utf-8?q??=")
# Written as it is: printable ASCII words between single spaces, no encoded-word opener ("=?") anywhere.
_PLAIN = re.compile(r"(?!.*=\?)[!-~]+(?: [!-~]+)*")
# A display name of atoms only (RFC 5322 atext) needs no quotes; other plain names are quoted.
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# What a Q-encoded word in a display name may carry as itself (RFC 2047 5(3)); the same is safe in a Subject.
_Q_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


@functools.lru_cache(maxsize=256)
def _header(name: str, value: str) -> bytes:
    """One header, its lines within 78 characters (76 where encoded) and CRLF-ended; raises ValueError for a value
    with a line break (``str.splitlines``, as the email policy checks, and a single trailing one, which it misses)."""
    if len(value.splitlines()) > 1 or value.endswith(("\r", "\n")):
        raise ValueError(f"header {name} holds a line break")
    if name == "Subject":
        return _text_header(name, value)
    name, parsed = _POLICY.header_store_parse(name, value)
    mailboxes = parsed.groups
    if len(mailboxes) == 1 and mailboxes[0].display_name is None and len(mailboxes[0].addresses) == 1:
        address = mailboxes[0].addresses[0]
        if address.addr_spec.isascii():
            # No display name (or only whitespace, which the policy would write back as it is): the address alone.
            if not address.display_name:
                return _joined([f"{name}: {address.addr_spec}"])
            return _mailbox_header(name, address.display_name, address.addr_spec)
    return _POLICY.fold_binary(name, parsed)


def _text_header(name: str, text: str) -> bytes:
    if not text:
        return f"{name}:\r\n".encode("ascii")
    if _PLAIN.fullmatch(text) and (lines := _folded(f"{name}:", text.split(" "))):
        return _joined(lines)
    return _joined(_encoded_lines(f"{name}:", text))


def _mailbox_header(name: str, display_name: str, addr_spec: str) -> bytes:
    """``display name <address>``: the name as atoms, quoted, or encoded words; the address on the last line when
    it fits there, else on a line of its own."""
    plain, limit = _PLAIN.fullmatch(display_name), _LINE
    if plain and _ATOMS.fullmatch(display_name) and (folded := _folded(f"{name}:", display_name.split(" "))):
        lines = folded
    elif plain and len(quoted := _quoted(display_name)) + len(name) + 2 <= _LINE:
        lines = [f"{name}: {quoted}"]
    else:
        lines, limit = _encoded_lines(f"{name}:", display_name), _ENCODED_LINE
    angle_addr = f" <{addr_spec}>"
    if len(lines[-1]) + len(angle_addr) <= limit:
        lines[-1] += angle_addr
    else:
        lines.append(angle_addr)
    return _joined(lines)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _joined(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _folded(start: str, words: list[str]) -> list[str] | None:
    """``words`` after ``start``, one space apart, folded before a word that would pass 78 characters; None when a
    word is too long for any line (folding may only insert a line break before a space)."""
    lines = [f"{start} {words[0]}"]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) <= _LINE:
            lines[-1] += " " + word
        else:
            lines.append(" " + word)
    return lines if all(len(line) <= _LINE for line in lines) else None


def _encoded_lines(start: str, text: str) -> list[str]:
    """``text`` as UTF-8 encoded words, one a line, the first after ``start``. A reader joins adjacent encoded words
    without the line breaks and spaces between them (RFC 2047 6.2), so the words carry every character of ``text``
    (spaces included), whole characters to a word, each word ending after a space where one is in its second
    half: a reader that wrongly keeps the space between encoded words of a display name (Python 3.11's email
    parser, CPython gh-128110) then shows two spaces where there was one, rather than one inside a word."""
    encoded = [_q_size(byte) for byte in text.encode("utf-8")]
    # Q for ASCII whatever its length: spam filters score a base64-encoded name or subject that needed no encoding.
    q_encoding = text.isascii() or sum(encoded) <= _b_size(len(encoded))
    lines: list[str] = []
    room, begin = _ENCODED_LINE - len(start) - 1 - _ENCODED_WORD_OVERHEAD, 0
    while begin < len(text):
        end, size = begin, 0
        while end < len(text):
            character = text[end].encode("utf-8")
            grown = size + sum(map(_q_size, character)) if q_encoding else size + len(character)
            if (grown if q_encoding else _b_size(grown)) > room and end > begin:
                break
            end, size = end + 1, grown
        if end < len(text) and text[end - 1] != " " and (space := text.rfind(" ", begin, end)) >= (begin + end) // 2:
            end = space + 1
        lines.append(("" if lines else start) + " " + _encoded_word(text[begin:end], q_encoding))
        begin, room = end, _ENCODED_WORD - _ENCODED_WORD_OVERHEAD
    return lines


def _q_size(byte: int) -> int:
    return 1 if byte in _Q_LITERAL or byte == 0x20 else 3


def _b_size(length: int) -> int:
    return -(-length // 3) * 4


def _encoded_word(text: str, q_encoding: bool) -> str:
    data = text.encode("utf-8")
    if not q_encoding:
        return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="
    return (
        "=?utf-8?q?"
        + "".join(chr(byte) if byte in _Q_LITERAL else "_" if byte == 0x20 else f"={byte:02X}" for byte in data)
        + "?="
    )


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
        body, encoding = (
            b"".join(binascii.b2a_base64(data[i : i + 57], newline=False) + b"\r\n" for i in range(0, len(data), 57)),
            b"base64",
        )
    return b"".join(
        [
            b"Content-Type: text/",
            subtype.encode("ascii"),
            b'; charset="utf-8"\r\n',
            b"Content-Transfer-Encoding: ",
            encoding,
            b"\r\n\r\n",
            body,
        ]
    )


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
    return b"".join(
        [
            *head,
            b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="',
            boundary,
            b'"\r\n\r\n',
            delimiter,
            b"\r\n",
            _part("plain", text),
            b"\r\n",
            delimiter,
            b"\r\n",
            _part("html", html),
            b"\r\n",
            delimiter,
            b"--\r\n",
        ]
    )
