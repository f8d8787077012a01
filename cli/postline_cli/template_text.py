"""The text part made from a template's HTML, at publish time, when the author wrote no ``text.j2``.

It reads the (inlined) HTML as a token stream, never as a document, so nothing moves: every Jinja statement of the
HTML comes out in the text in the same order (a ``{% for %}`` between table rows loops over the same rows), every
expression that stands in visible text or in a link's address comes out where it stood, and the result is a Jinja
template that renders like the HTML does. Blocks (paragraphs, headings, rows, list items) become lines, each list
item its own line starting with "- ", a link becomes "text (address)", and what a reader does not see (the
``<head>``, ``display:none`` such as a preheader, Outlook-only conditional comments) is left out.
"""

from __future__ import annotations

import html
import re

from postline.tracking import unescape_attribute

from .template_markup import (
    VOID,
    Comment,
    Doctype,
    Jinja,
    MaskedTemplate,
    Tag,
    Text,
    is_placeholder,
    split_placeholders,
)

_HIDDEN_ELEMENTS = frozenset("head style script title template noscript xml".split())
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_PARAGRAPH = frozenset("p h1 h2 h3 h4 h5 h6 ul ol blockquote pre hr dl address figure".split())
_LINE = frozenset(
    "div tr li table tbody thead tfoot center section article header footer main nav aside "
    "dt dd caption form fieldset body html details summary".split()
)
_CELL = frozenset({"td", "th"})
_CLOSED_BY = {
    "li": {"li"},
    "td": {"td", "th"},
    "th": {"td", "th"},
    "tr": {"tr"},
    "p": _PARAGRAPH | _LINE,
    "option": {"option"},
    "dt": {"dt", "dd"},
    "dd": {"dt", "dd"},
}
_INVISIBLE = re.compile("[\u034f\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_SPACE = re.compile(r"[ \t\n\r\f]+")


def html_to_text(source: str) -> str:
    """A Jinja text template that reads like ``source`` (an HTML Jinja template) looks."""
    template = MaskedTemplate(source)
    writer = _Writer()
    open_elements: list[tuple[str, bool]] = []  # (name, hides what it holds)
    links: list[dict] = []  # the <a> being read: its address and the writer's position at its start
    list_kinds: list[list] = []  # for each open list: [ordered, next number]

    def hidden() -> bool:
        return any(hides for _, hides in open_elements)

    for token in template.tokens:
        if isinstance(token, Tag) and not token.end_tag:
            for index in token.jinja_in_tag:  # statements inside a tag still open and close blocks
                writer.jinja(template.jinja[index])
            if token.attributes:
                for attribute in token.attributes:
                    if attribute.name == "href":
                        continue
                    for span in template.placeholders(attribute.value or ""):
                        if span.kind == "statement":
                            writer.jinja(span)
            _close_implied(open_elements, token.name)
            style = token.attribute("style")
            hides = (
                token.name in _HIDDEN_ELEMENTS
                or token.attribute("hidden") is not None
                or bool(style and style.value and _HIDDEN_STYLE.search(style.value))
            )
            if token.name not in VOID and not token.self_closing:
                open_elements.append((token.name, hides))
            if hidden() or hides:
                if token.name == "a":
                    href = token.attribute("href")
                    for span in template.placeholders(href.value or "") if href else []:
                        if span.kind == "statement":
                            writer.jinja(span)
                continue
            _open(token, template, writer, links, list_kinds)
        elif isinstance(token, Tag):
            if token.name in _CELL | _LINE | _PARAGRAPH | {"a"} and not hidden():
                _close(token.name, writer, links, list_kinds, template)
            for position in range(len(open_elements) - 1, -1, -1):
                if open_elements[position][0] == token.name:
                    del open_elements[position:]
                    break
        elif isinstance(token, Text):
            if token.raw_in:
                _statements_only(template, template.masked[token.start : token.end], writer)
            elif hidden():
                _statements_only(template, template.masked[token.start : token.end], writer)
            else:
                _text(template, template.masked[token.start : token.end], writer)
        elif isinstance(token, (Comment, Doctype)):
            _statements_only(template, template.masked[token.start : token.end], writer)
    return writer.result()


def _open(token: Tag, template: MaskedTemplate, writer: "_Writer", links, list_kinds) -> None:
    name = token.name
    if name == "br":
        writer.line_break()
    elif name == "hr":
        writer.block(2)
        writer.word("----")
        writer.block(2)
    elif name in ("ul", "ol"):
        list_kinds.append([name == "ol" and not _has_jinja_inside(template, token), 1])
        writer.block(2 if not list_kinds[:-1] else 1)
    elif name == "li":
        writer.block(1)
        numbered = list_kinds[-1] if list_kinds else [False, 1]
        writer.word(f"{numbered[1]}." if numbered[0] else "-")
        numbered[1] += 1
        writer.space()
    elif name in _PARAGRAPH:
        writer.block(2)
    elif name in _LINE:
        writer.block(1)
    elif name in _CELL:
        writer.cell()
    elif name == "a":
        href = token.attribute("href")
        links.append({"href": href.value if href else None, "mark": writer.mark(), "images": 0})
    elif name == "img" and links:
        links[-1]["images"] += 1


def _close(name: str, writer: "_Writer", links, list_kinds, template: MaskedTemplate) -> None:
    if name == "a":
        if not links:
            return
        link = links.pop()
        _write_link(link, writer, template)
    elif name in ("ul", "ol"):
        if list_kinds:
            list_kinds.pop()
        writer.block(2 if not list_kinds else 1)
    elif name in _PARAGRAPH:
        writer.block(2)
    elif name in _LINE:
        writer.block(1)


def _write_link(link: dict, writer: "_Writer", template: MaskedTemplate) -> None:
    href = link["href"]
    if not href:
        return
    address = _attribute_value(template, href)
    shown = writer.text_since(link["mark"]).strip()
    if not shown and link["images"] or address.lower().startswith(("mailto:", "tel:", "#")):
        # an image's link is most often repeated in text beside it; mail and phone links read as their text
        _statements_only(template, href, writer)
        return
    if not shown:
        writer.word(address)
    elif shown != address:
        writer.space()
        writer.word(f"({address})")


def _attribute_value(template: MaskedTemplate, masked: str) -> str:
    """An attribute's value as text: entities decoded outside Jinja, Jinja restored as written."""
    return "".join(
        template.span_of(piece).text if is_placeholder(piece) else unescape_attribute(piece)
        for piece in split_placeholders(masked)
    ).strip()


def _has_jinja_inside(template: MaskedTemplate, tag: Tag) -> bool:
    """Whether Jinja statements follow the list's start tag before its end (a loop makes the count unknown)."""
    end = template.masked.find(f"</{tag.name}", tag.end)
    return any(span.kind == "statement" for span in template.placeholders(template.masked[tag.end : end]))


def _close_implied(open_elements: list, name: str) -> None:
    """HTML's optional end tags: a new <li> closes the open one, a <td> the open cell, and so on."""
    for position in range(len(open_elements) - 1, -1, -1):
        open_name = open_elements[position][0]
        if name in _CLOSED_BY.get(open_name, ()):
            del open_elements[position:]
            return
        if open_name in ("table", "ul", "ol", "tr", "tbody"):
            return


def _statements_only(template: MaskedTemplate, masked: str, writer: "_Writer") -> None:
    for span in template.placeholders(masked):
        if span.kind == "statement":
            writer.jinja(span)


def _text(template: MaskedTemplate, masked: str, writer: "_Writer") -> None:
    for piece in split_placeholders(masked):
        if is_placeholder(piece):
            span = template.span_of(piece)
            if span.kind == "statement":
                writer.jinja(span)
            elif span.kind == "expression":
                writer.word(span.text)
            continue
        text = _INVISIBLE.sub("", html.unescape(piece)).replace("\u00a0", " ")
        words = _SPACE.split(text)
        for position, word in enumerate(words):
            if position:
                writer.space()
            if word:
                writer.word(word)


_OPENERS = frozenset("if for macro call filter with block autoescape trans raw".split())
_LOOP_CELL_GAP = '{{ "  " if not loop.first else "" }}'


class _Writer:
    """Lines of text with Jinja statements in them, keeping the statements where the HTML had them.

    A statement between blocks goes on a line of its own (trim_blocks and lstrip_blocks take such a line out
    whole); one inside a line of text stays inline, unless a block ends right after it, in which case it moves
    to the start of the next line, so what a branch holds starts and ends with its own line breaks. Each branch
    of a condition starts from the line breaks written before the condition, and after it the fewest any branch
    left are assumed: a branch may leave one line break too many, never one too few (blank lines are collapsed
    when the text part is rendered)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = 0  # line breaks asked for before the next visible text
        self.newlines = 2  # line breaks at the end of the visible text (the start counts as a paragraph's end)
        self.gap = ""  # what separates the next word from the last on the same line
        self.held: list[tuple[str, Jinja]] = []  # statements after the last word of a line, not written yet,
        # each with the space that stood before it
        self.opened: list[list] = []  # each open block statement: [line breaks when it opened, line breaks asked
        # for before its first word, whether that word came]
        self.loop_opened = False  # a {% for %} was the last thing written: its first cell has nothing before it

    def block(self, breaks: int) -> None:
        self.pending = max(self.pending, breaks)

    def line_break(self) -> None:
        self._flush()
        self._write("\n")
        self.newlines += 1
        self._place_held()

    def cell(self) -> None:
        if not self.newlines or self.held:
            self.gap = "  "
        elif self.loop_opened and not self.pending:
            self.gap = _LOOP_CELL_GAP  # cells repeated by a loop are separated, the loop's first is not

    def space(self) -> None:
        if not self.newlines and not self.gap:
            self.gap = " "

    def word(self, text: str) -> None:
        self._flush()
        for record in reversed(self.opened):
            if record[2]:
                break
            record[2] = True
        for gap, span in self.held:
            self._write(gap)
            self._statement(span.text, span)
            if gap.strip() == "" and gap and self.gap == " ":
                self.gap = ""  # HTML shows one space where there are two, whichever branch is taken
        self.held = []
        if self.gap and (not self.newlines or self.gap == _LOOP_CELL_GAP):
            self._write(self.gap)
        self.gap = ""
        self._write(text)
        self.newlines, self.loop_opened = 0, False

    def jinja(self, span: Jinja) -> None:
        if span.kind != "statement":
            return
        if self.newlines or self.pending:
            self._flush()
            self._statement(_bare(span.text) + "\n", span)
        else:
            self.held.append((self.gap, span))
            self.gap = ""

    def mark(self) -> int:
        return len(self.parts)

    def text_since(self, mark: int) -> str:
        return "".join(self.parts[mark:])

    def _flush(self) -> None:
        for record in reversed(self.opened):  # the line breaks asked for before a block's first word
            if record[2]:
                break
            record[1] = max(record[1], self.pending)
        if self.pending > self.newlines:
            if self.held and not self.newlines:
                self._write("\n")
                self.newlines = 1
                self._place_held()
            if self.pending > self.newlines:
                self._write("\n" * (self.pending - self.newlines))
                self.newlines = self.pending
            self.gap = ""
        self.pending = 0

    def _place_held(self) -> None:
        for _, span in self.held:
            self._statement(_bare(span.text) + "\n", span)
        self.held = []

    def _statement(self, text: str, span: Jinja) -> None:
        keyword = span.keyword
        if keyword == "endfor" and self.opened and self.opened[-1][1] > self.newlines and text.endswith("\n"):
            # each pass of the loop ends with the line breaks its content starts with, ready for the next pass
            self._write("\n" * (self.opened[-1][1] - self.newlines))
            self.newlines = self.opened[-1][1]
        self._write(text)
        if keyword in _OPENERS or (keyword == "set" and "=" not in span.text):
            self.opened.append([self.newlines, 0, False])
        elif keyword in ("else", "elif"):
            if self.opened:
                self.newlines = self.opened[-1][0]
        elif keyword.startswith("end") and self.opened:
            self.newlines = min(self.newlines, self.opened.pop()[0])
        self.loop_opened = keyword == "for"

    def _write(self, text: str) -> None:
        self.parts.append(text)

    def result(self) -> str:
        for _, span in self.held:
            self._statement(span.text, span)
        lines = [line.rstrip() for line in "".join(self.parts).split("\n")]
        text = "\n".join(lines).strip("\n")
        return re.sub(r"\n{3,}", "\n\n", text) + "\n"


def _bare(statement: str) -> str:
    """A statement without whitespace control, for a line of its own."""
    return re.sub(r"^\{%[-+]", "{%", re.sub(r"[-+]%\}$", "%}", statement))
