"""Templates: sandboxed Jinja2, compiled once per container per version, and the store they are read from.

A template version is immutable; the ``active`` pointer (version 0) names the version a message gets unless it
pins one (``welcome@3``). Pointers are cached for a few seconds so a push takes effect quickly, compiled versions
for the life of the container.
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from . import locales
from .dynamo import batch_get
from .models import ACTIVE_POINTER_VERSION, Template
from .settings import STREAMS

# Variables postline supplies itself when rendering.
PROVIDED_VARIABLES = frozenset({"unsubscribe_url"})


class _TestableUndefined(StrictUndefined):
    """Strict everywhere (printing, iterating, reading into it) except as a condition: ``{% if note %}`` on a value
    the data leaves out is false, as authors expect, instead of an error."""

    __slots__ = ()

    def __bool__(self) -> bool:  # type: ignore[override]  # false, where StrictUndefined's raises
        return False


# A pushed template can loop or multiply its way to hours or gigabytes ({{ 'x' * 10**9 }}, nested range loops, a
# macro calling itself twice): one part's render is bounded in time and size, so such a template is refused when
# published and a message it meets is rejected, instead of a render stage stuck until Lambda's timeout.
MAX_RENDER_SECONDS = 2.0
MAX_RENDERED_CHARACTERS = 4_000_000  # per part; SES takes at most 40 MB for a whole message
_render_deadline: ContextVar[float] = ContextVar("render_deadline", default=float("inf"))


class RenderLimit(Exception):
    """A render past ``MAX_RENDER_SECONDS`` or ``MAX_RENDERED_CHARACTERS``."""


def _within_deadline() -> None:
    if time.monotonic() > _render_deadline.get():
        raise RenderLimit(f"rendering took over {MAX_RENDER_SECONDS:g} s (a loop or recursion without bound?)")


def _within_size(size: int) -> None:
    if size > MAX_RENDERED_CHARACTERS:
        raise RenderLimit(f"rendering makes over {MAX_RENDERED_CHARACTERS:,} characters")


class _BoundedRange:
    """The sandbox's range, checking the deadline at every step (nested loops multiply)."""

    def __init__(self, *args: int) -> None:
        self._range = _SAFE_RANGE(*args)

    def __len__(self) -> int:
        return len(self._range)

    def __iter__(self):
        for number in self._range:
            _within_deadline()
            yield number


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox, with the render's deadline checked at every call, attribute and item read, and repetition
    (``*``) refused past the size bound before it allocates."""

    intercepted_binops = frozenset({"*"})

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - the sandbox's own signature
        _within_deadline()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj, attribute):
        _within_deadline()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _within_deadline()
        return super().getitem(obj, argument)

    def call_binop(self, context, operator_name, left, right):
        if operator_name == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int):
                    _within_size(len(sequence) * times)
            return operator.mul(left, right)
        return super().call_binop(context, operator_name, left, right)


class _BoundedList(list):
    """A list from the message's data, checking the deadline at every step of a loop over it."""

    def __iter__(self):
        for item in super().__iter__():
            _within_deadline()
            yield item


class _BoundedDict(dict):
    """A mapping from the message's data, checking the deadline at every step of a loop over its keys."""

    def __iter__(self):
        for key in super().__iter__():
            _within_deadline()
            yield key


def _bounded_data(value: Any) -> Any:
    """The message's data with its lists and mappings looping within the render's deadline."""
    if isinstance(value, dict):
        return _BoundedDict((key, _bounded_data(item)) for key, item in value.items())
    if isinstance(value, list):
        return _BoundedList(_bounded_data(item) for item in value)
    return value


_SAFE_RANGE = cast(Callable[..., range], SandboxedEnvironment().globals["range"])
_HTML_ENV = _BoundedEnvironment(autoescape=True, undefined=_TestableUndefined, trim_blocks=True, lstrip_blocks=True)
_TEXT_ENV = _BoundedEnvironment(autoescape=False, undefined=_TestableUndefined, trim_blocks=True, lstrip_blocks=True)
for _environment in (_HTML_ENV, _TEXT_ENV):
    _environment.filters.update(locales.FILTERS)
    _environment.globals["range"] = _BoundedRange
