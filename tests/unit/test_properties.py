"""Properties, for any input Hypothesis can find: the headers of a built message never carry a line break and
never exceed RFC 5322's line limit, signed tokens verify exactly and only as signed, and a tracked link leads
exactly where the author's link did."""
from __future__ import annotations

import html
import re
from email import policy
from email.header import decode_header
from email.headerregistry import Address
from email.parser import BytesParser
from email.utils import parseaddr

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import urls

from postline.contract import message_id_for
from postline.engagement import is_safe_target
from postline.mime import build_mime
from postline.models import Template
from postline.suppression import erased_address
from postline.templates import CompiledTemplate
from postline.tokens import CLICK, OPEN, UNSUBSCRIBE, Claims, KeyRing
from postline.tracking import add_tracking

from .fakes import KEY_NEW, KEY_OLD, secret_json

FAST = settings(max_examples=60, deadline=None)
# Hypothesis's default example count (or a profile's: ``--hypothesis-profile``); no deadline, the machine is shared.
PROPERTY = settings(deadline=None)
SENDER_ADDRESS = "hello@mail.example.com"
RECIPIENT = "ada@example.com"

# --- header building -----------------------------------------------------------------------------------------------

# Any Unicode (no lone surrogates: they are not text), with the characters that attack headers mixed in often:
# line breaks, NUL, and runs without a space longer than a header line may be.
_any_character = st.characters(exclude_categories=("Cs",))
_header_pieces = st.one_of(
    st.text(_any_character, max_size=30),
    st.sampled_from(["\r", "\n", "\r\n", "\x00", "\t", " ", "\u2028", "\x85", "=?utf-8?q?x?=", '"', "<", ">", ","]),
    st.builds(lambda character, length: character * length, _any_character, st.integers(60, 1200)),
)
header_text = st.lists(_header_pieces, max_size=6).map("".join)
# Display names: any text with the characters that matter in a phrase mixed in, long runs without a space included.
# An encoded word in the sender string is read as one (it is an RFC 5322 string, as an operator configures it), so
# "=?" is kept out of them; a subject's, which is data, is kept in.
_name_pieces = st.one_of(st.text(_any_character, max_size=30), st.sampled_from(["\r", "\n", "\x1e", " ", '"', "<"]),
                         st.builds(lambda character, length: character * length, _any_character, st.integers(20, 300)))
display_names = st.lists(_name_pieces, max_size=3).map("".join).filter(lambda text: "=?" not in text)


def _render_subject(subject: str) -> str:
    """The subject as a template renders it from the message's data (the path every subject takes)."""
    template = CompiledTemplate.compile(Template("p", 1, stream="transactional", subject="{{ subject }}", html="x",
                                                 text="x", required=["subject"]))
    return template.render({"subject": subject}, {}).subject


def _head_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def _header_lines(raw: bytes, name: bytes) -> list[bytes]:
    """The lines of header ``name``: its first and the continuation lines after it."""
    lines, inside = [], False
    for line in _head_lines(raw):
        inside = line.startswith(name + b":") or (inside and line[:1] in (b" ", b"\t"))
        if inside:
            lines.append(line)
    return lines


def _assert_headers_are_clean(raw: bytes) -> None:
    """Every header line ends in CRLF with no CR, LF or NUL inside, a line that does not start a header continues
    one (folded, starting with a space or tab), and no line of the message exceeds 998 characters. The lines
    postline writes from text (Subject, From, Reply-To) keep to the 78 characters RFC 5322 asks for, and to 76
    where they hold an encoded word (RFC 2047)."""
    for line in _head_lines(raw):
        assert b"\r" not in line and b"\n" not in line and b"\x00" not in line, line
        assert re.match(rb"[!-9;-~]+:( |$)|[ \t]", line), f"neither a header nor its continuation: {line!r}"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    for name in (b"Subject", b"From", b"Reply-To"):
        for line in _header_lines(raw, name):
            assert len(line) <= (76 if b"=?" in line else 78), line


def _parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


def _mailbox_as_mail_clients_read_it(raw: bytes, name: str) -> tuple[str, str]:
    """(display name, address) of a one-mailbox header, read as RFC 2047 6.2 says: the whitespace between two
    adjacent encoded words is not part of the text. Python 3.11's email parser keeps it in a display name (CPython
    gh-128110); its older API drops it, as mail clients do, and is what reads the name here."""
    display_name, address = parseaddr(_raw_value(raw, name))
    return "".join(part.decode(charset or "ascii") if isinstance(part, bytes) else part
                   for part, charset in decode_header(display_name)), address


