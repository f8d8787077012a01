"""Addresses are normalised once at the edge: suppressions, duplicates and events all compare the normalised form."""
from __future__ import annotations

import pytest

from postline.addresses import InvalidAddress, mask_address, normalise_address


@pytest.mark.parametrize("raw, expected", [
    ("ada@example.com", "ada@example.com"),
    ("ada@EXAMPLE.COM", "ada@example.com"),
    ("Ada.Lovelace@Example.Com", "Ada.Lovelace@example.com"),  # the local part is the mailbox owner's: kept
    ("  ada@example.com\t", "ada@example.com"),
    ("ada+newsletter@Sub.Example.co.uk", "ada+newsletter@sub.example.co.uk"),
])
def test_domain_is_lower_cased_local_part_kept_whitespace_stripped(raw, expected):
    assert normalise_address(raw) == expected


def test_the_same_mailbox_written_differently_normalises_to_one_value():
    spellings = ["Ada@Example.com", " Ada@EXAMPLE.com", "Ada@example.COM "]
    assert {normalise_address(s) for s in spellings} == {"Ada@example.com"}


def test_normalising_twice_changes_nothing():
    once = normalise_address("  Ada@EXAMPLE.com ")
    assert normalise_address(once) == once


def test_idn_domain_unicode_and_punycode_spellings_are_one_address():
    unicode_form = normalise_address("ada@BÜCHER.example")
    assert unicode_form == normalise_address("ada@bücher.example")
    assert unicode_form == normalise_address("ada@xn--bcher-kva.example")
    assert unicode_form.startswith("ada@")


@pytest.mark.parametrize("raw", ["ada@example.com\r\nBcc: eve@evil.example", "ada@example.com\n", "\rada@example.com",
                                 "ada@exam\x00ple.com", "ada\r\n@example.com"])
def test_line_breaks_and_nul_are_rejected_as_header_injection(raw):
    with pytest.raises(InvalidAddress, match="header injection"):
        normalise_address(raw)


@pytest.mark.parametrize("raw", ["Ada Lovelace <ada@example.com>", "<ada@example.com>", '"Ada" <ada@example.com>',
                                 "ada@example.com, eve@example.com"])
def test_display_name_forms_and_lists_are_rejected(raw):
    with pytest.raises(InvalidAddress, match="single bare address"):
        normalise_address(raw)


@pytest.mark.parametrize("raw", ["", "   ", "ada", "ada@", "@example.com", "ada@@example.com", "ada@localhost",
                                 "ada@example..com", "a b@example.com"])
def test_malformed_addresses_are_rejected(raw):
    with pytest.raises(InvalidAddress):
        normalise_address(raw)


@pytest.mark.parametrize("raw", [None, 42, b"ada@example.com"])
def test_non_strings_are_rejected(raw):
    with pytest.raises(InvalidAddress, match="must be a string"):
        normalise_address(raw)


def test_mask_address_keeps_first_letter_and_domain_only():
    assert mask_address("jane.doe@example.com") == "j***@example.com"
    assert mask_address("x@example.org") == "x***@example.org"


def test_mask_address_hides_the_length_of_the_local_part():
    assert mask_address("al@example.com") == mask_address("alexandra.longname@example.com") == "a***@example.com"
