"""A small web server for postline's local pages (the outbox viewer, the dashboard), on 127.0.0.1 only.

Why the standard library: these pages serve one person on their own machine. ``http.server``'s
ThreadingHTTPServer is enough for that, and a web framework or ASGI server would be one more dependency for a
tool that is never deployed.

A page on 127.0.0.1 is still reachable by every other site open in the same browser, so:

- the socket is bound to 127.0.0.1 and every request must name this server in its Host header (127.0.0.1:PORT
  or localhost:PORT), which stops DNS rebinding: another site's name pointed at 127.0.0.1 gets 421;
- every response carries a Content-Security-Policy naming no remote origin, ``nosniff``, ``Referrer-Policy:
  same-origin`` (the pages' URLs never leak to the sites they link to; ``no-referrer`` would have a browser post
  forms with ``Origin: null``, which the CSRF check below refuses) and, unless a route says otherwise, may not be
  framed;
- every POST must carry the server's CSRF token (random per server, put in pages by ``csrf_input``, or sent as
  the ``X-CSRF-Token`` header) and, when the browser sends an Origin, come from this server's own origin.

Routes are ``Route(method, "/path/{name}", handler)``; a handler takes a ``Request`` and returns a ``Response``.
``make_server(routes, port)`` builds the server (port 0: any free port, see ``server.url``), ``serve`` runs it;
``WebApp`` is the same without the socket, for tests.
"""

from __future__ import annotations

import hmac
import html
import mimetypes
import re
import secrets
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

HOST = "127.0.0.1"
DEFAULT_PORT = 8025
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY_BYTES = 64 * 1024  # forms only: a pause button, a filter
STATIC_DIR = Path(__file__).parent / "static"

# Only this server's own files: no CDN, no remote font, no inline script. Inline styles are refused as well.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",  # the pages show live state and email addresses: keep them out of the disk cache
}


def escape(value: object) -> str:
    """``value`` as text safe inside HTML and inside a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def url_part(value: str) -> str:
    """``value`` as one path segment or query value of a URL (everything but unreserved characters escaped)."""
    return quote(value, safe="")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]  # from the route's {names}
    query: dict[str, str]
    form: dict[str, str]  # a POST's urlencoded body
    headers: dict[str, str]  # lower-case names
    csrf_token: str  # this server's token, for the forms a page builds


@dataclass(frozen=True)
class Response:
    body: bytes | str = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)  # added to, or replacing, the security headers


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # "/outbox/{message_id}": each {name} matches one path segment
    handler: Handler

    def match(self, path: str) -> dict[str, str] | None:
        found = _compiled(self.pattern).match(path)
        return {name: unquote(value) for name, value in found.groupdict().items()} if found else None


_PATTERNS: dict[str, re.Pattern] = {}


def _compiled(pattern: str) -> re.Pattern:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$")
    return _PATTERNS[pattern]


def redirect(location: str, status: int = 303) -> Response:
    return Response(status=status, headers={"Location": location})


def text_response(text: str, status: int) -> Response:
    return Response(text, status, "text/plain; charset=utf-8")


def csrf_input(request: Request) -> str:
    """The hidden form field every POST form of these pages must carry."""
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(request.csrf_token)}">'


def page(
    title: str, body: str, *, status: int = 200, stylesheets: tuple[str, ...] = (), scripts: tuple[str, ...] = ()
) -> Response:
    """A whole HTML page with the shared stylesheet. ``body`` is HTML the caller has escaped; ``stylesheets``
    and ``scripts`` are URLs on this server (inline ones are refused by the policy)."""
    links = "".join(f'<link rel="stylesheet" href="{escape(href)}">' for href in ("/static/postline.css", *stylesheets))
    tags = "".join(f'<script src="{escape(src)}" defer></script>' for src in scripts)
    document = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,">'  # no /favicon.ico request (and no 404 in the console)
        f"<title>{escape(title)} · postline</title>{links}{tags}</head>\n<body>{body}</body></html>\n"
    )
    return Response(document, status)


def static_routes(directory: Path = STATIC_DIR, prefix: str = "/static/") -> list[Route]:
    """GET ``prefix`` + a file name: the files directly inside ``directory`` (no sub-folders, no ``..``)."""
    files = {path.name: path for path in directory.iterdir() if path.is_file()}

    def serve_file(request: Request) -> Response:
        path = files.get(request.params["name"])
        if path is None:
            return text_response("Not found\n", 404)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        return Response(path.read_bytes(), content_type=content_type)

    return [Route("GET", prefix + "{name}", serve_file)]


class WebApp:
    """The routes and the checks every request passes, apart from the socket (``LocalWebServer`` serves it)."""

    def __init__(self, routes: list[Route], port: int):
        self.routes = list(routes)
        self.csrf_token = secrets.token_urlsafe(32)
        self.allowed_hosts = {f"{HOST}:{port}", f"localhost:{port}"}

    def respond(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Response:
        """The response to one request; ``headers`` with lower-case names."""
        if headers.get("host", "").lower() not in self.allowed_hosts:
            return text_response("This server answers only as http://127.0.0.1 on its own port.\n", 421)
        split = urlsplit(target)
        allowed_methods = []
        for route in self.routes:
            params = route.match(split.path)
            if params is None:
                continue
            if route.method != method:
                allowed_methods.append(route.method)
                continue
            form = dict(parse_qsl(body.decode("utf-8", "replace"))) if method == "POST" else {}
            if method == "POST" and not self._post_allowed(headers, form):
                return text_response(
                    "Refused: this form did not come from this server's own page (reload the page and try again).\n",
                    403,
                )
            return route.handler(
                Request(method, split.path, params, dict(parse_qsl(split.query)), form, headers, self.csrf_token)
            )
        if allowed_methods:
            return Response(
                "Method not allowed\n",
                405,
                "text/plain; charset=utf-8",
                {"Allow": ", ".join(sorted(set(allowed_methods)))},
            )
        return text_response("Not found\n", 404)

    def _post_allowed(self, headers: dict[str, str], form: dict[str, str]) -> bool:
        token = form.get(CSRF_FIELD) or headers.get(CSRF_HEADER.lower(), "")
        if not hmac.compare_digest(token.encode(), self.csrf_token.encode()):
            return False
        origin = headers.get("origin")
        return origin is None or origin.lower() in {f"http://{host}" for host in self.allowed_hosts}


def response_headers(response: Response) -> dict[str, str]:
    """The headers sent with ``response``: the security headers, then the response's own (which may replace
    them: the outbox's email document has its own policy)."""
    return {
        "Content-Type": response.content_type,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        **SECURITY_HEADERS,
        **response.headers,
    }


class LocalWebServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: list[Route], port: int):
        super().__init__((HOST, port), _RequestHandler)
        self.port = self.server_address[1]
        self.app = WebApp(routes, self.port)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def csrf_token(self) -> str:
        return self.app.csrf_token

    def start(self) -> threading.Thread:
        """Serve on a background thread (tests, or beside other work); ``shutdown()`` stops it."""
        thread = threading.Thread(target=self.serve_forever, name="postline-web", daemon=True)
        thread.start()
        return thread


class _RequestHandler(BaseHTTPRequestHandler):
    server: LocalWebServer
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:  # the Server header: no Python version for a scanner to match
        return "postline"

    def log_message(self, format: str, *args) -> None:
        pass  # a URL can name a message; the pages are the interface, not an access log

    def _handle(self, method: str) -> None:
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self._send(text_response("Request too large, or its length unreadable\n", 413), method)
            self.close_connection = True  # its body, unread, must not be taken for the next request
            return
        size = int(length)
        body = self.rfile.read(size) if size else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            response = self.server.app.respond("GET" if method == "HEAD" else method, self.path, headers, body)
        except Exception:  # noqa: BLE001 - one failing page must not stop the server; the trace goes to stderr
            traceback.print_exc(file=sys.stderr)
            response = text_response("Internal error: see the terminal running the server.\n", 500)
        self._send(response, method)

    def _send(self, response: Response, method: str) -> None:
        payload = response.body.encode() if isinstance(response.body, str) else response.body
        self.send_response(response.status)
        for name, value in {**response_headers(response), "Content-Length": str(len(payload))}.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")


def make_server(routes: list[Route], port: int = DEFAULT_PORT) -> LocalWebServer:
    """A server for ``routes`` plus the shared static files, bound to 127.0.0.1:``port`` (0: any free port).
    OSError when the port is taken."""
    return LocalWebServer([*routes, *static_routes()], port)


def serve(server: LocalWebServer) -> None:
    """Serve until Ctrl-C (or SIGTERM's KeyboardInterrupt), then close the socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