def _raw_value(raw: bytes, name: str) -> str:
    """A header's value as written, its folds undone (RFC 5322 unfolding: each CRLF before a space is removed)."""
    lines = _header_lines(raw, name.encode("ascii"))
    return b"".join(lines).decode("ascii").split(":", 1)[1].lstrip(" ")


def _build(**overrides) -> bytes:
    arguments = dict(sender=f"Lumen <{SENDER_ADDRESS}>", recipient=RECIPIENT, subject="Hi", text="t\n", html="<p>h</p>")
    return build_mime(**{**arguments, **overrides})


def _breaks_lines(value: str) -> bool:
    """What mime.py refuses as "a line break inside a value": the email policy's test, ``str.splitlines``, and a
    trailing CR or LF (which that test misses)."""
    return len(value.splitlines()) > 1 or value.endswith(("\r", "\n"))


def _refused_or_clean(**header) -> bytes | None:
    (value,) = header.values()
    if _breaks_lines(value):
        with pytest.raises(ValueError):
            _build(**header)
        return None
    raw = _build(**header)
    _assert_headers_are_clean(raw)
    return raw


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")  # what render removes (the rest of C0 is whitespace)


@PROPERTY
@given(subject=header_text)
@example(subject="order\x00 shipped")
@example(subject="=?utf-8?q?Your_account_is_closed?=")
def test_a_rendered_subject_is_one_clean_header_line_that_reads_back_with_whitespace_collapsed(subject):
    """templates.py makes a subject one line (every whitespace run, line breaks included, becomes one space, and
    control characters such as NUL go), so whatever the data holds, the message builds and its subject reads back
    as exactly that line."""
    raw = _build(subject=_render_subject(subject))
    _assert_headers_are_clean(raw)
    assert _parse(raw)["Subject"] == " ".join(_CONTROL.sub("", subject).split())


@PROPERTY
@given(subject=header_text)
@example(subject="Hi\r")
@example(subject="Hi\n")
@example(subject=" two  spaces\tand a tab ")
@example(subject="=??Q??= " + "x" * 90)
def test_a_subject_given_straight_to_the_builder_is_refused_with_a_line_break_or_reads_back_exactly(subject):
    """Whitespace, NUL and anything that looks like an encoded word included: what is not refused reads back as
    given."""
    raw = _refused_or_clean(subject=subject)
    if raw is not None:
        assert _parse(raw)["Subject"] == subject


@PROPERTY
@given(name=display_names)
@example(name="\t" * 53)  # read as no name at all: the address alone, not the tabs
def test_any_display_name_in_from_and_reply_to_is_refused_with_a_line_break_or_reads_back(name):
    """A display name reads back as given, up to how its whitespace is spaced (the email package trims and turns
    tabs into spaces outside quotes when it reads the sender string; a mail client collapses whitespace anyway)."""
    sender = f"{name} <{SENDER_ADDRESS}>" if _breaks_lines(name) else str(Address(name, addr_spec=SENDER_ADDRESS))
    if _refused_or_clean(sender=sender) is None:
        return
    reply_to = str(Address(display_name=name, addr_spec="support@example.com"))
    raw = _build(sender=sender, reply_to=reply_to)
    message = _parse(raw)
    for header, address in [("From", SENDER_ADDRESS), ("Reply-To", "support@example.com")]:
        (parsed,) = message[header].addresses
        assert parsed.addr_spec == address
        display_name, read_address = _mailbox_as_mail_clients_read_it(raw, header)
        assert (" ".join(display_name.split()), read_address) == (" ".join(name.split()), address)


