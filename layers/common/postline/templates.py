"""Templates: sandboxed Jinja2, compiled once per container per version, and the store they are read from.

A template version is immutable; the ``active`` pointer (version 0) names the version a message gets unless it
pins one (``welcome@3``). Pointers are cached for a few seconds so a push takes effect quickly, compiled versions
for the life of the container.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from .dynamo import batch_get
from .models import ACTIVE_POINTER_VERSION, Template
from .settings import STREAMS

# Variables postline supplies itself when rendering.
PROVIDED_VARIABLES = frozenset({"unsubscribe_url"})

_HTML_ENV = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_TEXT_ENV = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


class TemplateProblem(ValueError):
    """A template that cannot be published or a message that cannot be rendered with it."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def referenced_variables(source: str, html: bool = True) -> set[str]:
    """Top-level variables the template source uses in its markup (comments do not count)."""
    try:
        return meta.find_undeclared_variables((_HTML_ENV if html else _TEXT_ENV).parse(source))
    except TemplateError as error:
        raise TemplateProblem(f"template syntax error: {error}") from None


def required_variables(subject: str, html: str, text: str, optional: Iterable[str] = ()) -> list[str]:
    """Top-level data variables the template needs that are neither optional nor supplied by postline."""
    names = referenced_variables(subject, html=False) | referenced_variables(html) | referenced_variables(text, False)
    return sorted(names - PROVIDED_VARIABLES - set(optional))


def _single_line(subject: str) -> str:
    return " ".join(subject.split())


@dataclass
class CompiledTemplate:
    name: str
    version: int
    stream: str
    required: tuple[str, ...]
    from_address: str | None
    _subject: Any = field(repr=False)
    _html: Any = field(repr=False)
    _text: Any = field(repr=False)

    @classmethod
    def compile(cls, item: Template) -> CompiledTemplate:
        if item.stream not in STREAMS:
            raise TemplateProblem(f"template {item.name}@{item.version} has an unknown stream {item.stream!r}")
        try:
            return cls(
                name=item.name,
                version=int(item.version),
                stream=item.stream,
                required=tuple(item.required or ()),
                from_address=item.from_address,
                _subject=_TEXT_ENV.from_string(item.subject),
                _html=_HTML_ENV.from_string(item.html),
                _text=_TEXT_ENV.from_string(item.text),
            )
        except TemplateError as error:
            raise TemplateProblem(f"template {item.name}@{item.version} does not compile: {error}") from None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def missing(self, data: dict[str, Any]) -> list[str]:
        return [name for name in self.required if name not in data]

    def render(self, data: dict[str, Any], provided: dict[str, Any]) -> Rendered:
        missing = self.missing(data)
        if missing:
            raise TemplateProblem(f"missing data the template {self.ref} needs: {', '.join(missing)}")
        context = {**data, **provided}
        try:
            return Rendered(
                subject=_single_line(self._subject.render(context)),
                html=self._html.render(context),
                text=self._text.render(context),
            )
        except Exception as error:  # noqa: BLE001 - undefined values, sandbox violations, wrong types in filters:
            # whatever this message's data makes the template do, it rejects this message and no other.
            raise TemplateProblem(f"cannot render {self.ref} with this data: {error}") from None


TemplateRef = tuple[str, "int | None"]


class TemplateStore:
    """Reads template versions and active pointers with batched gets, caching what it has compiled."""

    def __init__(self, table_name: str, dynamodb, pointer_ttl_seconds: float, clock: Callable[[], float] = time.time):
        self._table = table_name
        self._dynamodb = dynamodb
        self._pointer_ttl = pointer_ttl_seconds
        self._clock = clock
        self._pointers: dict[str, tuple[int, float]] = {}
        self._compiled: dict[tuple[str, int], CompiledTemplate] = {}

    def resolve(self, refs: Iterable[TemplateRef]) -> dict[TemplateRef, CompiledTemplate | TemplateProblem]:
        """Every requested ref mapped to its compiled template, or to the problem that stops its use."""
        refs = set(refs)
        now = self._clock()
        stale_pointers = {
            name for name, version in refs
            if version is None and (name not in self._pointers or now - self._pointers[name][1] > self._pointer_ttl)
        }
        for item in self._batch_get({(name, ACTIVE_POINTER_VERSION) for name in stale_pointers}):
            if item.active_version:
                self._pointers[item.name] = (int(item.active_version), now)
        for name in stale_pointers - {n for n, (_, at) in self._pointers.items() if at == now}:
            self._pointers.pop(name, None)

        wanted = {ref: self._version_of(ref) for ref in refs}
        uncompiled = {(ref[0], version) for ref, version in wanted.items() if version and (ref[0], version) not in self._compiled}
        for item in self._batch_get(uncompiled):
            key = (item.name, int(item.version))
            try:
                self._compiled[key] = CompiledTemplate.compile(item)
            except TemplateProblem:
                pass  # reported per message below as "does not compile"

        result: dict[TemplateRef, CompiledTemplate | TemplateProblem] = {}
        for ref, version in wanted.items():
            name, pinned = ref
            if version is None:
                result[ref] = TemplateProblem(f"unknown template {name!r} (no active version published)")
            elif (name, version) in self._compiled:
                result[ref] = self._compiled[(name, version)]
            else:
                result[ref] = TemplateProblem(
                    f"unknown template version {name}@{version}" if pinned else f"template {name}@{version} is unusable"
                )
        return result

    def _version_of(self, ref: TemplateRef) -> int | None:
        name, pinned = ref
        if pinned is not None:
            return pinned
        pointer = self._pointers.get(name)
        return pointer[0] if pointer else None

    def _batch_get(self, keys: set[tuple[str, int]]) -> list[Template]:
        if not keys:
            return []
        wanted = [{"name": {"S": name}, "version": {"N": str(version)}} for name, version in keys]
        return [Template.from_raw_data(raw) for raw in batch_get(self._dynamodb, {self._table: wanted})[self._table]]
