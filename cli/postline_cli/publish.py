"""Publishing templates: read a template folder, do the expensive work once (CSS inlining, a text part made from
the HTML when there is none), check it, and store it as a new immutable version with the active pointer on it.

A template folder holds ``template.json`` (stream, subject, description, optional variables, optional from, the
default ``locale``), ``html.j2``, optionally ``text.j2``, ``example.json`` (example data for previews and tools),
and optionally ``locales/<tag>/`` folders, each a whole localised variant: ``subject.j2``, ``html.j2`` and
optionally ``text.j2``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postline import locales
from postline.models import ACTIVE_POINTER_VERSION, Template
from postline.settings import STREAMS
from postline.templates import CompiledTemplate, TemplateProblem, referenced_variables, required_variables

from .template_inline import inline_css
from .template_text import html_to_text

_DICT_METHOD = re.compile(r"\.(items|keys|values|get|update|pop|copy)\b")
PREVIEW_PROVIDED = {"unsubscribe_url": "https://example.com/u/preview"}
# DynamoDB's limit for one item: a template version, its locales included, is one item.
MAX_ITEM_BYTES = 400 * 1024


@dataclass
class LocaleSource:
    """A localised variant, from ``locales/<tag>/``."""

    locale: str  # as shown: de-AT
    subject: str
    html: str
    text: str | None
    folder: str = ""  # as named: de_at


@dataclass
class TemplateSource:
    name: str
    stream: str
    subject: str
    html: str
    text: str | None
    description: str = ""
    optional: list[str] = field(default_factory=list)
    from_address: str | None = None
    example_data: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the folder, for messages that name a file and line
    has_example: bool = True
    locale: str = locales.DEFAULT_LOCALE  # the default variant's: subject, html and text above
    variants: list[LocaleSource] = field(default_factory=list)

    def variant(self, locale: str | None) -> LocaleSource:
        """The parts as written for ``locale`` (None or the default: the template's own)."""
        for variant in self.variants:
            if locale is not None and locales.normalise(variant.locale) == locales.normalise(locale):
                return variant
        return LocaleSource(self.locale, self.subject, self.html, self.text)

    def where(self, part: str | None, line: int | None = None, locale: str | None = None) -> str:
        """``folder/html.j2:42`` (``folder/locales/de/html.j2:42``) for a part of the template and a line in it."""
        folder = str(self.path) if self.path else self.name
        variant = self.variant(locale)
        if variant.locale != self.locale:
            folder, subject_file = f"{folder}/locales/{variant.folder or variant.locale}", "subject.j2"
        else:
            subject_file = "template.json (subject)"
        if part == "subject":
            return f"{folder}/{subject_file}"
        if part == "text" and variant.text is None:
            return f"{folder}/html.j2 (the text part made from it)"
        file = {"html": "html.j2", "text": "text.j2"}.get(part or "")
        if file is None:
            return folder
        return f"{folder}/{file}:{line}" if line else f"{folder}/{file}"


def read_template_file(path: Path) -> str:
    """A template file's text (as ``Path.read_text`` reads it); one that is not UTF-8 is refused, naming its line."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise TemplateProblem(f"{path}: line {line} is not UTF-8 text: save the file as UTF-8") from None
    return path.read_text(encoding="utf-8")  # (its newlines read as everywhere else: \r\n and \r as \n)


def load_template_dir(path: Path) -> TemplateSource:
    meta_path = path / "template.json"
    if not meta_path.exists():
        raise TemplateProblem(f"{path}: no template.json")
    try:
        meta = json.loads(read_template_file(meta_path))
        example = json.loads(read_template_file(path / "example.json")) if (path / "example.json").exists() else {}
    except json.JSONDecodeError as error:
        raise TemplateProblem(f"{path}: invalid JSON: {error}") from None
    if meta.get("stream") not in STREAMS:
        raise TemplateProblem(f"{path.name}: stream must be one of {', '.join(STREAMS)}")
    if not meta.get("subject"):
        raise TemplateProblem(f"{path.name}: template.json needs a subject")
    if not (path / "html.j2").exists():
        raise TemplateProblem(f"{path.name}: no html.j2")
    default = meta.get("locale", locales.DEFAULT_LOCALE)
    if not isinstance(default, str) or locales.babel_locale(default) is None:
        raise TemplateProblem(
            f"{path}/template.json: locale {default!r} is not a locale (a BCP 47 tag such as en or en-GB)"
        )
    text_path = path / "text.j2"
    return TemplateSource(
        name=path.name,
        stream=meta["stream"],
        subject=meta["subject"],
        html=read_template_file(path / "html.j2"),
        text=read_template_file(text_path) if text_path.exists() else None,
        description=meta.get("description", ""),
        optional=list(meta.get("optional", [])),
        from_address=meta.get("from"),
        example_data=example,
        path=path,
        has_example=(path / "example.json").exists(),
        locale=locales.canonical(default),
        variants=load_locales(path, default),
    )


def load_locales(path: Path, default: str) -> list[LocaleSource]:
    """The variants in ``path/locales/``: each folder a whole one (its own subject and HTML; a text part made
    from its HTML when it has no text.j2), never mixed with another locale's parts."""
    folder = path / "locales"
    if not folder.is_dir():
        return []
    found: dict[str, LocaleSource] = {}
    folders: dict[str, str | None] = {locales.normalise(default): None}  # by tag, the folder it was read from
    for entry in sorted(p for p in folder.iterdir() if p.is_dir()):
        where = f"{path}/locales/{entry.name}"
        if locales.babel_locale(entry.name) is None:
            raise TemplateProblem(f"{where}: not a locale; name the folder by a BCP 47 tag such as de or de-AT")
        tag = locales.normalise(entry.name)
        if tag in folders:
            same = (
                "the template's default locale (template.json's locale): its files are the folder's own"
                if folders[tag] is None
                else f"the same locale as locales/{folders[tag]}"
            )
            raise TemplateProblem(f"{where}: {same}")
        folders[tag] = entry.name
        absent = [name for name in ("subject.j2", "html.j2") if not (entry / name).is_file()]
        if absent:
            raise TemplateProblem(
                f"{where}: no {' or '.join(absent)} (a locale has its own subject.j2 and html.j2; text.j2 is optional)"
            )
        text = entry / "text.j2"
        found[tag] = LocaleSource(
            locales.canonical(entry.name),
            read_template_file(entry / "subject.j2").strip(),
            read_template_file(entry / "html.j2"),
            read_template_file(text) if text.is_file() else None,
            entry.name,
        )
    return list(found.values())


def _prepared_parts(source: TemplateSource, variant: LocaleSource) -> dict[str, str]:
    """One variant's parts as stored: checked for syntax, CSS inlined, a text part made when it has none."""
    locale = None if variant.locale == source.locale else variant.locale
    for part, written, is_html in (
        ("subject", variant.subject, False),
        ("html", variant.html, True),
        ("text", variant.text, False),
    ):
        if written is not None:
            try:
                referenced_variables(written, is_html, part)
            except TemplateProblem as problem:
                raise TemplateProblem(f"{source.where(part, problem.line, locale)}: {problem.detail}") from None
    html = inline_css(variant.html)
    # From the inlined HTML, where hidden parts (the preheader) carry display:none and are left out.
    text = variant.text if variant.text is not None else html_to_text(html)
    if source.stream == "marketing" and not shows_link_to(html, "unsubscribe_url"):
        where = source.name if locale is None else source.where("html", None, locale)
        raise TemplateProblem(f"{where}: a marketing template must show a link to {{{{ unsubscribe_url }}}}")
    return {"subject": variant.subject, "html": html, "text": text}


def prepare(source: TemplateSource, author: str) -> Template:
    """The version to store: CSS inlined, text part present, required variables known, and every locale proven
    to render with its own example data. A problem names the file and line: ``folder/html.j2:42: ...``."""
    default = _prepared_parts(source, source.variant(None))
    variants = {variant.locale: _prepared_parts(source, variant) for variant in source.variants}
    required = required_variables(
        default["subject"], default["html"], default["text"], source.optional, variants.values()
    )
    missing = [name for name in required if name not in source.example_data]
    if missing and not source.has_example:
        raise TemplateProblem(
            f"{source.where(None)}: no example.json; it must hold the data the template needs "
            f"({', '.join(missing)}), which publishing renders it with"
        )
    if missing:
        raise TemplateProblem(f"{source.name}: example.json lacks {', '.join(missing)}")
    hashed = [
        source.stream,
        default["subject"],
        default["html"],
        default["text"],
        required,
        source.from_address,
        source.example_data,
    ]
    if variants or source.locale != locales.DEFAULT_LOCALE:  # so a template without locales keeps its hash
        hashed += [source.locale, variants]
    content = json.dumps(hashed, sort_keys=True)
    item = Template(
        source.name,
        1,
        stream=source.stream,
        subject=default["subject"],
        html=default["html"],
        text=default["text"],
        from_address=source.from_address,
        description=source.description,
        required=required,
        example_data=source.example_data,
        author=author,
        created_at=time.time(),
        content_hash=hashlib.sha256(content.encode()).hexdigest(),
        locale=source.locale,
        locales=variants or None,
    )
    size = len(json.dumps(item.serialize(), ensure_ascii=False).encode())
    if size > MAX_ITEM_BYTES:
        raise TemplateProblem(
            f"{source.where(None)}: {size // 1024} KB to store with its {len(variants) + 1} "
            "locale(s), over DynamoDB's 400 KB for one template version; shorten the HTML or "
            "publish some locales as a template of their own"
        )
    compiled = CompiledTemplate.compile(item)
    for locale in compiled.locales:
        try:
            compiled.render(source.example_data, PREVIEW_PROVIDED, locale)
        except TemplateProblem as problem:
            raise TemplateProblem(render_problem(source, problem)) from None
    return item


def shows_link_to(html: str, variable: str) -> bool:
    """Whether a reader sees a link whose address uses ``variable`` (not in a comment, a hidden element or an
    Outlook-only block): the text part made from the HTML shows exactly the links a reader sees."""
    return re.search(r"\{\{-?\s*" + re.escape(variable) + r"\b", html_to_text(inline_css(html))) is not None


def render_problem(source: TemplateSource, problem: TemplateProblem, data_name: str = "example.json") -> str:
    """What a render failure says: the file and line, the error, the line as written, and a hint when the
    error is a known pitfall."""
    variant = source.variant(problem.locale)
    written = {"html": variant.html, "text": variant.text}.get(problem.part or "")
    shown = ""
    if written is not None and problem.line:
        line = written.splitlines()[problem.line - 1].strip()
        shown = f", in: {line[:120]}"
        method = _DICT_METHOD.search(line)
        if method and ("builtin_function_or_method" in problem.detail or "method" in problem.detail):
            shown += (
                f" (.{method.group(1)} is the dict's method, not your key: write "
                f'x["{method.group(1)}"] instead of x.{method.group(1)})'
            )
    where = source.where(problem.part, problem.line, problem.locale)
    return f"{where}: cannot render with {data_name}: {problem.detail}{shown}"


@dataclass
class Published:
    name: str
    version: int
    stream: str
    changed: bool


def publish(item: Template) -> Published:
    """Store ``item`` as the next version and point ``active`` at it; an unchanged template is not stored again."""
    from pynamodb.connection import Connection
    from pynamodb.transactions import TransactWrite

    try:
        pointer = Template.get(item.name, ACTIVE_POINTER_VERSION, consistent_read=True)
    except Template.DoesNotExist:
        pointer = None
    latest = int(pointer.latest_version or 0) if pointer else 0
    if latest:
        current = Template.get(item.name, int(pointer.active_version))
        if current.content_hash == item.content_hash:
            return Published(item.name, int(pointer.active_version), item.stream, changed=False)
    item.version = latest + 1
    if pointer is None:
        pointer = Template(item.name, ACTIVE_POINTER_VERSION)
    region = Template.Meta.region  # type: ignore[attr-defined]  # set by PynamoDB when it makes the model class
    with TransactWrite(connection=Connection(region=region)) as transaction:
        transaction.save(item, condition=Template.name.does_not_exist())
        transaction.update(
            pointer,
            actions=[
                Template.active_version.set(item.version),
                Template.latest_version.set(item.version),
                Template.stream.set(item.stream),
            ],
            condition=(Template.latest_version.does_not_exist() | (Template.latest_version == latest)),
        )
    return Published(item.name, item.version, item.stream, changed=True)


def active_templates() -> list[Template]:
    """The active version of every published template."""
    pointers = [t for t in Template.scan(Template.version == ACTIVE_POINTER_VERSION)]
    versions = Template.batch_get([(p.name, int(p.active_version)) for p in pointers])
    return sorted(versions, key=lambda t: t.name)