# Conditions that left nothing behind leave their line breaks: a text part never shows two blank lines in a row.
_BLANK_RUNS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_TRAILING_BLANK = re.compile(r"\n(?:[ \t]*\n)+$")


class TemplateProblem(ValueError):
    """A template that cannot be published or a message that cannot be rendered with it. ``part`` (subject, html
    or text) and ``line`` say where, when known."""

    def __init__(
        self,
        message: str,
        part: str | None = None,
        line: int | None = None,
        detail: str = "",
        locale: str | None = None,
    ) -> None:
        super().__init__(message)
        self.part, self.line, self.detail, self.locale = part, line, detail or message, locale


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    locale: str = locales.DEFAULT_LOCALE  # the variant's (its tag as published)


def referenced_variables(source: str, html: bool = True, part: str | None = None) -> set[str]:
    """Top-level variables the template source uses in its markup (comments do not count)."""
    try:
        return meta.find_undeclared_variables((_HTML_ENV if html else _TEXT_ENV).parse(source))
    except TemplateError as error:
        # The bare message: str() of an error Jinja has already reported once adds a traceback line to it.
        message = getattr(error, "message", None) or str(error)
        raise TemplateProblem(
            f"template syntax error: {message}", part, getattr(error, "lineno", None), message
        ) from None


def required_variables(
    subject: str, html: str, text: str, optional: Iterable[str] = (), variants: Iterable[dict[str, str]] = ()
) -> list[str]:
    """Top-level data variables the template needs that are neither optional nor supplied by postline: in any of
    its locale variants, so what a message must carry never depends on its locale."""
    names: set[str] = set()
    for part in ({"subject": subject, "html": html, "text": text}, *variants):
        names |= (
            referenced_variables(part["subject"], html=False)
            | referenced_variables(part["html"])
            | referenced_variables(part["text"], False)
        )
    return sorted(names - PROVIDED_VARIABLES - set(optional))


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")  # the rest of C0 is whitespace to str.split()


def _single_line(subject: str) -> str:
    """One line: every whitespace run (line breaks included) one space, control characters (a NUL) gone, as
    RFC 5322 allows none in a header."""
    return " ".join(_CONTROL_CHARACTERS.sub("", subject).split())


def _compile(environment: SandboxedEnvironment, source: str, part: str):
    """``environment.from_string`` with the part's name as the file name, so an error knows its line."""
    code = environment.compile(source, filename=part)
    return environment.template_class.from_code(environment, code, environment.make_globals(None), None)


def _bounded_render(template, context: dict[str, Any]) -> str:
    """``template.render(context)`` within ``MAX_RENDER_SECONDS`` and ``MAX_RENDERED_CHARACTERS``."""
    token = _render_deadline.set(time.monotonic() + MAX_RENDER_SECONDS)
    try:
        chunks, size = [], 0
        for chunk in template.generate(context):
            size += len(chunk)
            _within_size(size)
            _within_deadline()
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _render_deadline.reset(token)


def error_line(error: BaseException, part: str) -> int | None:
    """The template line an error was raised at (Jinja rewrites the traceback with the template's lines)."""
    line, trace = None, error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == part:
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


@dataclass(frozen=True)
class _Variant:
    """One locale's compiled subject, HTML and text."""

    locale: str
    subject: Any = field(repr=False)
    html: Any = field(repr=False)
    text: Any = field(repr=False)

    @classmethod
    def compile(cls, locale: str, subject: str, html: str, text: str) -> _Variant:
        try:
            return cls(
                locale,
                _compile(_TEXT_ENV, subject, "subject"),
                _compile(_HTML_ENV, html, "html"),
                _compile(_TEXT_ENV, text, "text"),
            )
        except TemplateError as error:
            error.locale = locale  # type: ignore[attr-defined]  # for the problem compile() raises
            raise


