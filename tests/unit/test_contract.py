"""The send message contract: what an application may put on an inbound queue, and why anything else is refused."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from postline import contract
from postline.contract import (
    MAX_TAGS,
    Rejected,
    SendMessage,
    identifier_of,
    json_schema,
    message_id_for,
    parse_send_message,
    validate_send_message,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schema" / "send-message.schema.json"
LIMIT = 64_000


def body(**fields) -> str:
    return json.dumps({"template": "welcome", "to": "ada@example.com", **fields})


def rejection(raw: str | bytes, max_bytes: int = LIMIT) -> str:
    with pytest.raises(Rejected) as caught:
        parse_send_message(raw, max_bytes)
    return str(caught.value)


# --- accepted ---------------------------------------------------------------------------------------------------

def test_full_valid_message_is_accepted_with_every_field():
    message = parse_send_message(body(
        template="order-confirmation@3",
        to="  Ada.Lovelace@EXAMPLE.COM ",
        data={"name": "Ada", "items": [{"sku": "A1", "qty": 2}], "nested": {"x": None}},
        id="order-1234",
        campaign="spring-2025",
        tags={"plan": "pro", "source_app": "checkout.v2"},
        reply_to="Grace.Hopper@Example.ORG",
        locale="en-GB",
    ), LIMIT)

    assert isinstance(message, SendMessage)
    assert message.to == "Ada.Lovelace@example.com"  # domain lower-cased, local part kept, whitespace gone
    assert message.reply_to == "Grace.Hopper@example.org"
    assert message.template_name == "order-confirmation"
    assert message.template_version == 3
    assert message.data == {"name": "Ada", "items": [{"sku": "A1", "qty": 2}], "nested": {"x": None}}
    assert message.id == "order-1234"
    assert message.campaign == "spring-2025"
    assert message.tags == {"plan": "pro", "source_app": "checkout.v2"}
    assert message.locale == "en-GB"


def test_minimal_message_gets_defaults():
    message = parse_send_message(body(), LIMIT)
    assert message.template_name == "welcome"
    assert message.template_version is None
    assert message.data == {}
    assert message.id is message.campaign is message.tags is message.reply_to is None


def test_bytes_body_is_accepted():
    assert parse_send_message(body().encode(), LIMIT).to == "ada@example.com"


def test_exactly_max_tags_is_accepted():
    tags = {f"t{i}": "v" for i in range(MAX_TAGS)}
    assert parse_send_message(body(tags=tags), LIMIT).tags == tags


# --- rejected, with a reason a person can act on ---------------------------------------------------------------

def test_invalid_json_is_rejected():
    assert "not valid JSON" in rejection('{"template": "welcome",')


def test_undecodable_bytes_are_rejected_not_crashing():
    assert "not valid JSON" in rejection(b"\xff\xfe\x00garbage")


@pytest.mark.parametrize("raw, kind", [("[1, 2]", "list"), ('"hello"', "str"), ("42", "int"), ("null", "NoneType")])
def test_non_object_json_is_rejected(raw, kind):
    reason = rejection(raw)
    assert "must be a JSON object" in reason and kind in reason


def test_unknown_field_is_rejected_naming_it():
    assert rejection(body(subject="Hi")) == "subject: unknown field"


@pytest.mark.parametrize("template", ["Welcome", "welcome!", "-welcome", "welcome@0", "welcome@v2", "", "a" * 101,
                                      "../etc/passwd", "welcome@1@2"])
def test_bad_template_name_is_rejected(template):
    reason = rejection(body(template=template))
    assert reason.startswith("template:")
    assert "template name like 'welcome' or 'welcome@3'" in reason


def test_missing_required_fields_are_named():
    reason = rejection(json.dumps({"data": {}}))
    assert "template: Field required" in reason
    assert "to: Field required" in reason


@pytest.mark.parametrize("address", ["not-an-address", "ada@", "@example.com", "ada@localhost", "a b@example.com",
                                     "ada@example.com, eve@example.com", "Ada <ada@example.com>"])
def test_invalid_recipient_is_rejected(address):
    reason = rejection(body(to=address))
    assert reason.startswith("to: invalid address")


@pytest.mark.parametrize("field", ["to", "reply_to"])
@pytest.mark.parametrize("injected", ["ada@example.com\r\nBcc: eve@evil.example", "ada@example.com\nBcc: x@y.example",
                                      "ada@example.com\r", "ada@exa\x00mple.com"])
def test_header_injection_in_addresses_is_rejected(field, injected):
    reason = rejection(body(**{field: injected}))
    assert reason.startswith(f"{field}: invalid address")
    assert "header injection" in reason


@pytest.mark.parametrize("fields, where", [
    ({"data": ["a", "b"]}, "data"),
    ({"data": "name=Ada"}, "data"),
    ({"tags": {"plan": 1}}, "tags.plan"),
    ({"tags": {"plan": ["pro"]}}, "tags.plan"),
    ({"tags": ["pro"]}, "tags"),
    ({"to": 12345}, "to"),
    ({"id": 12345}, "id"),
    ({"template": ["welcome"]}, "template"),
])
def test_wrong_types_are_rejected_naming_the_field(fields, where):
    reason = rejection(body(**fields))
    assert reason.split(":")[0] == where


def test_id_too_long_is_rejected():
    assert rejection(body(id="x" * 257)) == "id: String should have at most 256 characters"
    assert parse_send_message(body(id="x" * 256), LIMIT).id == "x" * 256


@pytest.mark.parametrize("value", ["", "has space", "tab\there", "naïve"])
def test_id_must_be_printable_ascii_without_spaces(value):
    assert rejection(body(id=value)).startswith("id:")


def test_too_many_tags_is_rejected():
    reason = rejection(body(tags={f"t{i}": "v" for i in range(MAX_TAGS + 1)}))
    assert reason.startswith("tags:") and "at most 10" in reason


@pytest.mark.parametrize("tags, where", [({"bad name": "v"}, "tags.bad name"), ({"plan": "has space"}, "tags.plan"),
                                        ({"plan": ""}, "tags.plan")])
def test_tag_names_and_values_must_suit_ses(tags, where):
    assert rejection(body(tags=tags)).startswith(where)


def test_oversized_payload_is_rejected_before_parsing():
    raw = body(data={"blob": "x" * 1000})
    size = len(raw.encode())
    reason = rejection(raw, max_bytes=size - 1)
    assert reason == f"payload too large: {size} bytes, the limit is {size - 1}"
    assert parse_send_message(raw, size).data["blob"] == "x" * 1000


def test_payload_size_counts_bytes_not_characters():
    raw = json.dumps({"template": "welcome", "to": "ada@example.com", "data": {"text": "é" * 100}},
                     ensure_ascii=False)  # the 100 "é" are 100 characters but 200 bytes as UTF-8
    assert "payload too large" in rejection(raw, max_bytes=len(raw) + 50)


@pytest.mark.parametrize("fields, where", [
    ({"template": "welcome\n"}, "template"), ({"id": "order-1\n"}, "id"), ({"locale": "en-GB\n"}, "locale"),
    ({"tags": {"plan": "pro\n"}}, "tags.plan"), ({"tags": {"plan\n": "pro"}}, "tags.plan\n"),
])
def test_a_trailing_line_break_does_not_slip_past_a_pattern(fields, where):
    # Python's '$' matches before a final newline; the contract's patterns are JSON Schema's, where it does not.
    assert rejection(body(**fields)).startswith(f"{where}:")


def test_tag_names_that_are_not_strings_are_rejected():
    # Only a Python caller (postline.client) can pass these: JSON object keys are always strings.
    with pytest.raises(Rejected, match="^tags.7: tag names are 1 to 64 of"):
        validate_send_message({"template": "welcome", "to": "ada@example.com", "tags": {7: "v"}})


def test_several_problems_are_reported_together():
    reason = rejection(json.dumps({"template": "Bad!", "to": "nope", "extra": 1}))
    assert "template:" in reason and "to:" in reason and "extra: unknown field" in reason


# --- message ids ---------------------------------------------------------------------------------------------------

def test_message_id_is_stable():
    assert message_id_for("order-1234") == message_id_for("order-1234")


def test_message_id_differs_by_key_and_namespace():
    ids = {message_id_for("order-1234"), message_id_for("order-1235"), message_id_for("order-1234", "sqs")}
    assert len(ids) == 3


@pytest.mark.parametrize("key", ["ada@example.com", "order-1234", "user:42:reset"])
def test_message_id_never_contains_the_key(key):
    message_id = message_id_for(key)
    assert key.lower() not in message_id.lower()
    assert "@" not in message_id


def test_message_id_is_url_and_key_safe():
    message_id = message_id_for("anything at all / with ? odd & chars")
    assert message_id.isascii() and message_id.isalnum() and message_id == message_id.lower()


@pytest.mark.parametrize("raw, expected", [
    ('{"id": "order-1", "template": "Bad!"}', "order-1"),
    ('{"id": 5}', None),
    ('{"id": ""}', None),
    ('{"id": "' + "x" * 257 + '"}', None),
    ('["order-1"]', None),
    ("{not json", None),
    ('{"to": "ada@example.com"}', None),
])
def test_identifier_of_finds_the_id_of_a_rejected_body(raw, expected):
    assert identifier_of(raw) == expected


# --- the published schema ----------------------------------------------------------------------------------------

def test_published_schema_matches_the_model():
    """schema/send-message.schema.json is what applications code against: it must be what the parser enforces."""
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema(), (
        "schema/send-message.schema.json is out of date: regenerate it from postline.contract.json_schema()"
    )


def test_schema_requires_template_and_to_and_names_its_dialect():
    schema = json_schema()
    assert schema["required"] == ["template", "to"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False


jsonschema_missing = importlib.util.find_spec("jsonschema") is None


def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.skipif(jsonschema_missing, reason="jsonschema is not installed")
@pytest.mark.parametrize("document", [
    {"template": "welcome", "to": "ada@example.com"},
    {"template": "welcome@3", "to": "ada@example.com", "data": {"a": [1, {"b": None}]}, "id": "k-1",
     "campaign": "c", "tags": {"plan": "pro"}, "reply_to": "r@example.com", "locale": "pt-BR"},
])
def test_schema_accepts_what_the_parser_accepts(document):
    assert list(_validator().iter_errors(document)) == []
    parse_send_message(json.dumps(document), LIMIT)


@pytest.mark.skipif(jsonschema_missing, reason="jsonschema is not installed")
@pytest.mark.parametrize("document", [
    {"to": "ada@example.com"},
    {"template": "Welcome!", "to": "ada@example.com"},
    {"template": "welcome", "to": "ada@example.com", "unknown": 1},
    {"template": "welcome", "to": "ada@example.com", "data": []},
    {"template": "welcome", "to": "ada@example.com", "id": "x" * 257},
    {"template": "welcome", "to": "ada@example.com", "tags": {f"t{i}": "v" for i in range(11)}},
    {"template": "welcome", "to": "ada@example.com", "tags": {"plan": 1}},
    {"template": "welcome", "to": "ada@example.com", "locale": "english please"},
])
def test_schema_rejects_what_the_parser_rejects(document):
    assert list(_validator().iter_errors(document)) != []
    with pytest.raises(Rejected):
        parse_send_message(json.dumps(document), LIMIT)


@pytest.mark.skipif(jsonschema_missing, reason="jsonschema is not installed")
def test_schema_rejects_tag_names_the_parser_rejects():
    document = {"template": "welcome", "to": "ada@example.com", "tags": {"bad name": "v"}}
    with pytest.raises(Rejected):
        parse_send_message(json.dumps(document), LIMIT)
    assert list(_validator().iter_errors(document)) != []


# Values for each field, good and bad, combined below into messages that both the published schema (read by the
# jsonschema library) and the parser judge: they must agree on every one. Addresses are left out of the variations:
# the schema can only say they are strings of at most 320 characters, the parser also checks them as addresses.
# No trailing line breaks either: jsonschema matches patterns with Python's re, whose '$' accepts one (JSON Schema's
# does not; test_a_trailing_line_break_does_not_slip_past_a_pattern).
VARIATIONS = {
    "template": ["welcome", "welcome@3", "a", "a" * 100, "a" * 101, "Welcome", "welcome@0", "welcome@1234567890",
                 "we lcome", "", 5, None],
    "data": [{}, {"a": [1, {"b": None}]}, [], "x", None, 1.5],
    "id": ["k", "x" * 256, "x" * 257, "", "has space", "naïve", "~!", 12, None, True],
    "campaign": ["spring-2026", "", "x" * 257, ["c"]],
    "tags": [{}, {"plan": "pro"}, {f"t{i}": "v" for i in range(10)}, {f"t{i}": "v" for i in range(11)},
             {"plan": ""}, {"plan": "a.b@c"}, {"plan": "a b"}, {"": "v"}, {"n" * 64: "v"}, {"n" * 65: "v"},
             {"plan": 1}, {"plan": None}, [], None],
    "locale": ["en", "en-GB", "pt_BR", "zh-Hant-TW", "e", "english please", "en-", 44, None],
    "reply_to": ["r@example.com", 1, None],
    "extra": [1],
}


def _agreement_corpus():
    base = {"template": "welcome", "to": "ada@example.com"}
    yield base
    yield {"to": "ada@example.com"}
    yield {"template": "welcome"}
    for name, values in VARIATIONS.items():
        for value in values:
            yield {**base, name: value}


@pytest.mark.skipif(jsonschema_missing, reason="jsonschema is not installed")
def test_the_parser_enforces_exactly_the_published_schema():
    validator = _validator()
    disagreements = []
    for document in _agreement_corpus():
        schema_accepts = not list(validator.iter_errors(document))
        try:
            validate_send_message(document)
            parser_accepts = True
        except Rejected:
            parser_accepts = False
        if schema_accepts != parser_accepts:
            disagreements.append((document, schema_accepts, parser_accepts))
    assert disagreements == []


@pytest.mark.parametrize("schema", [
    {"type": "string", "format": "email"},
    {"type": "integer"},
    {"type": "string", "pattern": "welcome"},  # unanchored
    {"type": "object", "minProperties": 1},
    {"anyOf": [{"type": "string"}, {"type": "object"}]},
])
def test_a_schema_keyword_the_parser_does_not_enforce_fails_at_import(schema):
    with pytest.raises(TypeError):
        contract._compile(schema, "field")


# --- text, numbers and nesting no email, queue or table could carry ------------------------------------------------

@pytest.mark.parametrize("raw, where", [
    ('{"template": "welcome", "to": "ada@example.com", "data": {"name": "Ada \\ud83d"}}', "data.name"),
    ('{"template": "welcome", "to": "ada@example.com", "data": {"items": [{"x": "\\udc00"}]}}', "data.items[0].x"),
    ('{"template": "welcome", "to": "ada@example.com", "data": {"\\ud83dkey": "v"}}', "data.\\ud83dkey"),
    ('{"template": "welcome", "to": "ada@example.com", "id": "order-\\ud83d"}', "id"),
])
def test_a_lone_utf16_surrogate_is_refused_with_where_it_is(raw, where):
    # JavaScript's JSON.stringify writes such an escape for a string cut inside an emoji.
    reason = rejection(raw)
    assert reason.startswith(f"{where}:") and "surrogate" in reason
    reason.encode("utf-8")  # the reason itself can be stored and queued


def test_a_whole_surrogate_pair_is_an_emoji_and_accepted():
    message = parse_send_message('{"template": "welcome", "to": "ada@example.com", "data": {"n": "\\ud83d\\ude00"}}',
                                 LIMIT)
    assert message.data == {"n": "\U0001f600"}


def test_a_raw_lone_surrogate_in_the_body_is_refused():
    assert "not valid Unicode" in rejection('{"template": "welcome", "to": "ada@example.com", "data": {"n": "\ud83d"}}')


@pytest.mark.parametrize("number, problem", [
    ("1e400", "beyond a double's range"), ("-1e400", "beyond a double's range"), ("NaN", "not a JSON number"),
    ("Infinity", "not a JSON number"), ("1" * 5000, "an integer of 5000 digits"),
])
def test_numbers_that_cannot_be_used_are_refused(number, problem):
    reason = rejection('{"template": "welcome", "to": "ada@example.com", "data": {"n": %s}}' % number)
    assert reason.startswith("body holds a number postline cannot use") and problem in reason


def test_large_but_usable_numbers_are_accepted():
    message = parse_send_message('{"template": "welcome", "to": "ada@example.com", "data": {"n": 1e300, "i": %s}}'
                                 % ("9" * 300), LIMIT)
    assert message.data["n"] == 1e300 and message.data["i"] == int("9" * 300)


@pytest.mark.parametrize("depth, accepted", [(contract.MAX_DEPTH - 2, True), (contract.MAX_DEPTH - 1, False),
                                             (20_000, False)])
def test_nesting_is_limited_whatever_its_depth(depth, accepted):
    # The document and data are two levels: the lists make up the rest.
    raw = '{"template": "welcome", "to": "ada@example.com", "data": {"x": %s}}' % ("[" * depth + "]" * depth)
    if accepted:
        parse_send_message(raw, LIMIT)
    else:
        assert "nested" in rejection(raw, max_bytes=100_000)


@pytest.mark.parametrize("name", ["postline_message_id", "postline_stream", "postline_retry", "postline_x"])
def test_tag_names_postline_uses_itself_are_refused(name):
    reason = rejection(body(tags={name: "v"}))
    assert reason.startswith(f"tags.{name}:") and "reserved" in reason


def test_tag_names_merely_like_postline_s_are_accepted():
    assert parse_send_message(body(tags={"postline": "v", "my_postline_x": "v"}), LIMIT).tags == {
        "postline": "v", "my_postline_x": "v"}


def test_identifier_of_ignores_an_id_that_could_not_name_a_record():
    assert identifier_of('{"id": "\\ud83d"}') is None
    assert identifier_of('{"id": "two words"}') is None
    assert identifier_of('{"id": "order-1"}') == "order-1"
