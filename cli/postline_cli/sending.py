"""What ``postline send`` checks before it queues a message: everything the CLI can know about whether postline
will send it (the contract, the template and its version, and that the template renders with the data), so a
message the render function would reject is refused at once, with the same reason, instead of printed `queued`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from postline.contract import SendMessage, validate_send_message
from postline.models import ACTIVE_POINTER_VERSION, Template
from postline.templates import CompiledTemplate, TemplateProblem, TemplateStore

# Stands in for the unsubscribe link the render function supplies to marketing templates.
_CHECK_UNSUBSCRIBE_URL = "https://example.invalid/u/check"
_NAMES_LISTED = 10  # when a name matches nothing: how many published names the refusal lists


class NotSendable(ValueError):
    """A message the render function would reject, with its reason."""


def parse_tags(pairs: Iterable[str]) -> dict[str, str]:
    """``--tag NAME=VALUE`` options as the message's ``tags`` (the contract checks names and values)."""
    tags = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise NotSendable(f"--tag {pair!r} must be NAME=VALUE")
        tags[name] = value
    return tags


def check_sendable(document: dict[str, Any], store: TemplateStore) -> tuple[SendMessage, CompiledTemplate]:
    """The message as the contract accepts it and the template it will be rendered with; ``Rejected`` (the
    contract) or ``NotSendable`` (the template, or the data it needs) otherwise."""
    message = validate_send_message(document)
    ref = (message.template_name, message.template_version)
    template = store.resolve([ref])[ref]
    if isinstance(template, TemplateProblem):
        raise NotSendable(f"{template}{_what_is_published(*ref)}")
    provided = {"unsubscribe_url": _CHECK_UNSUBSCRIBE_URL} if template.stream == "marketing" else {}
    try:
        template.render(message.data, provided, message.locale)
    except TemplateProblem as problem:
        raise NotSendable(str(problem)) from None
    return message, template


def _what_is_published(name: str, version: int | None) -> str:
    """What the refusal of an unknown template adds: the latest version of a name that exists, else the closest
    published name, else the published names."""
    pointers = {p.name: p for p in Template.scan(Template.version == ACTIVE_POINTER_VERSION)}
    if name in pointers:
        pointer = pointers[name]
        latest = int(pointer.latest_version or pointer.active_version or 0)
        return f" (the latest is {name}@{latest})" if version is not None and latest else ""
    if not pointers:
        return ": no template is published yet (`postline templates push DIR` publishes one)"
    close = difflib.get_close_matches(name, pointers, n=1)
    if close:
        return f": did you mean {close[0]!r}?"
    names = sorted(pointers)
    listed = ", ".join(names[:_NAMES_LISTED]) + (
        f" and {len(names) - _NAMES_LISTED} more" if len(names) > _NAMES_LISTED else ""
    )
    return f"; published: {listed}"
