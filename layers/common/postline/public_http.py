"""What each route of the public HTTP API answers besides its own methods: HEAD like GET without its effect,
OPTIONS with the methods allowed, any other method 405 with ``Allow``; and a POST body past MAX_POST_BYTES refused
from its Content-Length. Every answer carries the public headers (postline.pages)."""

from __future__ import annotations

import base64
import binascii

from aws_lambda_powertools.event_handler import Response

from .pages import HTML, MAX_POST_BYTES, PAGE_HEADERS, PUBLIC_HEADERS, method_not_allowed_page, too_large_page

# Every method API Gateway's ANY route passes on, but GET and HEAD (each route answers those itself).
_OTHERS = ("POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def other_methods(allowed: tuple[str, ...]) -> list[str]:
    """The methods a route registers ``answer_other`` for: those it does not serve itself."""
    return [method for method in _OTHERS if method not in allowed]


def allow_header(allowed: tuple[str, ...]) -> str:
    return ", ".join((*allowed, "OPTIONS"))


def answer_other(method: str, allowed: tuple[str, ...]) -> Response:
    """OPTIONS: 204 with ``Allow`` (no CORS: no other site's script has any use for these routes); else 405."""
    headers = {"Allow": allow_header(allowed)}
    if method.upper() == "OPTIONS":
        return Response(204, "text/plain; charset=utf-8", "", headers={**PUBLIC_HEADERS, **headers})
    return Response(405, HTML, method_not_allowed_page(), headers={**PAGE_HEADERS, **headers})


def page(body: str, status: int = 200) -> Response:
    return Response(status, HTML, body, headers=dict(PAGE_HEADERS))


def headers_only(response: Response) -> Response:
    """The answer to HEAD: GET's status and headers, no body."""
    response.body = ""
    return response


def body_text(body: str | None, is_base64_encoded: bool) -> str:
    """A request's body as text, whatever its bytes: API Gateway passes a body that is not UTF-8 in base64, and one
    that cannot be decoded is read with U+FFFD in place of its bad bytes (it then asks for nothing in particular),
    never an error."""
    if not body:
        return ""
    if not is_base64_encoded:
        return body
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", "replace")


def too_large(headers: dict[str, str], body: str | None) -> Response | None:
    """413 for a body past MAX_POST_BYTES, judged by its Content-Length before anything reads it (and by its length
    when a proxy sent none); None for a body of a fair size."""
    declared = headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else len(body or "")
    if size > MAX_POST_BYTES:
        return page(too_large_page(), 413)
    return None
