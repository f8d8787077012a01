"""What a log line may carry of a reason or an error (postline.batch.loggable): no address, no quoted value."""
from __future__ import annotations

import pytest

from postline.batch import describe_for_log, loggable


@pytest.mark.parametrize("reason, logged", [
    ("Illegal address: <Ada.L@Example.com>", "Illegal address: <<redacted>>"),
    ("554 5.1.1 ada+tag@example.co.uk: Recipient address rejected", "554 5.1.1 <redacted>: Recipient address rejected"),
    ("cannot render quoting@1 with this data: 'secret plan' is not in list (html line 1)",
     "cannot render quoting@1 with this data: <redacted> is not in list (html line 1)"),
    ('Invalid isoformat string: "tomorrow"', "Invalid isoformat string: <redacted>"),
    ("missing data the template welcome@1 needs: name", "missing data the template welcome@1 needs: name"),
    ("to: invalid address: contains a line break or NUL (header injection)",
     "to: invalid address: contains a line break or NUL (header injection)"),
])
def test_a_logged_reason_keeps_its_words_and_loses_its_values(reason, logged):
    assert loggable(reason) == logged


def test_no_reason_stays_none_and_a_long_one_is_cut():
    assert loggable(None) is None
    assert len(loggable("x" * 5000)) == 300


def test_an_error_is_logged_with_where_it_was_raised_not_what_it_quotes():
    def parse(value):
        return int(value)

    try:
        parse("ada@example.com")
    except ValueError as error:
        logged = describe_for_log(error)
    assert logged.startswith("ValueError: invalid literal for int() with base 10: <redacted> at ")
    assert "test_log_redaction.py:" in logged and " parse" in logged and "ada" not in logged
