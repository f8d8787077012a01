"""``postline templates lint``: what would make a template's mail clipped, unreadable, non-compliant or mangled,
each finding with the template, the file and line, and the fix.

Errors refuse ``templates push`` (unless ``--force``); warnings print. A template that cannot be published at all
(a syntax error, example data that does not render) is an error ``--force`` does not override.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

from postline.templates import CompiledTemplate, TemplateProblem

from .publish import LocaleSource, TemplateSource, prepare, shows_link_to
from .template_markup import VOID, MaskedTemplate, Tag

# Errors even --force does not publish: a template that does not render, marketing mail with no way out.
HARD_RULES = frozenset({"publish", "unsubscribe-link"})
GMAIL_CLIP_BYTES = 102 * 1024  # Gmail shows "[Message clipped]" past this much HTML
SUBJECT_MAX = 90  # inboxes cut subjects between about 40 (phones) and 90 characters
PREVIEW = {"unsubscribe_url": "https://t.example.com/u/preview-token-0123456789abcdef"}
_BALANCED = frozenset("table tr td th div a span ul ol center font b strong i em h1 h2 h3 h4 h5 h6".split())
_POSTAL = re.compile(
    r"\b\d{1,5}\s+[\w'.-]+(?:\s[\w'.-]+)*\s(?:street|st|avenue|ave|road|rd|lane|ln|way|drive|dr|boulevard|blvd|"
    r"place|pl|square|sq|court|ct)\b|\b(?:straße|strasse|str\.|rue|calle|carrer|via|weg|platz)\s|\bp\.?\s?o\.?\s?box\b"
    r"|\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b|\b\d{4,5}(?:-\d{4})?\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    template: str
    file: str
    line: int | None
    severity: str  # "error" or "warning"
    rule: str
    message: str
    fix: str

    def __str__(self) -> str:
        if self.rule == "publish":
            return self.message  # it names its file and line itself
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message} ({self.rule}); {self.fix}"

    def as_json(self) -> dict:
        return asdict(self)


def lint(source: TemplateSource) -> list[Finding]:
    """Every finding for the template, each locale variant checked like the default (a translator can drop the
    unsubscribe link or the postal address, or add an image without alt) and named by its own files."""
    folder = str(source.path) if source.path else source.name
    findings: list[Finding] = []
    variants = [source.variant(None), *source.variants]

    def files(variant: LocaleSource) -> tuple[str, str]:
        """The variant's HTML and subject files, as the author finds them."""
        if variant.locale == source.locale:
            return f"{folder}/html.j2", f"{folder}/template.json"
        where = f"{folder}/locales/{variant.folder or variant.locale}"
        return f"{where}/html.j2", f"{where}/subject.j2"

    def add(file: str, line: int | None, severity: str, rule: str, message: str, fix: str) -> None:
        findings.append(Finding(source.name, file, line, severity, rule, message, fix))

    if source.stream == "marketing":
        for variant in variants:
            if not shows_link_to(variant.html, "unsubscribe_url"):
                add(
                    files(variant)[0],
                    None,
                    "error",
                    "unsubscribe-link",
                    "a marketing template without a visible unsubscribe link",
                    'add <a href="{{ unsubscribe_url }}">'
                    "Unsubscribe</a> where readers see it (not in a hidden element)",
                )
    try:
        # Without its unsubscribe link (reported above) the rest of a marketing template is still worth checking.
        item = prepare(replace(source, stream="transactional") if findings else source, "lint")
    except TemplateProblem as problem:
        findings.append(
            Finding(
                source.name,
                folder,
                None,
                "error",
                "publish",
                str(problem),
                "fix the template or example.json: it cannot be published as it is",
            )
        )
        return findings
    compiled = CompiledTemplate.compile(item)
    from_data: set[str] = set()  # an http:// URL of the example data, reported once whatever the locale
    for variant in variants:
        html_file, subject_file = files(variant)
        locale = None if variant.locale == source.locale else variant.locale
        rendered = compiled.render(source.example_data, PREVIEW, locale)
        template = MaskedTemplate(variant.html)

        size = len(rendered.html.encode())
        if size > GMAIL_CLIP_BYTES:
            add(
                html_file,
                None,
                "warning",
                "gmail-clipping",
                f"the HTML is {size / 1024:.0f} KB with the example data; Gmail clips email past 102 KB, hiding the "
                "rest (the unsubscribe link and open pixel included)",
                "shorten it, or send fewer items per email",
            )
        if source.stream == "marketing" and not _POSTAL.search(rendered.text + rendered.html):
            add(
                html_file,
                None,
                "warning",
                "postal-address",
                "no postal address found in the email",
                "add your postal address to the footer: CAN-SPAM requires one in marketing email",
            )
        if variant.text is None and not re.search(r"\w", rendered.text):
            add(
                html_file,
                None,
                "error",
                "text-part",
                "no text part can be made: the HTML has no visible text",
                "add text to the HTML (an image-only email looks like spam) or write a text.j2",
            )
        if not rendered.subject.strip():
            add(
                subject_file,
                None,
                "error",
                "subject",
                "the subject is empty with the example data",
                "write a subject, or make sure its variables are never empty",
            )
        elif len(rendered.subject) > SUBJECT_MAX:
            add(
                subject_file,
                None,
                "warning",
                "subject",
                f"the subject is {len(rendered.subject)} characters with the example data; inboxes cut it near "
                f"{SUBJECT_MAX}",
                "say the point in the first 40 characters and shorten the rest",
            )
        for tag in template.tokens:
            if not isinstance(tag, Tag) or tag.end_tag:
                continue
            line = template.line_at(tag.start)
            for attribute in tag.attributes:
                if attribute.name in ("href", "src") and (attribute.value or "").strip().lower().startswith("http://"):
                    add(
                        html_file,
                        line,
                        "warning",
                        "insecure-url",
                        f"{attribute.name} uses http://: {template.unmask(attribute.value)[:80]}",
                        "use https:// (clients warn about or block http)",
                    )
            if tag.name == "img" and tag.attribute("alt") is None:
                add(
                    html_file,
                    line,
                    "warning",
                    "image-alt",
                    "an image without alt text",
                    'add alt="what it shows" (alt="" for a decorative image): many clients block images at first',
                )
        for url in re.findall(r"""\b(?:href|src)\s*=\s*["'](http://[^"']*)""", rendered.html, re.IGNORECASE):
            if url not in variant.html and url not in from_data:
                from_data.add(url)
                add(
                    html_file,
                    None,
                    "warning",
                    "insecure-url",
                    f"a link or image from the example data uses http://: {url[:80]}",
                    "use https:// in the data you send",
                )
        unbalanced = _unbalanced(template)
        if unbalanced and _unbalanced(MaskedTemplate(rendered.html)):
            line, message = unbalanced
            add(
                html_file,
                line,
                "warning",
                "unbalanced-tags",
                message,
                "close each element where it opens (Outlook's Word engine and Gmail mangle what a browser repairs)",
            )
    return findings


def _unbalanced(template: MaskedTemplate) -> tuple[int, str] | None:
    """The first element that closes what it did not open, or is left open, among those mail clients mangle."""
    from .template_markup import RAW_TEXT

    open_elements: list[tuple[str, int]] = []
    for token in template.tokens:
        if not isinstance(token, Tag) or token.name not in _BALANCED or token.name in VOID | RAW_TEXT:
            continue
        if not token.end_tag:
            if not token.self_closing:
                open_elements.append((token.name, token.start))
        elif open_elements and open_elements[-1][0] == token.name:
            open_elements.pop()
        else:
            expected = f"</{open_elements[-1][0]}> first" if open_elements else "no open element to close"
            return template.line_at(token.start), f"</{token.name}> where the HTML expects {expected}"
    if open_elements:
        name, start = open_elements[-1]
        return template.line_at(start), f"<{name}> is never closed"
    return None
