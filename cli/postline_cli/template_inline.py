"""CSS inlining at publish time that moves nothing: the template comes back byte for byte as written, with only
``style`` attributes added to its tags and the inlined rules taken out of its ``<style>`` blocks.

css_inline (a real selector engine) decides which declarations each element gets, but it only ever sees a probe:
the template's tags, each marked with its index, with Jinja removed and no text. Its answer is then written into
the author's own source at each tag. So Jinja statements between table rows, Outlook's conditional comments,
entities, whitespace and attribute order all stay exactly where they were, and line numbers do not change (a
removed rule leaves its line breaks), so an error at render time points at the author's line.

What stays in ``<style>``: what cannot be inlined (``@media``, ``prefers-color-scheme``, ``@font-face`` and other
at-rules, rules with a pseudo-class or pseudo-element such as ``:hover``), rules that match no element here
(client hacks such as ``u + #body a`` or ``[data-ogsc] .x``), and any block holding a Jinja statement (kept whole,
nothing inlined from it). A declaration an element already has in its own ``style`` is not added again, so
publishing an already inlined template changes nothing.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from .template_markup import Doctype, MaskedTemplate, Tag, Text

_MARKER = "--postline-rule-"
_EXPRESSION_WORD = re.compile(r"postlinejinja(\d+)x")
_PROBE_TAG = re.compile(r"""<[a-zA-Z][^\s/>]*(?:\s+[^\s=/>]+(?:="[^"]*")?)*\s*/?>""")
_PROBE_ATTR = re.compile(r"""([^\s=/>]+)(?:="([^"]*)")?""")
_PROBE_NAME = re.compile(r"<[a-zA-Z][^\s/>]*")
_NOT_INLINED_HERE = ("style", "script")


@dataclass
class CssRule:
    start: int  # offsets in the style element's masked text
    end: int
    selector: str | None  # None for an at-rule
    block: str = ""


def css_rules(css: str) -> list[CssRule]:
    """The top-level rules of a style sheet (at-rules whole), with their extents."""
    rules, position, length = [], 0, len(css)
    while position < length:
        position = _skip_space(css, position)
        if position >= length:
            break
        start = position
        if css[position] == "@":
            end = _scan(css, position, stop=";{")
            if end < length and css[end] == "{":
                end = _matching_brace(css, end)
            rules.append(CssRule(start, min(end + 1, length), None))
            position = end + 1
            continue
        if css[position] == "}":
            position += 1
            continue
        brace = _scan(css, position, stop="{")
        if brace >= length:
            break
        close = _matching_brace(css, brace)
        rules.append(CssRule(start, min(close + 1, length), css[start:brace].strip(), css[brace + 1 : close]))
        position = close + 1
    return rules


def declarations(block: str) -> list[tuple[str, str, bool]]:
    """(property in lower case, the declaration as written, !important) for each declaration of a block."""
    found = []
    for part in _split_top_level(block, ";"):
        name, colon, value = part.partition(":")
        if colon and name.strip():
            important = re.search(r"!\s*important\s*$", value, re.IGNORECASE) is not None
            found.append((name.strip().lower(), part.strip(), important))
    return found


def inline_css(source: str) -> str:
    """``source`` with its inlinable ``<style>`` rules written into ``style`` attributes (see the module doc)."""
    template = MaskedTemplate(source)
    tokens = template.tokens
    blocks = _style_blocks(tokens)
    sheet: list[str] = []
    candidates: dict[int, tuple[int, CssRule]] = {}
    for block_index, (_, text, _) in enumerate(blocks):
        css = template.masked[text.start : text.end] if text else ""
        if any(span.kind == "statement" for span in template.placeholders(css)):
            continue  # a rule under a Jinja condition cannot be inlined once for every message
        for rule in css_rules(css):
            if rule.selector is None or ":" in rule.selector or template.placeholders(rule.selector):
                continue
            rule_id = len(candidates)
            candidates[rule_id] = (block_index, rule)
            body = template.unmask(
                rule.block, lambda span: "" if span.kind == "comment" else f"postlinejinja{span.index}x"
            )
            sheet.append(f"{rule.selector} {{ {_MARKER}{rule_id}: 1; {body} }}")
    if not sheet:
        return source
    import css_inline

    probe = _probe(template)
    inlined = css_inline.inline(probe, extra_css="\n".join(sheet), keep_style_tags=False, load_remote_stylesheets=False)
    edits: list[tuple[int, int, str]] = []
    matched: set[int] = set()
    for match in _PROBE_TAG.finditer(inlined):
        name_end = _PROBE_NAME.match(match.group()).end()
        attributes = {name: value for name, value in _PROBE_ATTR.findall(match.group(), name_end)}
        element, style = attributes.get("data-postline-el"), attributes.get("style")
        if element is None or not style:
            continue
        rule_declarations = []
        for name, written, important in declarations(style):
            if name.startswith(_MARKER):
                matched.add(int(name[len(_MARKER) :]))
            else:
                rule_declarations.append((name, written, important))
        if rule_declarations:
            edits.append(_style_edit(template, tokens[int(element)], rule_declarations))
    for rule_id in sorted(matched):
        block_index, rule = candidates[rule_id]
        text = blocks[block_index][1]
        start, end = template.source_span(text.start + rule.start, text.start + rule.end)
        edits.append((start, end, "\n" * source.count("\n", start, end)))
    edits.extend(_empty_block_edits(template, blocks, edits))
    return _apply(source, edits)


