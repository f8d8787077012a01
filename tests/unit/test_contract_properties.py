"""Properties of the send-message parser, for any JSON Hypothesis can find: it accepts a message or refuses it with
``Rejected`` and a reason that names what is wrong, and what it accepts comes back unchanged through its own JSON."""
from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from postline.addresses import normalise_address
from postline.contract import (
    LOCALE,
    MAX_TAGS,
    TAG_NAME_NOT_RESERVED,
    TAG_VALUE,
    TEMPLATE_PATTERN,
    Rejected,
    SendMessage,
    parse_send_message,
    validate_send_message,
)

PROPERTY = settings(deadline=None)  # Hypothesis's default example count (or a profile's)
LIMIT = 256_000
REQUIRED = ("template", "to")
FIELDS = ("template", "to", "data", "id", "campaign", "tags", "reply_to", "locale")

# Any JSON value: text with every kind of character (lone surrogates come in through the bodies below).
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)

# A field as the contract wants it.
_identifier = st.from_regex(r"[\x21-\x7e]{1,40}", fullmatch=True)
_address = st.sampled_from(["ada@example.com", "  Ada.Lovelace@EXAMPLE.COM ", "grace+news@bücher.example",
                            "o'brien@xn--bcher-kva.example", "a@b.co"])
VALID = {
    "template": st.from_regex(TEMPLATE_PATTERN, fullmatch=True),
    "to": _address,
    "data": json_objects,
    "id": _identifier,
    "campaign": _identifier,
    "tags": st.dictionaries(st.from_regex(TAG_NAME_NOT_RESERVED, fullmatch=True),
                            st.from_regex(TAG_VALUE, fullmatch=True), max_size=MAX_TAGS),
    "reply_to": _address,
    "locale": st.from_regex(LOCALE, fullmatch=True),
}
NULLABLE = ("id", "campaign", "tags", "reply_to", "locale")  # null means not given; data may only be left out
valid_documents = st.fixed_dictionaries({name: VALID[name] for name in REQUIRED},
                                        optional={"data": VALID["data"],
                                                  **{name: VALID[name] | st.none() for name in NULLABLE}})
# Documents near the contract: each field valid, or any JSON value, or missing; sometimes a field it does not know.
near_documents = st.fixed_dictionaries({}, optional={**{name: VALID[name] | json_values for name in FIELDS},
                                                     "priority": json_values})


@st.composite
def bodies(draw, documents) -> str | bytes:
    """A document as an application sends it: JSON text, or its bytes in UTF-8, UTF-8 with a BOM, or UTF-16."""
    text = json.dumps(draw(documents), ensure_ascii=draw(st.booleans()))
    encoding = draw(st.sampled_from([None, "utf-8", "utf-8-sig", "utf-16"]))
    return text if encoding is None else text.encode(encoding)


def _parsed_or_reason(body: str | bytes) -> SendMessage | str:
    try:
        message = parse_send_message(body, LIMIT)
    except Rejected as rejection:
        return str(rejection)
    assert isinstance(message, SendMessage)
    return message


def _document(body: str | bytes):
    return json.loads(body)


@PROPERTY
@given(body=bodies(json_values | near_documents | json_objects))
@example(body='{"template": "welcome", "to": "ada@example.com", "data": {"\\ud800": null}}')
def test_any_json_is_a_message_or_refused_with_a_reason_that_names_the_field(body):
    outcome = _parsed_or_reason(body)
    if isinstance(outcome, SendMessage):
        return
    assert outcome and outcome == outcome.encode("utf-8").decode("utf-8")  # a reason every store can keep
    document = _document(body)
    if not isinstance(document, dict):
        assert outcome == f"body must be a JSON object, got {type(document).__name__}"
    elif "surrogate" not in outcome:  # a surrogate is named where it is, within its field (as test_contract shows)
        assert outcome.startswith(tuple(sorted(set(document) | set(REQUIRED), key=len, reverse=True))), outcome


@PROPERTY
@given(document=valid_documents, field=st.sampled_from(FIELDS), value=json_values)
def test_a_message_with_one_field_wrong_is_refused_naming_that_field(document, field, value):
    """Whatever JSON value takes a field's place, the message is accepted or refused for that field alone."""
    outcome = _parsed_or_reason(json.dumps({**document, field: value}))
    if isinstance(outcome, str):
        assert outcome.startswith(f"{field}:") or outcome.startswith(f"{field}."), outcome


@PROPERTY
@given(document=valid_documents)
def test_a_valid_message_survives_its_own_json_unchanged(document):
    message = parse_send_message(json.dumps(document), LIMIT)
    assert parse_send_message(json.dumps(message.as_document()), LIMIT) == message
    assert validate_send_message(message.as_document()) == message
    given = {"data": {}, **{name: value for name, value in document.items() if value is not None}}
    written = message.as_document()
    assert {name: normalise_address(given[name]) for name in ("to", "reply_to") if name in given} == {
        name: written[name] for name in ("to", "reply_to") if name in written}
    assert {name: value for name, value in given.items() if name not in ("to", "reply_to")} == {
        name: value for name, value in written.items() if name not in ("to", "reply_to")}


@PROPERTY
@given(body=st.binary() | st.text())
def test_any_bytes_or_text_are_a_message_or_refused_never_an_other_error(body):
    _parsed_or_reason(body)


# The bug the properties found: bytes decoded as json.loads decodes them ("surrogatepass") let a lone surrogate in.

@pytest.mark.parametrize("encoded", [b"\xed\xa0\x80", b"\xed\xbf\xbf"])  # U+D800 and U+DFFF in UTF-8's pattern
def test_a_lone_surrogate_in_utf8_bytes_is_refused_as_not_utf8(encoded):
    body = b'{"template": "welcome", "to": "ada@example.com", "data": {"' + encoded + b'": null}}'
    with pytest.raises(Rejected) as refused:
        parse_send_message(body, LIMIT)
    assert str(refused.value) == "body is not valid JSON: it is not utf-8 text (invalid continuation byte at byte 59)"


def test_a_body_in_utf16_is_still_read_as_json_reads_it():
    body = json.dumps({"template": "welcome", "to": "ada@example.com", "data": {"name": "Zoë"}}).encode("utf-16")
    assert parse_send_message(body, LIMIT).data == {"name": "Zoë"}
