"""The send message: the JSON body an application puts on an inbound queue.

The contract is ``SCHEMA``, a JSON Schema published as ``schema/send-message.schema.json``. ``parse_send_message``
enforces exactly that schema, plus the one rule JSON Schema cannot state (``to`` and ``reply_to`` must be
deliverable addresses, and are normalised), and names every problem at once with a reason a person can act on.

The schema is enforced by the small interpreter below, for the keywords it uses, rather than by a pydantic model:
importing pydantic and building the model was about 130 ms of the render function's cold start, more than all of
its own code (``make bench``). A keyword the interpreter does not know fails at import, so the schema cannot say
more than is enforced.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import email_validator  # noqa: F401  (every message's address is checked: load it with the contract, at cold start)

from .addresses import InvalidAddress, normalise_address

SCHEMA_ID = "urn:postline:send-message:1"
MAX_TAGS = 10
TEMPLATE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}(?:@[1-9][0-9]{0,8})?$"  # also valid as an ECMA-262 regex
TEMPLATE_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]{0,99})(?:@(?P<version>[1-9][0-9]{0,8}))?$")
TAG_NAME = r"^[A-Za-z0-9_-]{1,64}$"
# postline tags every SES send with its own tags (postline_message_id, ...): SES events are matched back to messages
# by them, so an application's tag of the same name could redirect that matching.
RESERVED_TAG_PREFIX = "postline_"
TAG_NAME_NOT_RESERVED = rf"^(?!{RESERVED_TAG_PREFIX})[A-Za-z0-9_-]{{1,64}}$"
# A tag value. SES accepts only [A-Za-z0-9_-] in its message tags; '.' and '@', accepted here since the first
# version of the contract, read '_' in the tags postline puts on the SES send (ses._tag).
TAG_VALUE = r"^[A-Za-z0-9_.@-]{1,256}$"
LOCALE = r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$"
IDENTIFIER_PATTERN = r"^[\x21-\x7e]+$"
IDENTIFIER = {"maxLength": 256, "minLength": 1, "pattern": IDENTIFIER_PATTERN, "type": "string"}


def _optional(schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}], "default": None, "description": description, "title": title}


SCHEMA: dict[str, Any] = {
    "$id": SCHEMA_ID,
    "additionalProperties": False,
    "description": "The JSON body an application puts on a postline inbound queue.",
    "properties": {
        "template": {
            "description": "Template name, optionally pinned to a version: 'welcome' or 'welcome@3'.",
            "pattern": TEMPLATE_PATTERN,
            "title": "Template",
            "type": "string",
        },
        "to": {
            "description": "One recipient address, e.g. ada@example.com.",
            "maxLength": 320,
            "title": "To",
            "type": "string",
        },
        "data": {
            "additionalProperties": True,
            "description": "Values the template uses.",
            "title": "Data",
            "type": "object",
        },
        "id": _optional(IDENTIFIER, "Id", "Idempotency key: a message with the same id is sent at most once."),
        "campaign": _optional(IDENTIFIER, "Campaign", "Campaign this message belongs to."),
        "tags": _optional(
            {
                "maxProperties": MAX_TAGS,
                "patternProperties": {TAG_NAME: {"pattern": TAG_VALUE, "type": "string"}},
                "type": "object",
                "propertyNames": {"pattern": TAG_NAME_NOT_RESERVED},
                "additionalProperties": False,
            },
            "Tags",
            "Up to 10 tags, carried to events and SES.",
        ),
        "reply_to": _optional({"maxLength": 320, "type": "string"}, "Reply To", "Reply-To address."),
        "locale": _optional({"pattern": LOCALE, "type": "string"}, "Locale", "BCP 47 locale, e.g. en-GB."),
    },
    "required": ["template", "to"],
    "title": "postline send message",
    "type": "object",
    "$schema": "https://json-schema.org/draft/2020-12/schema",
}

# What a person reads instead of the bare pattern, where the pattern says little on its own.
_PATTERN_MESSAGES = {"template": "must be a template name like 'welcome' or 'welcome@3'"}
_NAME_MESSAGES = {
    "tags": f"tag names are 1 to 64 of A-Z a-z 0-9 _ - and must not start with "
    f"'{RESERVED_TAG_PREFIX}' (reserved for postline's own tags)"
}
_ADDRESSES = ("to", "reply_to")


class Rejected(ValueError):
    """A message postline will not send, with the reason recorded against it and kept in the DLQ."""


@dataclass(frozen=True, slots=True)
class SendMessage:
    template: str
    to: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    campaign: str | None = None
    tags: dict[str, str] | None = None
    reply_to: str | None = None
    locale: str | None = None

    @property
    def template_name(self) -> str:
        return TEMPLATE_REF.match(self.template)["name"]

    @property
    def template_version(self) -> int | None:
        version = TEMPLATE_REF.match(self.template)["version"]
        return int(version) if version else None

    def as_document(self) -> dict[str, Any]:
        """The message as its JSON body: the fields that are set."""
        return {name: getattr(self, name) for name in SCHEMA["properties"] if getattr(self, name) is not None}


# --- the schema interpreter --------------------------------------------------------------------------------------

Problems = list[tuple[str, str]]
# A check returns the value it accepted (addresses normalised), or _INVALID once it has noted why in problems.
Check = Callable[[Any, str, Problems], Any]
_INVALID = object()
_ANNOTATIONS = frozenset({"$id", "$schema", "title", "description", "default"})


def _characters(n: int) -> str:
    return f"{n} character{'' if n == 1 else 's'}"


def _matcher(pattern: str) -> Callable[[str], bool]:
    # Python's '$' also matches before a final newline; JSON Schema's (ECMA-262) does not. Match the whole string.
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise TypeError(f"contract pattern {pattern!r} must be anchored with ^ and $")
    compiled = re.compile(pattern[1:-1])
    return lambda value: compiled.fullmatch(value) is not None


def _compile(schema: Mapping[str, Any], name: str = "") -> Check:
    """The check for one (sub)schema; a keyword it does not know is a TypeError, at import."""
    keywords = set(schema) - _ANNOTATIONS
    if "anyOf" in keywords:
        branches = schema["anyOf"]
        if keywords != {"anyOf"} or len(branches) != 2 or branches[1] != {"type": "null"}:
            raise TypeError(f"contract {name or 'message'}: anyOf is supported only as [schema, null]")
        inner = _compile(branches[0], name)
        return lambda value, where, problems: None if value is None else inner(value, where, problems)
    kind = schema.get("type")
    if kind == "string":
        return _string_check(schema, name, keywords - {"type"})
    if kind == "object":
        return _object_check(schema, name, keywords - {"type"})
    raise TypeError(f"contract {name or 'message'}: unsupported type {kind!r}")


def _string_check(schema: Mapping[str, Any], name: str, keywords: set[str]) -> Check:
    if unknown := keywords - {"pattern", "minLength", "maxLength"}:
        raise TypeError(f"contract {name}: unsupported keywords {sorted(unknown)}")
    least, most, pattern = schema.get("minLength"), schema.get("maxLength"), schema.get("pattern")
    matches = _matcher(pattern) if pattern else None
    mismatch = _PATTERN_MESSAGES.get(name, f"String should match pattern '{pattern}'")
    is_address = name in _ADDRESSES

    def check(value: Any, where: str, problems: Problems) -> Any:
        if not isinstance(value, str):
            problem = "Input should be a valid string"
        elif least is not None and len(value) < least:
            problem = f"String should have at least {_characters(least)}"
        elif most is not None and len(value) > most:
            problem = f"String should have at most {_characters(most)}"
        elif matches and not matches(value):
            problem = mismatch
        elif not is_address:
            return value
        else:
            try:
                return normalise_address(value)
            except InvalidAddress as error:
                problem = f"invalid address: {error}"
        problems.append((where, problem))
        return _INVALID

    return check


def _object_check(schema: Mapping[str, Any], name: str, keywords: set[str]) -> Check:
    if unknown := keywords - {
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "propertyNames",
        "maxProperties",
    }:
        raise TypeError(f"contract {name or 'message'}: unsupported keywords {sorted(unknown)}")
    if set(schema.get("propertyNames", {})) - {"pattern"}:
        raise TypeError(f"contract {name}: propertyNames is supported only as a pattern")
    others_allowed = schema.get("additionalProperties", True)
    if not isinstance(others_allowed, bool):
        raise TypeError(f"contract {name or 'message'}: additionalProperties must be true or false")
    prefix = f"{name}." if name else ""
    properties = {key: _compile(sub, key) for key, sub in schema.get("properties", {}).items()}
    required = frozenset(schema.get("required", ()))
    patterns = [(_matcher(p), _compile(sub, name)) for p, sub in schema.get("patternProperties", {}).items()]
    name_pattern = schema.get("propertyNames", {}).get("pattern")
    name_matches = _matcher(name_pattern) if name_pattern else None
    name_mismatch = _NAME_MESSAGES.get(name, f"Name should match pattern '{name_pattern}'")
    most = schema.get("maxProperties")

    def check(value: Any, where: str, problems: Problems) -> Any:
        if not isinstance(value, Mapping):
            problems.append((where, "Input should be a valid dictionary"))
            return _INVALID
        found = len(problems)
        if most is not None and len(value) > most:
            problems.append((where, f"Dictionary should have at most {most} items, not {len(value)}"))
        accepted = {}
        for key, check_property in properties.items():
            if key in value:
                accepted[key] = check_property(value[key], prefix + key, problems)
            elif key in required:
                problems.append((prefix + key, "Field required"))
        for key, item in value.items():
            if key in properties:
                continue
            if name_matches and not (isinstance(key, str) and name_matches(key)):
                problems.append((f"{prefix}{key}", name_mismatch))
                continue
            checks = [check_item for matches, check_item in patterns if matches(key)]
            for check_item in checks:
                accepted[key] = check_item(item, f"{prefix}{key}", problems)
            if not checks:
                if others_allowed:
                    accepted[key] = item
                else:
                    problems.append((f"{prefix}{key}", "unknown field"))
        return accepted if len(problems) == found else _INVALID

    return check


_check_message = _compile(SCHEMA)


def validate_send_message(document: Any) -> SendMessage:
    """Check a decoded body against the contract, addresses normalised, or raise ``Rejected`` naming every problem
    (``where: problem; ...``)."""
    problems: Problems = []
    accepted = _check_message(document, "message", problems)
    if accepted is _INVALID:
        raise Rejected("; ".join(f"{where}: {problem}" for where, problem in problems))
    return SendMessage(**accepted)


# Nesting DynamoDB could store (it allows 32 levels), and far from what Python's JSON coders can recurse into.
MAX_DEPTH = 32
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_send_message(body: str | bytes, max_bytes: int) -> SendMessage:
    """Parse and validate one SQS body, raising ``Rejected`` with a readable reason.

    Beyond the schema, the body must decode to text that can be encoded again: JSON may escape half of a UTF-16
    surrogate pair (``\\ud83d``, what JavaScript writes for a string cut inside an emoji), which no email, queue
    or table can carry. Numbers must be finite and nesting at most ``MAX_DEPTH`` deep."""
    try:
        size = len(body.encode() if isinstance(body, str) else body)
    except UnicodeEncodeError:
        raise Rejected("body is not valid Unicode text (it holds a lone UTF-16 surrogate)") from None
    if size > max_bytes:
        raise Rejected(f"payload too large: {size} bytes, the limit is {max_bytes}")
    if not isinstance(body, str):
        body = _text_of(body)
    try:
        document = json.loads(body, parse_float=_finite, parse_int=_integer, parse_constant=_not_json)
    except json.JSONDecodeError as error:
        raise Rejected(f"body is not valid JSON: {error}") from None
    except _NumberRefused as error:
        raise Rejected(f"body holds a number postline cannot use: {error}") from None
    except RecursionError:
        raise Rejected(f"body is nested too deeply (at most {MAX_DEPTH} levels)") from None
    if not isinstance(document, dict):
        raise Rejected(f"body must be a JSON object, got {type(document).__name__}")
    problems = _structure_problems(document, check_text=bool(_ESCAPED_SURROGATE.search(body)))
    if problems:
        raise Rejected("; ".join(problems))
    return validate_send_message(document)


def _text_of(body: bytes) -> str:
    """The text of a body given as bytes, in the encoding ``json.loads`` detects (UTF-8, or UTF-16/32 by their
    zero bytes), decoded strictly: ``json.loads`` decodes with "surrogatepass", which lets a lone surrogate in
    (UTF-8 bytes ED A0 80 and the like) without the escape the check for one looks for."""
    encoding = json.detect_encoding(body)
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as error:
        raise Rejected(
            f"body is not valid JSON: it is not {encoding} text ({error.reason} at byte {error.start})"
        ) from None


class _NumberRefused(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NumberRefused(
            f"{text[:20]}... is beyond a double's range" if len(text) > 20 else f"{text} is beyond a double's range"
        )
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise _NumberRefused(f"an integer of {len(text)} digits") from None


def _not_json(text: str) -> Any:
    raise _NumberRefused(f"{text} is not a JSON number")


def _structure_problems(document: dict[str, Any], check_text: bool) -> list[str]:
    """Where the document nests deeper than ``MAX_DEPTH``, and (with ``check_text``, when the body escapes a
    surrogate) which strings cannot be encoded. Iterative: no recursion limit to meet."""
    problems: list[str] = []
    pending: list[tuple[Any, str, int]] = [(document, "message", 1)]
    while pending and len(problems) < 5:
        value, where, depth = pending.pop()
        if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
            problems.append(f"{_field_of(where)}: nested deeper than {MAX_DEPTH} levels")
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                path = where + "." + _printable(key) if where != "message" else _printable(key)
                if check_text and not _encodable(key):
                    problems.append(f"{path}: the name holds a lone UTF-16 surrogate (not valid Unicode text)")
                pending.append((item, path, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value))
        elif check_text and isinstance(value, str) and not _encodable(value):
            problems.append(
                f"{where}: holds a lone UTF-16 surrogate (not valid Unicode text; was a string cut inside an emoji?)"
            )
    return problems


def _field_of(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """A name as it can be shown in a reason: anything not encodable escaped, and short."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:64]


def message_id_for(key: str, namespace: str = "id") -> str:
    """postline's message id: derived from the caller's idempotency key (or the SQS message id when there is
    none), so every delivery of the same message maps to the same record, and the key itself (which may hold
    personal data) never appears in URLs or logs."""
    digest = hashlib.sha256(f"postline:{namespace}:{key}".encode()).digest()
    return "m" + base64.b32encode(digest[:15]).decode().lower()


_IDENTIFIER_MATCHES = _matcher(IDENTIFIER_PATTERN)


def identifier_of(body: str) -> str | None:
    """Best effort: the ``id`` of a body that failed validation, so its rejection lands on the right record."""
    try:
        document = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return None
    value = document.get("id") if isinstance(document, dict) else None
    # Only an id the contract would accept: anything else could not name a record (nor be encoded to hash it).
    return value if isinstance(value, str) and _IDENTIFIER_MATCHES(value) and len(value) <= 256 else None


def json_schema() -> dict[str, Any]:
    """The contract as published (``schema/send-message.schema.json``): a copy, callers may change it."""
    return copy.deepcopy(SCHEMA)