@dataclass
class CompiledTemplate:
    name: str
    version: int
    stream: str
    required: tuple[str, ...]
    from_address: str | None
    locale: str  # the default variant's
    _variants: dict[str, _Variant] = field(repr=False)  # by normalised tag, the default's included

    @classmethod
    def compile(cls, item: Template) -> CompiledTemplate:
        if item.stream not in STREAMS:
            raise TemplateProblem(f"template {item.name}@{item.version} has an unknown stream {item.stream!r}")
        default = item.locale or locales.DEFAULT_LOCALE
        try:
            variants = {locales.normalise(default): _Variant.compile(default, item.subject, item.html, item.text)}
            for tag, parts in (item.locales or {}).items():
                variants[locales.normalise(tag)] = _Variant.compile(tag, parts["subject"], parts["html"], parts["text"])
        except TemplateError as error:
            raise TemplateProblem(
                f"template {item.name}@{item.version} does not compile: {error}",
                getattr(error, "filename", None),
                getattr(error, "lineno", None),
                locale=getattr(error, "locale", None),
            ) from None
        required = tuple(cast(list[str], item.required) or ())  # a ListAttribute: strings, once read
        return cls(
            name=item.name,
            version=int(item.version),
            stream=item.stream,
            required=required,
            from_address=item.from_address,
            locale=default,
            _variants=variants,
        )

    @property
    def locales(self) -> list[str]:
        """Every variant's tag, the default's first."""
        return [self.locale] + sorted(v.locale for k, v in self._variants.items() if v.locale != self.locale)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def missing(self, data: dict[str, Any]) -> list[str]:
        return [name for name in self.required if name not in data]

    def render(self, data: dict[str, Any], provided: dict[str, Any], locale: str | None = None) -> Rendered:
        """The variant ``locale`` (a message's) selects, its values formatted in that locale (``postline.locales``)."""
        missing = self.missing(data)
        if missing:
            raise TemplateProblem(f"missing data the template {self.ref} needs: {', '.join(missing)}")
        chosen, formatting = locales.choose(locale, self.locale, self._variants)
        variant = self._variants[chosen]
        context = {**_bounded_data(data), **provided, locales.FORMAT_LOCALE_KEY: formatting}
        part = "subject"
        try:
            subject = _single_line(_bounded_render(variant.subject, context))
            part = "html"
            html = _bounded_render(variant.html, context)
            part = "text"
            text = _bounded_render(variant.text, context)
            text = _TRAILING_BLANK.sub("\n", _BLANK_RUNS.sub("\n\n", text).lstrip("\n"))
        except Exception as error:  # noqa: BLE001 - undefined values, sandbox violations, wrong types in filters:
            # whatever this message's data makes the template do, it rejects this message and no other.
            line = error_line(error, part)
            other = None if variant.locale == self.locale else variant.locale  # a locale's variant, named
            named = f"{other} {part}" if other else part
            where = f" ({named} line {line})" if line and part != "subject" else f" ({named})"
            raise TemplateProblem(
                f"cannot render {self.ref} with this data: {error}{where}", part, line, str(error), locale=other
            ) from None
        return Rendered(subject=subject, html=html, text=text, locale=variant.locale)


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
            name
            for name, version in refs
            if version is None and (name not in self._pointers or now - self._pointers[name][1] > self._pointer_ttl)
        }
        for item in self._batch_get({(name, ACTIVE_POINTER_VERSION) for name in stale_pointers}):
            if item.active_version:
                self._pointers[item.name] = (int(item.active_version), now)
        for name in stale_pointers - {n for n, (_, at) in self._pointers.items() if at == now}:
            self._pointers.pop(name, None)

        wanted = {ref: self._version_of(ref) for ref in refs}
        uncompiled = {
            (ref[0], version) for ref, version in wanted.items() if version and (ref[0], version) not in self._compiled
        }
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
