"""Properties of address normalisation and the suppression key, for any text Hypothesis can find: it normalises or
refuses with ``InvalidAddress`` (nothing else), normalising twice changes nothing, and the spellings of one mailbox
(case, whitespace around it, a domain in Unicode, in punycode, decomposed, in full-width letters) share one key."""
from __future__ import annotations

import unicodedata

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from postline.addresses import InvalidAddress, normalise_address
from postline.suppression import suppression_key

PROPERTY = settings(deadline=None)  # Hypothesis's default example count (or a profile's)

_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
local_parts = st.from_regex(rf"[{_ATEXT}]{{1,20}}(\.[{_ATEXT}]{{1,10}}){{0,2}}", fullmatch=True)
# Letters whose upper case maps back to them (not ß, ı, ...: their case changes name another domain under IDNA).
_IDN_LETTERS = "abcdefghijklmnopqrstuvwxyzäöüéèêñçøåæœžšłő" + "日本語例え"
_labels = (st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
           | st.text(st.sampled_from(_IDN_LETTERS), min_size=1, max_size=10))
domains = st.builds(lambda labels, top: ".".join([*labels, top]), st.lists(_labels, min_size=1, max_size=3),
                    st.sampled_from(["com", "example", "de", "jp"]))
addresses = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)
# Anything: arbitrary text, and addresses with arbitrary text around them or in place of a part.
any_text = (st.text() | addresses | st.builds("{}{}{}".format, st.text(max_size=3), addresses, st.text(max_size=3))
            | st.builds("{}@{}".format, local_parts, st.text(max_size=30))
            | st.builds("{}@{}".format, st.text(max_size=30), domains))


def _normalised_or_none(text: str) -> str | None:
    try:
        return normalise_address(text)
    except InvalidAddress as refused:
        assert str(refused)
        return None


def _swap_ascii_case(text: str, flips: list[bool]) -> str:
    """``text`` with the case of its ASCII letters swapped where ``flips`` says (everywhere past its end)."""
    flips = flips[:len(text)] + [True] * (len(text) - len(flips))
    return "".join(c.swapcase() if c.isascii() and flip else c for c, flip in zip(text, flips, strict=True))


@PROPERTY
@given(text=any_text)
@example(text="ada@example.com\u2028")
@example(text="ada@xn--example.com")
def test_any_text_is_normalised_or_refused_with_invalid_address_and_normalising_again_changes_nothing(text):
    normalised = _normalised_or_none(text)
    if normalised is None:
        return
    assert normalise_address(normalised) == normalised
    local, _, domain = normalised.rpartition("@")
    assert normalised.isascii() and not any(c.isspace() for c in normalised)
    assert domain == domain.lower()
    assert suppression_key(suppression_key(normalised)) == suppression_key(normalised)


@PROPERTY
@given(value=st.none() | st.integers() | st.binary() | st.lists(st.text(), max_size=2))
def test_anything_but_text_is_refused_as_not_a_string(value):
    try:
        normalise_address(value)
    except InvalidAddress as refused:
        assert str(refused) == "must be a string"
    else:
        raise AssertionError(f"{value!r} was accepted")


@PROPERTY
@given(address=addresses, flips=st.lists(st.booleans()), padding=st.sampled_from(["", " ", "\t", "\u00a0", "\u3000"]))
def test_the_spellings_of_one_mailbox_share_one_suppression_key(address, flips, padding):
    """Case anywhere (the local part's too: no mail provider gives Bob and bob two mailboxes), whitespace around,
    the domain in Unicode, punycode, decomposed or full-width: one key. The local part itself is kept as written."""
    normalised = _normalised_or_none(address)
    assume(normalised is not None)
    local, _, domain = address.rpartition("@")
    spellings = [
        padding + _swap_ascii_case(address, flips) + padding,
        f"{local}@{domain.upper()}",
        f"{local}@{domain.encode('idna').decode('ascii')}",  # Python's own IDNA codec, not email_validator's
        unicodedata.normalize("NFD", address),
        f"{local}@{''.join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in domain)}",
        f"{local}@{domain.replace('.', '。')}",
    ]
    for spelling in spellings:
        assert suppression_key(normalise_address(spelling)) == suppression_key(normalised), spelling
    assert normalise_address(f" {address}\t").partition("@")[0] == local


@PROPERTY
@given(first=addresses, second=addresses)
def test_addresses_that_differ_beyond_case_keep_different_keys(first, second):
    one, other = _normalised_or_none(first), _normalised_or_none(second)
    assume(one is not None and other is not None)
    assert (suppression_key(one) == suppression_key(other)) == (one.lower() == other.lower())


@PROPERTY
@given(local=st.from_regex(r"[a-z0-9]{8,16}", fullmatch=True), domain=st.text(max_size=30))
def test_a_refusal_never_repeats_the_local_part(local, domain):
    """The reason is kept on the message record and may be logged: it must not carry the address."""
    try:
        normalise_address(f"{local}@{domain}")
    except InvalidAddress as refused:
        assert local not in str(refused)
