"""Reading a Jinja HTML template as it stands, without an HTML parser's tree: its Jinja markup, tags, text and
comments in source order, each with its place in the file.

An HTML parser builds a document, and a document has rules a template need not follow: text between table rows is
"foster-parented" out of the table, so a ``{% for %}`` written between ``<tr>``s would move. Publishing
(CSS inlining, the derived text part) and the lint work on this token stream instead, where nothing moves: every
Jinja span is masked as one private-use character, the masked text is tokenized the way an HTML5 tokenizer
would (never a tree builder), and each token knows its source offsets and line.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

# Default Jinja delimiters; strings inside statements and expressions may hold the closing delimiter.
_STRING = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
_RAW = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}.*?\{%[-+]?\s*endraw\s*[-+]?%\}", re.DOTALL)
_JINJA = re.compile(
    r"(?P<comment>\{#.*?#\})"
    rf"|(?P<statement>\{{%(?:[^\"'%]|%(?!\}})|{_STRING})*%\}})"
    rf"|(?P<expression>\{{\{{(?:[^\"'}}]|\}}(?!\}})|{_STRING})*\}}\}})",
    re.DOTALL,
)
_RAW_OPEN = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_RAW_CLOSE = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}$")
_STATEMENT_WORD = re.compile(r"\{%[-+]?\s*(\w+)")

PLACEHOLDER_BASE = 0xF0000  # Supplementary Private Use Area-A: never in a template, no meaning to HTML
_PLACEHOLDER = re.compile("[\U000f0000-\U000ffffd]")
_SPLIT = re.compile("([\U000f0000-\U000ffffd])")

VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
RAW_TEXT = frozenset("style script title textarea xmp iframe noembed noframes".split())


@dataclass(frozen=True)
class Jinja:
    kind: str  # "statement", "expression" or "comment"
    text: str
    start: int
    end: int
    index: int = -1  # its place among the template's Jinja spans

    @property
    def keyword(self) -> str:
        """``for``, ``endif``, ``set``, ... for a statement."""
        match = _STATEMENT_WORD.match(self.text)
        return match.group(1) if match else ""


def jinja_spans(source: str) -> list[Jinja]:
    """Every Jinja statement, expression and comment in ``source``, in order. A ``{% raw %}`` block's delimiters
    are statements and its content plain text."""
    spans: list[Jinja] = []
    position = 0
    while True:
        match = _JINJA.search(source, position)
        if not match:
            return spans
        raw = _RAW.match(source, match.start())
        if match.lastgroup == "statement" and raw:
            opening = _RAW_OPEN.match(source, raw.start())
            closing = _RAW_CLOSE.search(source, raw.start(), raw.end())
            spans.append(Jinja("statement", opening.group(), opening.start(), opening.end(), len(spans)))
            spans.append(Jinja("statement", closing.group(), closing.start(), closing.end(), len(spans)))
            position = raw.end()
            continue
        spans.append(Jinja(match.lastgroup, match.group(), match.start(), match.end(), len(spans)))
        position = match.end()


@dataclass
class Attribute:
    name: str  # lower case; "" when Jinja stands where a name would
    value: str | None  # masked, undecoded
    start: int  # masked offsets of the whole attribute
    end: int
    value_start: int = -1
    quote: str = ""


@dataclass
class Tag:
    name: str
    start: int  # masked offsets
    end: int
    end_tag: bool = False
    self_closing: bool = False
    attributes: list[Attribute] = field(default_factory=list)
    jinja_in_tag: list[int] = field(default_factory=list)  # placeholder indexes between attributes

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)


@dataclass
class Text:
    start: int
    end: int
    raw_in: str = ""  # the element whose raw text this is (style, script, ...), else ""


@dataclass
class Comment:
    start: int
    end: int


@dataclass
class Doctype:
    start: int
    end: int


Token = Tag | Text | Comment | Doctype

_TAG_NAME = re.compile(r"[A-Za-z][^\s/>\U000F0000-\U000FFFFD]*")
_SPACE = re.compile(r"[\s/]*")
_ATTR_NAME = re.compile(r"[^\s/>=\U000F0000-\U000FFFFD]+")
_UNQUOTED = re.compile(r"[^\s>]*")


class MaskedTemplate:
    """A template's source with each Jinja span replaced by one placeholder character, and its HTML tokens."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.jinja = jinja_spans(source)
        pieces, position = [], 0
        self._masked_starts: list[int] = []  # masked offset of each placeholder
        masked_length = 0
        for index, span in enumerate(self.jinja):
            pieces.append(source[position : span.start])
            masked_length += span.start - position
            self._masked_starts.append(masked_length)
            pieces.append(chr(PLACEHOLDER_BASE + index))
            masked_length += 1
            position = span.end
        pieces.append(source[position:])
        self.masked = "".join(pieces)
        self._newlines = [i for i, char in enumerate(source) if char == "\n"]
        self.tokens = list(_tokenize(self.masked))

    # --- positions -----------------------------------------------------------------------------------------
    def source_offset(self, masked_offset: int) -> int:
        """The source offset of a masked offset (a placeholder maps to the start of its Jinja span)."""
        index = bisect.bisect_left(self._masked_starts, masked_offset)
        if index < len(self._masked_starts) and self._masked_starts[index] == masked_offset:
            return self.jinja[index].start
        if index == 0:
            return masked_offset
        before = self.jinja[index - 1]
        return before.end + (masked_offset - self._masked_starts[index - 1] - 1)

    def line_of(self, source_offset: int) -> int:
        return bisect.bisect_right(self._newlines, source_offset - 1) + 1

    def line_at(self, masked_offset: int) -> int:
        return self.line_of(self.source_offset(masked_offset))

    # --- text -----------------------------------------------------------------------------------------------
    def unmask(self, masked: str, replace=None) -> str:
        """``masked`` with its placeholders turned back into Jinja (or into ``replace(span)``)."""
        return _PLACEHOLDER.sub(lambda m: (replace or (lambda span: span.text))(self.span_of(m.group())), masked)

    def span_of(self, placeholder: str) -> Jinja:
        return self.jinja[ord(placeholder) - PLACEHOLDER_BASE]

    def placeholders(self, masked: str) -> list[Jinja]:
        return [self.span_of(m.group()) for m in _PLACEHOLDER.finditer(masked)]

    def source_span(self, masked_start: int, masked_end: int) -> tuple[int, int]:
        """The source offsets of a masked range (placeholders at its ends included whole)."""
        if masked_end <= masked_start:
            start = self.source_offset(masked_start)
            return start, start
        last = masked_end - 1
        end = (
            self.jinja[ord(self.masked[last]) - PLACEHOLDER_BASE].end
            if is_placeholder(self.masked[last])
            else self.source_offset(last) + 1
        )
        return self.source_offset(masked_start), end


