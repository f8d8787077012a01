"""Publishing templates: read a template folder, do the expensive work once (CSS inlining, a text part made from
the HTML when there is none), check it, and store it as a new immutable version with the active pointer on it.

A template folder holds ``template.json`` (stream, subject, description, optional variables, optional from),
``html.j2``, optionally ``text.j2``, and ``example.json`` (example data for previews and tools).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postline.models import ACTIVE_POINTER_VERSION, Template
from postline.settings import STREAMS
from postline.templates import CompiledTemplate, TemplateProblem, referenced_variables, required_variables

# Jinja markup, hidden from the HTML parser while CSS is inlined: block tags become comments (which an HTML5
# parser keeps where they are, even between table rows), expressions become plain words (safe in attributes).
_JINJA = re.compile(r"\{%.*?%\}|\{#.*?#\}|\{\{.*?\}\}", re.DOTALL)
_PLACEHOLDER = re.compile(r"<!--postline-jinja-(\d+)-->|postlinejinja(\d+)x")
_INVISIBLE = re.compile("[\u034f\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_BLANK_RUNS = re.compile(r"\n{3,}")
_EMPTY_LINK = re.compile(r"\[\s*\]\([^)]*\)")  # an image-only link has no text worth keeping


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


def load_template_dir(path: Path) -> TemplateSource:
    meta_path = path / "template.json"
    if not meta_path.exists():
        raise TemplateProblem(f"{path}: no template.json")
    try:
        meta = json.loads(meta_path.read_text())
        example = json.loads((path / "example.json").read_text()) if (path / "example.json").exists() else {}
    except json.JSONDecodeError as error:
        raise TemplateProblem(f"{path}: invalid JSON: {error}") from None
    if meta.get("stream") not in STREAMS:
        raise TemplateProblem(f"{path.name}: stream must be one of {', '.join(STREAMS)}")
    if not meta.get("subject"):
        raise TemplateProblem(f"{path.name}: template.json needs a subject")
    if not (path / "html.j2").exists():
        raise TemplateProblem(f"{path.name}: no html.j2")
    text_path = path / "text.j2"
    return TemplateSource(
        name=path.name, stream=meta["stream"], subject=meta["subject"], html=(path / "html.j2").read_text(),
        text=text_path.read_text() if text_path.exists() else None, description=meta.get("description", ""),
        optional=list(meta.get("optional", [])), from_address=meta.get("from"), example_data=example,
    )


def html_to_text(html: str) -> str:
    """A readable text part from the HTML template source (Jinja markup passes through as text)."""
    from inscriptis import get_text
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig

    text = get_text(html, ParserConfig(css=CSS_PROFILES["strict"], display_links=True, display_anchors=False))
    text = _EMPTY_LINK.sub("", _INVISIBLE.sub("", text))
    lines = [line.strip() for line in text.splitlines()]  # layout tables indent; plain text should not
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip() + "\n"


def inline_css(html: str) -> str:
    """The HTML with its <style> rules copied into style attributes, Jinja markup left exactly as written."""
    import css_inline

    saved: list[str] = []

    def stash(match: re.Match) -> str:
        saved.append(match.group(0))
        index = len(saved) - 1
        return f"<!--postline-jinja-{index}-->" if match.group(0)[1] in "%#" else f"postlinejinja{index}x"

    inlined = css_inline.inline(_JINJA.sub(stash, html), keep_style_tags=True, load_remote_stylesheets=False)
    return _PLACEHOLDER.sub(lambda m: saved[int(m.group(1) or m.group(2))], inlined)


def prepare(source: TemplateSource, author: str) -> Template:
    """The version to store: CSS inlined, text part present, required variables known, and proven to render
    with its own example data."""
    html = inline_css(source.html)
    # From the inlined HTML, where hidden parts (the preheader) carry display:none and are left out.
    text = source.text if source.text is not None else html_to_text(html)
    if source.text is None and referenced_variables(text, html=False) - referenced_variables(html):
        # Jinja tags between table rows end up outside the table once the HTML is read as a document, so the
        # derived text part loops over nothing; only a hand-written text part can be right then.
        raise TemplateProblem(f"{source.name}: cannot derive a text part from html.j2 (Jinja tags between table "
                              "rows or cells); add a text.j2")
    required = required_variables(source.subject, html, text, source.optional)
    if source.stream == "marketing" and "unsubscribe_url" not in referenced_variables(html):
        raise TemplateProblem(f"{source.name}: a marketing template must show a link to {{{{ unsubscribe_url }}}}")
    missing = [name for name in required if name not in source.example_data]
    if missing:
        raise TemplateProblem(f"{source.name}: example.json lacks {', '.join(missing)}")
    content = json.dumps([source.stream, source.subject, html, text, required, source.from_address,
                          source.example_data], sort_keys=True)
    item = Template(
        source.name, 1, stream=source.stream, subject=source.subject, html=html, text=text,
        from_address=source.from_address, description=source.description, required=required,
        example_data=source.example_data, author=author, created_at=time.time(),
        content_hash=hashlib.sha256(content.encode()).hexdigest(),
    )
    compiled = CompiledTemplate.compile(item)
    compiled.render(source.example_data, {"unsubscribe_url": "https://example.com/u/preview"})
    return item


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
    with TransactWrite(connection=Connection(region=Template.Meta.region)) as transaction:
        transaction.save(item, condition=Template.name.does_not_exist())
        transaction.update(
            pointer,
            actions=[Template.active_version.set(item.version), Template.latest_version.set(item.version),
                     Template.stream.set(item.stream)],
            condition=(Template.latest_version.does_not_exist() | (Template.latest_version == latest)),
        )
    return Published(item.name, item.version, item.stream, changed=True)


def active_templates() -> list[Template]:
    """The active version of every published template."""
    pointers = [t for t in Template.scan(Template.version == ACTIVE_POINTER_VERSION)]
    versions = Template.batch_get([(p.name, int(p.active_version)) for p in pointers])
    return sorted(versions, key=lambda t: t.name)