@PROPERTY
@given(name=display_names.map(lambda text: " ".join(text.split())))
@example(name="Ünïcödé Ñéwslëttér Ünïcödé Ñéwslëttér" * 2)
@example(name="\x80" * 60)
@example(name="00000\x80\x80𐀀𐀀𐀀000000\x80\x80𐀀𐀀𐀀")
@example(name="Ada, the \"Countess\" of Lovelace")
@example(name="0" * 349)  # too long to fold: encoded, and its last line then keeps to 76 with the address on it
def test_a_display_name_spaced_as_the_sender_string_reads_it_reads_back_exactly(name):
    """Exactly, for a name with no whitespace to collapse: mime.py writes what the sender string says."""
    raw = _refused_or_clean(sender=str(Address(name, addr_spec=SENDER_ADDRESS)))
    if raw is not None:
        assert _mailbox_as_mail_clients_read_it(raw, "From") == (name, SENDER_ADDRESS)


# The two bugs the properties found (strict xfails until mime.py wrote these headers itself).

def test_a_subject_that_looks_like_an_encoded_word_reads_back_as_typed():
    """The standard library wrote it as it is, and every reader decoded it into other text."""
    subject = "=?utf-8?q?Your_account_is_closed?="
    raw = _build(subject=_render_subject(subject))
    assert _parse(raw)["Subject"] == subject
    assert _raw_value(raw, "Subject") != subject  # encoded, so that a reader decodes it back to the typed text


def test_a_long_non_ascii_display_name_is_encoded_in_short_lines_and_reads_back_exactly():
    """The standard library folded it into encoded words that Python's own parser reads back with spaces inside
    words; mime.py breaks between encoded words after a space, so even that parser reads each word whole."""
    name = "Ünïcödé Ñéwslëttér Ünïcödé Ñéwslëttér" * 2
    raw = _build(sender=str(Address(name, addr_spec=SENDER_ADDRESS)))
    assert all(len(line) <= 76 for line in _header_lines(raw, b"From"))
    assert _mailbox_as_mail_clients_read_it(raw, "From") == (name, SENDER_ADDRESS)
    (parsed,) = _parse(raw)["From"].addresses
    assert parsed.display_name.split() == name.split()


# --- tokens --------------------------------------------------------------------------------------------------------

RING = KeyRing.from_secret(secret_json())  # k2 active, k1 retired but still accepted
RING_SIGNING_WITH_K1 = KeyRing.from_secret(secret_json(active="k1"))
RING_WITHOUT_K1 = KeyRing.from_secret(secret_json(keys={"k2": KEY_NEW}))
TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."

# postline's own message ids, and any text without the payload's field separator (the signer joins on it).
message_ids = st.one_of(st.text(min_size=1).map(message_id_for),
                        st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x1f"), min_size=1))


@st.composite
def claims(draw) -> tuple[str, str, str | None]:
    kind = draw(st.sampled_from([OPEN, CLICK, UNSUBSCRIBE]))
    extra = {OPEN: st.none(), CLICK: urls(),
             UNSUBSCRIBE: st.none() | st.emails().map(lambda address: erased_address(address, KEY_OLD))}[kind]
    return kind, draw(message_ids), draw(extra)


def _expected(ring: KeyRing, kind: str, message_id: str, extra: str | None) -> Claims:
    if kind == UNSUBSCRIBE:
        return Claims(kind, message_id, key_id=ring.active_key_id, subscriber=extra)
    return Claims(kind, message_id, extra, ring.active_key_id)


@FAST
@given(signed=claims())
def test_a_signed_token_verifies_to_exactly_what_was_signed(signed):
    assert RING.verify(RING.sign(*signed)) == _expected(RING, *signed)


def _changed(token: str, position: int, replacement: str) -> str:
    return token[:position] + replacement + token[position + 1:]


@FAST
@given(signed=claims(), data=st.data())
def test_any_single_character_change_to_a_token_is_rejected(signed, data):
    """Any character, the last of either base64 part included."""
    token = RING.sign(*signed)
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    replacement = data.draw(st.sampled_from(TOKEN_ALPHABET).filter(lambda c: c != token[position]), label="with")
    changed = _changed(token, position, replacement)
    assert RING.verify(changed) is None, f"{token!r} changed at {position} to {changed!r} still verifies"


@settings(max_examples=20, deadline=None)
@given(signed=claims())
@example(signed=(OPEN, "m", None))
def test_a_change_to_the_last_character_of_the_mac_is_refused(signed):
    """tokens.py decodes only the base64url it writes, so the unused low bits of a last character cannot vary."""
    token = RING.sign(*signed)
    last = TOKEN_ALPHABET.index(token[-1])
    assert RING.verify(_changed(token, len(token) - 1, TOKEN_ALPHABET[last ^ 1])) is None


@settings(max_examples=1, deadline=None)
@given(change=st.just(lambda token: token.replace("-", "+", 1)))
@example(change=lambda token: token.replace("_", "/", 1))
@example(change=lambda token: token + "=")
def test_a_token_in_the_standard_base64_alphabet_or_padded_is_refused(change):
    """A token is one string: its standard-alphabet or padded spellings are refused."""
    token = RING.sign(CLICK, "m", "https://x.example/??>~~~")  # its base64 holds both "-" and "_"
    assert "-" in token and "_" in token
    assert RING.verify(change(token)) is None


@FAST
@given(signed=claims())
def test_a_token_signed_with_a_retired_key_verifies_while_the_ring_holds_it_and_not_after(signed):
    token = RING_SIGNING_WITH_K1.sign(*signed)
    assert RING.verify(token) == _expected(RING_SIGNING_WITH_K1, *signed)
    assert RING_WITHOUT_K1.verify(token) is None


# --- link rewriting ------------------------------------------------------------------------------------------------

BASE = "https://links.example.com"
MESSAGE_ID = message_id_for("order-1234")
TRACKED_HREF = re.compile(r'href="' + re.escape(BASE) + r'/c/([^"]+)"')
# Names that are HTML character references (with and without ";") and so could be misread in a query string.
ENTITY_NAMES = ["amp", "copy", "lt", "gt", "quot", "not", "para", "reg", "sect", "nbsp", "times", "euro", "id", "q"]
_unreserved = st.characters(categories=("L", "N"), exclude_characters="&\"'<>") | st.sampled_from("-._~!$'()*+,;:@=")
_escape = st.integers(0, 255).map(lambda byte: f"%{byte:02X}")
_url_text = st.lists(_unreserved | _escape, max_size=12).map("".join)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True) | st.sampled_from(["例え", "bücher"])


