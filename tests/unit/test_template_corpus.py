"""Templates as people write them (tests/fixtures/templates): each publishes and renders, publishing moves none of
their Jinja, and rendering the published version gives what rendering the author's source and inlining afterwards
gives. What mail clients need (media queries, dark-mode rules, Outlook's conditional comments, the preheader,
!important and vendor properties) survives publishing, and nothing is inlined twice."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import css_inline
import pytest

from postline.templates import _HTML_ENV, CompiledTemplate
from postline_cli.publish import load_template_dir, prepare
from postline_cli.template_inline import declarations, inline_css
from postline_cli.template_markup import Comment, MaskedTemplate, jinja_spans

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
NAMES = sorted(p.name for p in CORPUS.iterdir() if (p / "template.json").exists())
PROVIDED = {"unsubscribe_url": "https://t.example.com/u/preview-token"}
# Data beside each example that takes the other branches: rows left out, empty loops, optional values missing.
VARIANTS = {
    "receipt-rows": [{"discount": None, "note": "Gift wrapped."}, {"lines": []}],
    "conditional-rows": [{"is_admin": False, "storage_gb": None}, {"storage_gb": 12, "top_apps": []}],
    "dark-mode-digest": [{"events": []}],
    "invoice-nested": [{"invoice": {**json.loads((CORPUS / "invoice-nested" / "example.json").read_text())["invoice"],
                                    "tax_rate": 0, "projects": []}}],
    "password-code": [{"device": None}],
    "shipping-update": [{"parcels": [{"carrier": "UPS"}], "note": "Leave it at the door."}],
    "long-urls": [{"vip": False}],
    "newsletter-responsive": [{"first_name": ""}],
}


def datasets(name: str) -> list[dict]:
    example = json.loads((CORPUS / name / "example.json").read_text())
    return [example] + [{**example, **change} for change in VARIANTS.get(name, [])]


def without_style_blocks(html: str) -> str:
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", re.sub(r"<style[^>]*>.*?</style>", "", html, flags=re.DOTALL)))


def published(name: str):
    return prepare(load_template_dir(CORPUS / name), "tests")


class Elements(HTMLParser):
    """Each element outside comments as (tag, its declarations by property), in document order."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag in ("tbody", "html", "head", "body", "style"):  # a parser adds the first four when they are left out
            return
        effective: dict[str, tuple[str, bool]] = {}  # as a browser reads one style attribute
        for name, written, important in declarations(dict(attrs).get("style") or ""):
            if important or not effective.get(name, ("", False))[1]:
                effective[name] = (" ".join(written.split(":", 1)[1].split()).replace("'", '"'), important)
        self.found.append((tag, {name: value for name, (value, _) in effective.items()}))


def test_the_corpus_has_at_least_twelve_templates():
    assert len(NAMES) >= 12


@pytest.mark.parametrize("name", NAMES)
def test_each_publishes_and_renders_every_dataset(name):
    item = published(name)
    compiled = CompiledTemplate.compile(item)
    for data in datasets(name):
        rendered = compiled.render(data, PROVIDED)
        assert rendered.subject and "{{" not in rendered.subject
        assert "{%" not in rendered.html and "{%" not in rendered.text
        assert rendered.text.strip()


@pytest.mark.parametrize("name", NAMES)
def test_rendering_the_published_version_equals_rendering_the_source_then_inlining(name):
    source = load_template_dir(CORPUS / name)
    compiled = CompiledTemplate.compile(published(name))
    author = _HTML_ENV.from_string(source.html)
    for data in datasets(name):
        # The <style> blocks may differ: a rule for rows this data leaves out still matches the template.
        assert without_style_blocks(compiled.render(data, PROVIDED).html) == without_style_blocks(
            inline_css(author.render({**data, **PROVIDED})))


@pytest.mark.parametrize("name", NAMES)
def test_each_element_gets_the_styles_a_css_inliner_gives_the_rendered_email(name):
    """The published template, rendered, against css_inline run on the whole rendered email (a document, where
    the loops have already run): the same elements in the same order, each with the same declarations."""
    source = load_template_dir(CORPUS / name)
    compiled = CompiledTemplate.compile(published(name))
    author = _HTML_ENV.from_string(source.html)
    for data in datasets(name):
        ours = Elements(compiled.render(data, PROVIDED).html).found
        reference = Elements(css_inline.inline(author.render({**data, **PROVIDED}), keep_style_tags=True,
                                               load_remote_stylesheets=False)).found
        assert [tag for tag, _ in ours] == [tag for tag, _ in reference]
        assert ours == reference


