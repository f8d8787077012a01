"""Open pixel and click-tracking links, added to a rendered HTML body.

Every ``<a href>`` to an http(s) URL is replaced by a signed ``/c/<token>`` link whose token carries the
original URL as written (query string, fragment and non-ASCII characters included), with any control character
or space percent-encoded: a line break in a target could otherwise split the redirect's ``Location`` header
(a browser drops such characters from a link anyway). Links marked
``data-postline-notrack``, ``mailto:``/``tel:`` links, in-page anchors and the unsubscribe link stay as they are.
"""

from __future__ import annotations

import html
import re
from html.entities import html5 as _ENTITIES

from .tokens import CLICK, OPEN, KeyRing, RefreshingKeyRing

_ANCHOR_TAG = re.compile(r"""<a\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_HREF = re.compile(r"""(\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>=`<]+))""", re.IGNORECASE)
_CHARACTER_REFERENCE = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)")
_NOTRACK = re.compile(r"\s+data-postline-notrack(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f]")


def unescape_attribute(value: str) -> str:
    """An attribute value as a browser reads it. Unlike ``html.unescape``, a named reference without its ``;``
    followed by ``=`` or a letter or digit stays as written (HTML's rule for attributes), so the query string
    ``?a=1&copy=2`` keeps its ``&copy`` and does not become ``©``."""

    def decode(match: re.Match) -> str:
        reference = match.group(1)
        if reference.startswith("#"):
            return html.unescape(match.group())
        if reference.endswith(";"):
            return _ENTITIES.get(reference, match.group())
        following = value[match.end() : match.end() + 1]
        if reference in _ENTITIES and following != "=":
            return _ENTITIES[reference]
        return match.group()  # a longer name, or one followed by "=": not a reference in an attribute

    return _CHARACTER_REFERENCE.sub(decode, value)


def safe_target(url: str) -> str:
    """``url`` with its control characters and spaces percent-encoded (CR LF become %0D%0A)."""
    return UNSAFE_IN_URL.sub(lambda match: f"%{ord(match.group()):02X}", url)


def add_tracking(
    body: str,
    message_id: str,
    keys: KeyRing | RefreshingKeyRing,
    base_url: str,
    untracked: frozenset[str] = frozenset(),
) -> str:
    def rewrite(match: re.Match) -> str:
        tag = match.group(0)
        if _NOTRACK.search(tag):
            return _NOTRACK.sub("", tag)
        href = _HREF.search(tag)
        if not href:
            return tag
        written = next(group for group in href.groups()[1:] if group is not None)
        target = unescape_attribute(written).strip()
        if not target.lower().startswith(("http://", "https://")) or target in untracked:
            return tag
        tracked = f"{base_url}/c/{keys.sign(CLICK, message_id, safe_target(target))}"
        return tag[: href.start()] + f'{href.group(1)}"{tracked}"' + tag[href.end() :]

    body = _ANCHOR_TAG.sub(rewrite, body)
    pixel = (
        f'<img src="{base_url}/o/{keys.sign(OPEN, message_id)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;opacity:0" />'
    )
    if _BODY_END.search(body):
        return _BODY_END.sub(lambda m: pixel + m.group(0), body, count=1)
    return body + pixel