def _style_edit(template: MaskedTemplate, tag: Tag, rule_declarations) -> tuple[int, int, str]:
    """The edit that gives ``tag`` the rule declarations its own style does not already settle."""
    own = tag.attribute("style")
    own_static = {}
    if own is not None and own.value:
        for name, _, important in declarations(own.value):
            if not template.placeholders(name):
                own_static[name] = important
    added = [
        written
        for name, written, important in rule_declarations
        if name not in own_static or (important and not own_static[name])
    ]
    if not added:
        start = template.source_offset(tag.start)
        return start, start, ""
    text = _EXPRESSION_WORD.sub(lambda m: template.jinja[int(m.group(1))].text, _attribute_text("; ".join(added)))
    if own is None:
        at = template.source_offset(tag.start) + 1 + len(tag.name)
        return at, at, f' style="{text}"'
    if own.quote:
        at = template.source_offset(own.value_start)
        separator = "; " if own.value.strip() else ""
        return at, at, (text if own.quote == '"' else text.replace("'", "&#39;")) + separator
    start, end = template.source_span(own.start, own.end)
    value = template.source[template.source_offset(own.value_start) : end]
    return start, end, f'style="{text}; {value}"'


def _attribute_text(css: str) -> str:
    """Declarations made safe inside a double-quoted attribute, their Jinja expressions restored as written."""
    return css.replace("&", "&amp;").replace('"', "&quot;")


def _style_blocks(tokens) -> list[tuple[Tag, Text | None, int]]:
    """Each ``<style>`` element outside comments: its start tag, its text, and the index of its start tag."""
    blocks = []
    for index, token in enumerate(tokens):
        if isinstance(token, Tag) and token.name == "style" and not token.end_tag:
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            text = following if isinstance(following, Text) and following.raw_in == "style" else None
            blocks.append((token, text, index))
    return blocks


def _empty_block_edits(template: MaskedTemplate, blocks, edits) -> list[tuple[int, int, str]]:
    """A ``<style>`` element left with nothing but white space and comments goes, leaving its line breaks."""
    removals = []
    source = template.source
    for open_tag, text, index in blocks:
        if text is None:
            continue
        start, end = template.source_span(text.start, text.end)
        content = _apply(source[start:end], [(s - start, e - start, r) for s, e, r in edits if start <= s and e <= end])
        if re.sub(r"/\*.*?\*/|<!--|-->|\s", "", content, flags=re.DOTALL):
            continue
        close = template.tokens[index + 2] if index + 2 < len(template.tokens) else None
        if not (isinstance(close, Tag) and close.end_tag and close.name == "style"):
            continue
        whole_start = template.source_offset(open_tag.start)
        whole_end = template.source_span(close.start, close.end)[1]
        removals.append((whole_start, whole_end, "\n" * source.count("\n", whole_start, whole_end)))
    return removals


def _apply(source: str, edits: list[tuple[int, int, str]]) -> str:
    """``source`` with the edits made; an edit inside a larger one gives way to it."""
    out, position = [], 0
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], -(e[1] - e[0]))):
        if start < position:
            continue
        out.append(source[position:start])
        out.append(replacement)
        position = end
    out.append(source[position:])
    return "".join(out)


def _probe(template: MaskedTemplate) -> str:
    """The template's tags alone, each marked with its token index, Jinja taken out of them."""

    def clean(value: str) -> str:
        return template.unmask(value, lambda span: "postlinejinja" if span.kind == "expression" else "")

    parts = []
    for index, token in enumerate(template.tokens):
        if isinstance(token, Tag):
            if token.name in _NOT_INLINED_HERE:
                continue
            if token.end_tag:
                parts.append(f"</{token.name}>")
                continue
            attributes = "".join(
                f' {a.name}="{html.escape(html.unescape(clean(a.value or "")))}"'
                for a in token.attributes
                if a.name and a.name != "style" and not a.name.startswith("data-postline-")
            )
            parts.append(f'<{token.name} data-postline-el="{index}"{attributes}>')
        elif isinstance(token, Doctype):
            parts.append(template.masked[token.start : token.end])
    return "".join(parts)


def _skip_space(css: str, position: int) -> int:
    while position < len(css):
        if css[position].isspace():
            position += 1
        elif css.startswith("/*", position):
            end = css.find("*/", position + 2)
            position = len(css) if end < 0 else end + 2
        elif css.startswith("<!--", position):
            position += 4
        elif css.startswith("-->", position):
            position += 3
        else:
            break
    return position


def _scan(css: str, position: int, stop: str) -> int:
    """The offset of the first character of ``stop`` outside strings and comments, or len(css)."""
    while position < len(css):
        char = css[position]
        if char in stop:
            return position
        if char in "\"'":
            end = css.find(char, position + 1)
            position = len(css) if end < 0 else end + 1
            continue
        if css.startswith("/*", position):
            end = css.find("*/", position + 2)
            position = len(css) if end < 0 else end + 2
            continue
        position += 1
    return len(css)


def _matching_brace(css: str, brace: int) -> int:
    depth, position = 0, brace
    while position < len(css):
        position = _scan(css, position, stop="{}")
        if position >= len(css):
            break
        depth += 1 if css[position] == "{" else -1
        if depth == 0:
            return position
        position += 1
    return len(css)


def _split_top_level(text: str, separator: str) -> list[str]:
    parts, depth, quote, start = [], 0, "", 0
    for position, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == separator and depth == 0:
            parts.append(text[start:position])
            start = position + 1
    parts.append(text[start:])
    return parts