@pytest.mark.parametrize("name", NAMES)
def test_publishing_keeps_every_jinja_tag_in_place_and_in_order(name):
    source = (CORPUS / name / "html.j2").read_text()
    html = published(name).html
    # Statements and comments stay, in order; an expression in a <style> rule is copied to the elements it styles.
    assert [s.text for s in jinja_spans(html) if s.kind != "expression"] == \
        [s.text for s in jinja_spans(source) if s.kind != "expression"]
    assert html.count("\n") == source.count("\n")  # lines stay where they were: errors point at the author's line
    # Apart from style attributes and the <style> rules inlined, the template is byte for byte what was written.
    without_styles = re.sub(r'\s?style="[^"]*"|<style[^>]*>.*?</style>', "", html, flags=re.DOTALL)
    assert re.sub(r"\s", "", without_styles) == re.sub(
        r"\s", "", re.sub(r'\s?style="[^"]*"|<style[^>]*>.*?</style>', "", source, flags=re.DOTALL))


@pytest.mark.parametrize("name", NAMES)
def test_outlook_conditional_comments_are_kept_byte_for_byte(name):
    source = (CORPUS / name / "html.j2").read_text()
    html = published(name).html
    template = MaskedTemplate(source)
    comments = [template.unmask(template.masked[t.start:t.end]) for t in template.tokens if isinstance(t, Comment)]
    conditional = [c for c in comments if c.startswith(("<!--[if", "<!--<![endif]"))]
    assert conditional or "[if" not in source
    for comment in conditional:
        assert comment in html


def test_media_queries_and_dark_mode_rules_stay_in_a_style_block():
    html = published("dark-mode-digest").html
    style = "".join(re.findall(r"<style[^>]*>(.*?)</style>", html, flags=re.DOTALL))
    assert "@media (prefers-color-scheme: dark)" in style and ".dark-logo { display: block !important; }" in style
    assert "[data-ogsc] .body" in style  # Outlook.com's dark mode rules match nothing here: kept for the client
    assert ":root { color-scheme: light dark;" in style
    assert ".card { border: 1px solid" not in style  # inlined, so not sent twice
    responsive = published("newsletter-responsive").html
    assert "@media screen and (max-width: 600px)" in responsive and "a:hover" in responsive


def test_the_preheader_is_kept_in_the_html_and_left_out_of_the_text():
    item = published("receipt-rows")
    rendered = CompiledTemplate.compile(item).render(datasets("receipt-rows")[0], PROVIDED)
    assert "Thanks for your order, Ada: here is your receipt." in rendered.html
    assert "display: none !important" in rendered.html
    assert "here is your receipt" not in rendered.text


def test_important_and_vendor_properties_are_kept():
    html = published("newsletter-responsive").html
    body = re.search(r"<body[^>]*>", html).group()
    assert "-webkit-text-size-adjust: 100%" in body and "-ms-text-size-adjust: 100%" in body
    assert "mso-table-lspace: 0pt" in html
    receipt = published("receipt-rows").html
    assert re.search(r'<div style="display: none !important; max-height: 0; overflow: hidden; mso-hide: all" '
                     r'class="preheader">', receipt)


@pytest.mark.parametrize("name", NAMES)
def test_nothing_is_inlined_twice(name):
    html = published(name).html
    for style in re.findall(r'\sstyle="([^"]*)"', html):
        # A property twice only where an !important rule overrides the element's own declaration.
        names = [n for n, _, important in declarations(style) if "{" not in n and not important]
        assert len(names) == len(set(names)), style
    assert inline_css(html) == html  # publishing what was published changes nothing


def test_a_template_already_inlined_by_a_framework_gets_no_declaration_twice():
    html = published("framework-export").html
    assert 'style="word-spacing:normal;"' not in html  # the body rule was added before its own declarations
    cell = re.search(r'<td align="left" class="text" style="([^"]*)"', html).group(1)
    assert [n for n, _, _ in declarations(cell)].count("font-size") == 1
    assert cell.endswith("font-size:0px;padding:10px 25px;word-break:break-word;")  # its own, as written, last
