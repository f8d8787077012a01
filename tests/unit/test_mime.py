"""The raw message handed to SES: what a mail client shows, and the unsubscribe headers mail providers read."""
from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser

import pytest

from postline.addresses import InvalidAddress, normalise_address
from postline.mime import build_mime

SENDER = "Lumen <hello@mail.example.com>"
UNSUBSCRIBE_URL = "https://links.example.com/u/azIfdR9tYWJj.5E-U1O1nw4K4-0RqiPxDcg"
MAILTO = "<mailto:unsubscribe@mail.example.com?subject=unsubscribe%20azIfdR9tYWJj.5E-U1O1nw4K4-0RqiPxDcg>"


def build(**overrides) -> bytes:
    arguments = dict(sender=SENDER, recipient="ada@example.com", subject="Your order has shipped",
                     text="Hello Ada,\nyour order is on its way.\n",
                     html="<p>Hello Ada,</p><p>your order is on its way.</p>")
    arguments.update(overrides)
    return build_mime(**arguments)


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


def raw_header(raw: bytes, name: str) -> str:
    """The header exactly as written on the wire (folded lines joined), before any decoding."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    match = re.search(rf"^{re.escape(name)}: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.MULTILINE)
    assert match, f"no {name} header"
    return match.group(1)


def unix(text: str) -> str:
    return text.replace("\r\n", "\n")


def test_headers_come_back_as_given():
    message = parse(build(reply_to="support@example.com"))
    assert message["From"] == SENDER
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Your order has shipped"
    assert message["Reply-To"] == "support@example.com"
    assert message["Date"] is not None and message["Date"].datetime is not None
    assert message["MIME-Version"] == "1.0"


def test_no_reply_to_unless_asked():
    assert parse(build())["Reply-To"] is None


def test_body_is_multipart_alternative_with_text_then_html():
    message = parse(build())
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]  # the last is the preferred one
    assert unix(parts[0].get_content()) == "Hello Ada,\nyour order is on its way.\n"
    assert unix(parts[1].get_content()).rstrip("\n") == "<p>Hello Ada,</p><p>your order is on its way.</p>"


def test_non_ascii_content_survives_in_subject_text_and_html():
    subject = "Grüße aus Köln — ваш заказ №42 🎉"
    text = "Hallo Jürgen,\nTotal: 12,50 €\n日本語のテキスト\n"
    html = "<p>Hallo Jürgen, → <b>12,50 €</b></p><p>日本語</p>"
    message = parse(build(subject=subject, text=text, html=html))
    assert message["Subject"] == subject
    text_part, html_part = message.iter_parts()
    assert unix(text_part.get_content()) == text
    assert unix(html_part.get_content()).rstrip("\n") == html
    assert text_part.get_content_charset() == "utf-8"


def test_long_subject_is_folded_but_reads_back_whole():
    subject = "Your weekly digest: " + " ".join(f"item{i}" for i in range(40))
    raw = build(subject=subject)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert parse(raw)["Subject"] == subject


def test_lines_end_with_crlf():
    raw = build()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def list_headers(url: str = UNSUBSCRIBE_URL) -> dict[str, list[str]]:
    return {"List-Unsubscribe": [f"<{url}>", MAILTO], "List-Unsubscribe-Post": ["List-Unsubscribe=One-Click"]}


def test_list_unsubscribe_is_plain_angle_bracket_urls():
    raw = build(list_headers=list_headers())
    assert raw_header(raw, "List-Unsubscribe") == f"<{UNSUBSCRIBE_URL}>,\r\n {MAILTO}"
    message = parse(raw)
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE_URL}>, {MAILTO}"


@pytest.mark.parametrize("length", [200, 998, 2000])
def test_long_list_unsubscribe_url_is_never_rfc2047_encoded(length):
    url = "https://links.example.com/u/" + "Ab0-_" * (length // 5)
    raw = build(list_headers=list_headers(url))
    value = raw_header(raw, "List-Unsubscribe")
    assert "=?" not in value
    assert value.startswith(f"<{url}>,")  # the URL itself is never broken across lines
    assert parse(raw)["List-Unsubscribe"] == f"<{url}>, {MAILTO}"


def test_list_unsubscribe_post_is_present_for_one_click():
    raw = build(list_headers=list_headers())
    assert raw_header(raw, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert parse(raw)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_list_headers_are_headers_of_the_message_not_of_the_body():
    message = parse(build(list_headers=list_headers()))
    assert message.get_content_type() == "multipart/alternative"
    assert message["From"] == SENDER  # the headers before and after the list headers are one header block
    assert all(p["List-Unsubscribe"] is None for p in message.iter_parts())


def test_no_list_headers_unless_asked():
    message = parse(build())
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize("address", ["ada@bücher.example", "zoë@example.com"])
def test_every_accepted_recipient_is_written_as_a_valid_ascii_address(address):
    try:
        recipient = normalise_address(address)
    except InvalidAddress:
        return  # refusing an address SES cannot send to is fine too
    to = raw_header(build(recipient=recipient), "To")
    assert to.isascii() and "=?" not in to
    assert re.fullmatch(r"[!-~]+@[A-Za-z0-9.-]+", to)


def test_a_line_break_in_a_header_value_is_refused():
    with pytest.raises(ValueError):
        build(subject="Hello\r\nBcc: eve@evil.example")


def test_long_body_lines_are_wrapped_on_the_wire_and_read_back_whole():
    text = "word " * 400 + "\n" + "trailing space   \n" + "tab\tinside\n"
    html = "<table>" + "<td style='padding:0'>cell=value</td>" * 200 + "</table>"
    raw = build(text=text, html=html)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    text_part, html_part = parse(raw).iter_parts()
    assert unix(text_part.get_content()) == text
    assert unix(html_part.get_content()).rstrip("\n") == html


def test_mostly_non_latin_text_is_sent_in_the_shorter_encoding():
    text = "日本語のニュースレター。今週のお知らせです。\n" * 50
    html = f"<p>{text}</p>"
    raw = build(text=text, html=html)
    text_part, html_part = parse(raw).iter_parts()
    assert text_part["Content-Transfer-Encoding"] == "base64"
    assert unix(text_part.get_content()) == text
    # base64 takes about 1.37 times the bytes, quoted-printable would take about 3 times
    assert len(raw) < 1.6 * len((text + html).encode("utf-8"))


def test_each_message_has_its_own_boundary():
    first, second = parse(build()), parse(build())
    assert first.get_boundary() != second.get_boundary()