@st.composite
def written_urls(draw) -> str:
    """An http(s) URL as a template author writes one: any scheme case, IDN or IP host, port, path segments with
    percent-escapes and non-ASCII, a query whose names may be character-reference names, a fragment."""
    scheme = draw(st.sampled_from(["http", "https", "HTTPS", "Http"]))
    host = draw(st.one_of(st.lists(_label, min_size=1, max_size=3).map(lambda labels: ".".join(labels) + ".com"),
                          st.ip_addresses(v=4).map(str)))
    port = draw(st.none() | st.integers(1, 65535))
    path = "/".join(draw(st.lists(_url_text, max_size=4)))
    pairs = draw(st.lists(st.tuples(st.sampled_from(ENTITY_NAMES) | _label, _url_text), max_size=4))
    query = "&".join(f"{name}={value}" for name, value in pairs)
    fragment = draw(st.none() | _url_text)
    return (f"{scheme}://{host}" + (f":{port}" if port else "") + f"/{path}" + (f"?{query}" if pairs else "")
            + (f"#{fragment}" if fragment is not None else ""))


def _followed(written_href: str, quote: str = '"') -> str:
    """Track a link written as ``written_href`` and follow its click as the click endpoint does: verify the token,
    check the target is one a Location header can carry, and redirect to it."""
    tracked = add_tracking(f"<p><a class=\"btn\" href={quote}{written_href}{quote}>Go</a></p>", MESSAGE_ID, RING, BASE)
    (token,) = TRACKED_HREF.findall(tracked)
    claims_ = RING.verify(token)
    assert claims_ is not None and claims_.kind == CLICK and claims_.message_id == MESSAGE_ID
    assert is_safe_target(claims_.target)
    return claims_.target


@settings(max_examples=200, deadline=None)
@given(url=urls() | written_urls(), quote=st.sampled_from(['"', "'"]))
def test_an_html_escaped_link_round_trips_exactly_through_the_click(url, quote):
    assert _followed(html.escape(url, quote=True), quote) == url


@settings(max_examples=200, deadline=None)
@given(url=written_urls())
def test_a_query_string_written_with_bare_ampersands_round_trips_exactly(url):
    """Authors often write ``?a=1&copy=2`` without escaping the ``&``; a browser keeps ``&copy=`` as written in an
    attribute (HTML's rule), and so must the rewritten link."""
    assert _followed(url.replace('"', "&quot;")) == url
