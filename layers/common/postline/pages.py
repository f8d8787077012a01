"""The small HTML pages people see (the unsubscribe confirmation, its results, the not-found page) and the headers
every public response of the HTTP API sends: the URL holds a signed token, so nothing may pass it on (no referrer),
frame the one-click page (frame-ancestors), or run in it (no script is allowed: the pages have none)."""

from __future__ import annotations

import base64
import hashlib
import re

from markupsafe import Markup, escape

from .addresses import mask_address

# The pages are fixed text with a few values: filled in one pass, every value HTML-escaped (a value that is already
# ``Markup``, the body in the layout, goes in as is), exactly as Jinja2 with autoescape rendered them, without
# loading Jinja2 into the unsubscribe function's cold start for it.
_PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>{{ title }}</title>
<style>
body{margin:0;background:#f4f5f7;color:#1f2933;
font:16px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif}
main{max-width:440px;margin:12vh auto;background:#fff;border-radius:12px;padding:36px 32px;
box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}
h1{font-size:22px;margin:0 0 12px}p{margin:0 0 16px;color:#52606d}strong{color:#1f2933}
button{font:inherit;font-weight:600;border:0;border-radius:8px;padding:12px 20px;cursor:pointer;width:100%}
.primary{background:#1f2933;color:#fff}.secondary{background:#e4e7eb;color:#1f2933}
small{display:block;margin-top:20px;color:#7b8794;font-size:13px}
</style></head><body><main>{{ body }}</main></body></html>"""

_CONFIRM = """<h1>Unsubscribe from {{ list_name }}?</h1>
<p><strong>{{ address }}</strong> will stop receiving {{ list_name }}. Password resets, receipts and other
messages about your account will still arrive.</p>
<form method="post"><input type="hidden" name="action" value="unsubscribe">
<button class="primary" type="submit">Unsubscribe</button></form>"""

_DONE = """<h1>You're unsubscribed</h1>
<p><strong>{{ address }}</strong> will no longer receive {{ list_name }}.</p>
<form method="post"><input type="hidden" name="action" value="resubscribe">
<button class="secondary" type="submit">Unsubscribed by mistake? Resubscribe</button></form>
<small>Messages about your account will still arrive.</small>"""

_RESUBSCRIBED = """<h1>Welcome back</h1>
<p><strong>{{ address }}</strong> will receive {{ list_name }} again.</p>"""

_NOT_FOUND = """<h1>This link is not valid</h1><p>It may be incomplete or out of date. If you copied it from an
email, make sure you copied all of it.</p>"""


_METHOD_NOT_ALLOWED = """<h1>Not allowed</h1><p>This link is opened, not changed.</p>"""

_TOO_LARGE = """<h1>Request too large</h1><p>An unsubscribe request is a few words; this one was refused unread.</p>"""

# The pages' one stylesheet, allowed by its hash: no other style, no script, no image, no plugin, no frame.
_STYLE_HASH = base64.b64encode(
    hashlib.sha256(re.search(r"<style>(.*?)</style>", _LAYOUT, re.DOTALL).group(1).encode()).digest()
).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Every public response: never cached (a link's state changes), never sniffed, never a Referer with the token.
PUBLIC_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# And every HTML page: the policy above, and X-Frame-Options for browsers that predate frame-ancestors.
PAGE_HEADERS = {**PUBLIC_HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Frame-Options": "DENY"}
HTML = "text/html; charset=utf-8"
# A POST to an unsubscribe link carries "List-Unsubscribe=One-Click" or the page's one field: a larger body is
# refused from its Content-Length, before it is read.
MAX_POST_BYTES = 8 * 1024


def _fill(template: str, values: dict[str, object]) -> str:
    return _PLACEHOLDER.sub(lambda match: escape(values[match[1]]), template)


def _page(title: str, body_template: str, **values) -> str:
    body = Markup(_fill(body_template, values))  # noqa: S704 - already escaped: insert as is
    return _fill(_LAYOUT, {"title": title, "body": body})


def _list_name(campaign: str | None) -> str:
    return "these emails" if not campaign else f"emails like “{campaign}”"


def _who(address: str | None) -> str:
    """The masked address, or a neutral stand-in once the message's record (and so the address) has expired."""
    return mask_address(address) if address else "Your address"


def confirm_page(address: str | None, campaign: str | None) -> str:
    return _page("Unsubscribe", _CONFIRM, address=_who(address), list_name=_list_name(campaign))


def unsubscribed_page(address: str | None, campaign: str | None) -> str:
    return _page("Unsubscribed", _DONE, address=_who(address), list_name=_list_name(campaign))


def resubscribed_page(address: str | None, campaign: str | None) -> str:
    return _page("Resubscribed", _RESUBSCRIBED, address=_who(address), list_name=_list_name(campaign))


def not_found_page() -> str:
    return _page("Link not valid", _NOT_FOUND)


def method_not_allowed_page() -> str:
    return _page("Not allowed", _METHOD_NOT_ALLOWED)


def too_large_page() -> str:
    return _page("Request too large", _TOO_LARGE)
