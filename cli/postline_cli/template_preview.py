"""``postline templates preview``: every template rendered with its example data, in every locale, the HTML part
beside the text part, in one self-contained HTML file an author opens in a browser.

Each email is shown in a sandboxed ``<iframe srcdoc>``: its own styles apply to it alone, as in a mail client, and
nothing in it runs (no script, no form). The page fetches nothing of its own; the email's images are fetched as a
recipient's client would fetch them. There is no tracking in a preview: links are as the author wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from postline.locales import babel_locale
from postline.templates import CompiledTemplate, Rendered, TemplateProblem

from .publish import PREVIEW_PROVIDED

# The page runs nothing and posts nowhere; emails keep their inline styles and remote images.
POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; frame-src 'self'; "
    "script-src 'none'; form-action 'none'; base-uri 'none'"
)
STYLE = """
:root { color-scheme: light; --ink: #1f2937; --soft: #6b7280; --line: #e5e7eb; --warn: #b91c1c; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1400px; padding: 24px; color: var(--ink); background: #fff;
       font: 15px/1.45 system-ui, "Segoe UI", Roboto, "Helvetica Neue", "Liberation Sans", Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 0 0 4px; } h3 { font-size: 16px; margin: 0; }
header p, .meta, figcaption { color: var(--soft); margin: 2px 0; font-size: 13px; }
nav ul { padding-left: 18px; } nav li { margin: 2px 0; }
section.template { border-top: 2px solid var(--line); margin-top: 28px; padding-top: 16px; }
article.variant { margin: 18px 0 0; }
.subject { margin: 6px 0 8px; font-weight: 600; }
.parts { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px; align-items: start; }
figure { margin: 0; }
iframe { width: 100%; height: 640px; border: 1px solid var(--line); border-radius: 6px; resize: vertical;
         background: #fff; display: block; }
pre { margin: 0; height: 640px; overflow: auto; padding: 12px; border: 1px solid var(--line); border-radius: 6px;
      background: #f9fafb; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 13px; }
.problem { color: var(--warn); font-weight: 600; white-space: pre-wrap; }
@media (max-width: 900px) { .parts { grid-template-columns: 1fr; } }
"""


@dataclass
class PreviewedVariant:
    locale: str
    rendered: Rendered | None = None
    problem: str | None = None


@dataclass
class PreviewedTemplate:
    name: str
    stream: str
    origin: str  # "version 3" or "folder templates/welcome, unpublished"
    default_locale: str | None = None
    variants: list[PreviewedVariant] = field(default_factory=list)
    problem: str | None = None  # the template could not be prepared at all


def preview_template(compiled: CompiledTemplate, example_data: dict[str, Any], origin: str) -> PreviewedTemplate:
    """``compiled`` rendered with ``example_data`` in each of its locales (each as a message of that locale)."""
    shown = PreviewedTemplate(compiled.name, compiled.stream, origin, compiled.locale)
    for locale in compiled.locales:
        try:
            shown.variants.append(PreviewedVariant(locale, compiled.render(example_data, PREVIEW_PROVIDED, locale)))
        except TemplateProblem as problem:
            shown.variants.append(PreviewedVariant(locale, problem=str(problem)))
    return shown


def language_name(tag: str) -> str:
    """``de-AT`` -> ``German (Austria)``, in English; the tag itself when Babel does not know it."""
    known = babel_locale(tag)
    return known.get_display_name("en") if known else tag


def preview_html(templates: list[PreviewedTemplate], *, source: str, generated: str) -> str:
    variants = sum(len(t.variants) for t in templates)
    contents = "".join(
        f'<li><a href="#{_anchor(t.name)}">{escape(t.name)}</a>'
        + (
            ": " + ", ".join(f'<a href="#{_anchor(t.name, v.locale)}">{escape(v.locale)}</a>' for v in t.variants)
            if t.variants
            else " (cannot be previewed)"
        )
        + "</li>"
        for t in templates
    )
    body = [
        f"<header><h1>Template preview</h1><p>{len(templates)} template(s), {variants} locale variant(s), from "
        f"{escape(source)}, rendered with their example data at {escape(generated)}. Links are as written "
        "(no tracking); marketing emails show a placeholder unsubscribe link.</p></header>",
        f'<nav aria-label="Templates"><ul>{contents}</ul></nav>',
    ]
    body += [_template(t) for t in templates]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Template preview: postline</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _anchor(name: str, locale: str | None = None) -> str:
    return f"template-{name}" + (f"-{locale}" if locale else "")


def _template(shown: PreviewedTemplate) -> str:
    locales = ", ".join(v.locale for v in shown.variants)
    meta = f"{shown.stream} · {shown.origin}" + (f" · locales: {locales}" if locales else "")
    parts = [
        f'<section class="template" id="{_anchor(shown.name)}" data-template="{escape(shown.name)}">',
        f'<h2>{escape(shown.name)}</h2><p class="meta">{escape(meta)}</p>',
    ]
    if shown.problem:
        parts.append(f'<p class="problem">{escape(shown.problem)}</p>')
    for variant in shown.variants:
        parts.append(_variant(shown, variant))
    parts.append("</section>")
    return "\n".join(parts)


def _variant(shown: PreviewedTemplate, variant: PreviewedVariant) -> str:
    label = f"{variant.locale}: {language_name(variant.locale)}"
    if variant.locale == shown.default_locale:
        label += " (default)"
    head = (
        f'<article class="variant" id="{_anchor(shown.name, variant.locale)}" '
        f'data-locale="{escape(variant.locale)}"><h3>{escape(label)}</h3>'
    )
    if variant.rendered is None:
        return f'{head}<p class="problem">{escape(variant.problem or "")}</p></article>'
    rendered = variant.rendered
    title = f"{shown.name}, {variant.locale}"
    # sandbox without allow-scripts or allow-same-origin: the email runs nothing and reads nothing of the page.
    return (
        f'{head}<p class="subject">Subject: <span data-part="subject">{escape(rendered.subject)}</span></p>'
        '<div class="parts">'
        f'<figure><figcaption>HTML part</figcaption><iframe data-part="html" title="{escape(title)}: HTML part" '
        f'sandbox="allow-popups allow-popups-to-escape-sandbox" srcdoc="{escape(rendered.html, quote=True)}">'
        "</iframe></figure>"
        f'<figure><figcaption>Text part</figcaption><pre data-part="text">{escape(rendered.text)}</pre></figure>'
        "</div></article>"
    )
