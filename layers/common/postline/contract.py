"""The send message: the JSON body an application puts on an inbound queue.

This model is the public contract (published as ``schema/send-message.schema.json``); every rejection carries a
reason a person can act on.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Annotated, Any

import email_validator  # noqa: F401  (every message's address is checked: load it with the contract, at cold start)
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from .addresses import InvalidAddress, normalise_address

SCHEMA_ID = "urn:postline:send-message:1"
MAX_TAGS = 10
TEMPLATE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}(?:@[1-9][0-9]{0,8})?$"  # also valid as an ECMA-262 regex
TEMPLATE_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]{0,99})(?:@(?P<version>[1-9][0-9]{0,8}))?$")
TAG_NAME = r"^[A-Za-z0-9_-]{1,64}$"
# A tag value. SES accepts only [A-Za-z0-9_-] in its message tags; '.' and '@', accepted here since the first
# version of the contract, read '_' in the tags postline puts on the SES send (ses._tag).
TAG_VALUE = r"^[A-Za-z0-9_.@-]{1,256}$"
LOCALE = r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$"

Identifier = Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")]


class Rejected(ValueError):
    """A message postline will not send, with the reason recorded against it and kept in the DLQ."""


class SendMessage(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "$id": SCHEMA_ID,
            "title": "postline send message",
            "description": "The JSON body an application puts on a postline inbound queue.",
        },
    )

    template: StrictStr = Field(
        description="Template name, optionally pinned to a version: 'welcome' or 'welcome@3'.",
        pattern=TEMPLATE_PATTERN,
    )
    to: StrictStr = Field(description="One recipient address, e.g. ada@example.com.", max_length=320)
    data: dict[str, Any] = Field(default_factory=dict, description="Values the template uses.")
    id: Identifier | None = Field(
        default=None, description="Idempotency key: a message with the same id is sent at most once."
    )
    campaign: Identifier | None = Field(default=None, description="Campaign this message belongs to.")
    tags: dict[Annotated[str, Field(pattern=TAG_NAME)], Annotated[StrictStr, Field(pattern=TAG_VALUE)]] | None = Field(
        default=None, max_length=MAX_TAGS, description="Up to 10 tags, carried to events and SES."
    )
    reply_to: StrictStr | None = Field(default=None, max_length=320, description="Reply-To address.")
    locale: StrictStr | None = Field(default=None, pattern=LOCALE, description="BCP 47 locale, e.g. en-GB.")

    @field_validator("to", "reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalise_address(value)
        except InvalidAddress as error:
            raise ValueError(f"invalid address: {error}") from None

    @property
    def template_name(self) -> str:
        return TEMPLATE_REF.match(self.template)["name"]

    @property
    def template_version(self) -> int | None:
        version = TEMPLATE_REF.match(self.template)["version"]
        return int(version) if version else None


def describe_errors(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "message"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "string_pattern_mismatch" and item["loc"][:1] == ("template",):
            message = "must be a template name like 'welcome' or 'welcome@3'"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def parse_send_message(body: str | bytes, max_bytes: int) -> SendMessage:
    """Parse and validate one SQS body, raising ``Rejected`` with a readable reason."""
    size = len(body.encode() if isinstance(body, str) else body)
    if size > max_bytes:
        raise Rejected(f"payload too large: {size} bytes, the limit is {max_bytes}")
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Rejected(f"body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise Rejected(f"body must be a JSON object, got {type(document).__name__}")
    try:
        return SendMessage.model_validate(document)
    except ValidationError as error:
        raise Rejected(describe_errors(error)) from None


def message_id_for(key: str, namespace: str = "id") -> str:
    """postline's message id: derived from the caller's idempotency key (or the SQS message id when there is
    none), so every delivery of the same message maps to the same record, and the key itself (which may hold
    personal data) never appears in URLs or logs."""
    digest = hashlib.sha256(f"postline:{namespace}:{key}".encode()).digest()
    return "m" + base64.b32encode(digest[:15]).decode().lower()


def identifier_of(body: str) -> str | None:
    """Best effort: the ``id`` of a body that failed validation, so its rejection lands on the right record."""
    try:
        document = json.loads(body)
    except (ValueError, TypeError):
        return None
    value = document.get("id") if isinstance(document, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


def json_schema() -> dict[str, Any]:
    schema = SendMessage.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["required"] = ["template", "to"]
    # pydantic describes the tag names as patternProperties; say also that no other names are allowed.
    tags = next(option for option in schema["properties"]["tags"]["anyOf"] if option.get("type") == "object")
    tags["propertyNames"] = {"pattern": TAG_NAME}
    tags["additionalProperties"] = False
    return schema