def is_placeholder(char: str) -> bool:
    return len(char) == 1 and PLACEHOLDER_BASE <= ord(char) <= 0xFFFFD


def split_placeholders(masked: str) -> list[str]:
    """``masked`` cut into runs of plain text and single placeholders."""
    return [piece for piece in _SPLIT.split(masked) if piece]


def _tokenize(text: str):
    """HTML5 tokenizer rules, enough for templates: tags with attributes, comments (including Outlook's
    conditional comments, which are comments), doctypes, raw text elements, and text."""
    position, length = 0, len(text)
    text_start = 0
    while position < length:
        lt = text.find("<", position)
        if lt < 0:
            break
        token, after = _markup_at(text, lt)
        if token is None:
            position = lt + 1
            continue
        if lt > text_start:
            yield Text(text_start, lt)
        yield token
        position = after
        if isinstance(token, Tag) and not token.end_tag and not token.self_closing and token.name in RAW_TEXT:
            closing = re.compile(rf"</{token.name}[\s/>]", re.IGNORECASE).search(text, position)
            end = closing.start() if closing else length
            if end > position:
                yield Text(position, end, raw_in=token.name)
            position = end
        text_start = position
    if text_start < length:
        yield Text(text_start, length)


def _markup_at(text: str, lt: int):
    if text.startswith("<!--", lt):
        if text.startswith("<!-->", lt):
            return Comment(lt, lt + 5), lt + 5
        if text.startswith("<!--->", lt):
            return Comment(lt, lt + 6), lt + 6
        end = text.find("-->", lt + 4)
        end = len(text) if end < 0 else end + 3
        return Comment(lt, end), end
    if text.startswith("<!", lt) or text.startswith("<?", lt):
        end = text.find(">", lt)
        end = len(text) if end < 0 else end + 1
        kind = Doctype if text[lt : lt + 9].lower() == "<!doctype" else Comment
        return kind(lt, end), end
    end_tag = text.startswith("</", lt)
    name = _TAG_NAME.match(text, lt + (2 if end_tag else 1))
    if not name:
        return None, lt + 1
    tag = Tag(name.group().lower(), lt, lt, end_tag=end_tag)
    position = name.end()
    while position < len(text):
        position = _SPACE.match(text, position).end()
        if position >= len(text):
            break
        char = text[position]
        if char == ">":
            tag.self_closing = text[position - 1] == "/" and not end_tag
            tag.end = position + 1
            return tag, position + 1
        if is_placeholder(char):
            tag.jinja_in_tag.append(ord(char) - PLACEHOLDER_BASE)
            position += 1
            continue
        attr_name = _ATTR_NAME.match(text, position)
        start = position
        if attr_name:
            position = attr_name.end()
        elif char == "=":  # a value whose name was Jinja (data-{{ x }}="y")
            pass
        else:
            position += 1
            continue
        attribute = Attribute(attr_name.group().lower() if attr_name else "", None, start, position)
        after_space = re.compile(r"\s*").match(text, position).end()
        if after_space < len(text) and text[after_space] == "=":
            position = re.compile(r"\s*").match(text, after_space + 1).end()
            quote = text[position] if position < len(text) and text[position] in "\"'" else ""
            if quote:
                close = text.find(quote, position + 1)
                close = len(text) if close < 0 else close
                attribute.value, attribute.value_start, attribute.quote = (
                    text[position + 1 : close],
                    position + 1,
                    quote,
                )
                position = close + 1
            else:
                value = _UNQUOTED.match(text, position)
                attribute.value, attribute.value_start = value.group(), position
                position = value.end()
        attribute.end = position
        if not end_tag:
            tag.attributes.append(attribute)
    tag.end = len(text)
    return tag, len(text)
