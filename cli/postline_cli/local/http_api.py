"""The local HTTP API: a real HTTP server that turns each request into the API Gateway HTTP API (payload 2.0)
event and calls the same handler the route has in AWS."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from postline.pages import MAX_POST_BYTES

from .runner import FUNCTIONS_DIR, LambdaContext, load_handler_module, use_clock

# (method, route key path, function): the routes the CDK stack gives the HTTP API. As in API Gateway, a method's own
# route comes first and ANY takes the rest (HEAD, OPTIONS, and the methods each function answers 405).
ROUTES = (
    ("GET", "/o/{token}", "track_open"),
    ("GET", "/c/{token}", "track_click"),
    ("GET", "/u/{token}", "unsubscribe"),
    ("POST", "/u/{token}", "unsubscribe"),
    ("ANY", "/o/{token}", "track_open"),
    ("ANY", "/c/{token}", "track_click"),
    ("ANY", "/u/{token}", "unsubscribe"),
)
# What the server reads of a request body at most, what the unsubscribe function allows: past it the body is left
# unread, the function refuses it from its Content-Length, and the connection is closed.
MAX_READ_BYTES = MAX_POST_BYTES


def _pattern(route: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route)) + "$")


def api_event(
    method: str,
    raw_path: str,
    headers: dict[str, str],
    body: bytes,
    route: str,
    path_parameters: dict[str, str],
    source_ip: str,
    route_method: str | None = None,
) -> dict:
    path, _, query = raw_path.partition("?")
    lowered = {k.lower(): v for k, v in headers.items()}
    text_body = None
    is_base64 = False
    if body:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, is_base64 = base64.b64encode(body).decode(), True
    return {
        "version": "2.0",
        "routeKey": f"{route_method or method} {route}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{route_method or method} {route}",
            "stage": "$default",
            "timeEpoch": int(time.time() * 1000),
        },
        "pathParameters": path_parameters,
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


class LocalHttpApi:
    def __init__(self, host: str, port: int, clock=None):
        self.clock = clock  # the local stack's clock for the routes' functions; None: real time
        self.routes = []
        for method, route, function in ROUTES:
            if (FUNCTIONS_DIR / function / "app.py").exists():
                self.routes.append((method, route, _pattern(route), function))
        self._handlers: dict[str, object] = {}
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # requests are visible through the functions' own logs
                pass

            def _serve(self, method: str) -> None:
                declared = self.headers.get("Content-Length") or "0"
                length = int(declared) if declared.isdigit() else 0
                body = b""
                if length > MAX_READ_BYTES:  # refused unread: what is left of it cannot be skipped safely
                    self.close_connection = True
                elif length:
                    body = self.rfile.read(length)
                status, headers, payload = api.dispatch(
                    method, self.path, dict(self.headers), body, self.client_address[0]
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(payload)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_HEAD(self) -> None:
                self._serve("HEAD")

            def do_OPTIONS(self) -> None:
                self._serve("OPTIONS")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True

    def handler_for(self, function: str):
        with self._lock:
            if function not in self._handlers:
                module = load_handler_module(function)
                if self.clock:
                    use_clock({function: module}, self.clock)
                self._handlers[function] = module.handler
            return self._handlers[function]

    def dispatch(self, method: str, raw_path: str, headers: dict, body: bytes, source_ip: str):
        path = urlsplit(raw_path).path
        if method in ("GET", "HEAD") and path == "/":
            listing = {"service": "postline local HTTP API", "routes": [f"{m} {r}" for m, r, _, _ in self.routes]}
            return 200, {"Content-Type": "application/json"}, json.dumps(listing).encode()
        for route_method, route, pattern, function in self.routes:
            match = pattern.match(path)
            if match and route_method in (method, "ANY"):
                event = api_event(method, raw_path, headers, body, route, match.groupdict(), source_ip, route_method)
                return self._respond(self.handler_for(function)(event, LambdaContext(function)))
        return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"Not found\n"

    @staticmethod
    def _respond(response: dict):
        payload = response.get("body") or ""
        data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        headers = dict(response.get("headers") or {})
        return int(response.get("statusCode", 200)), headers, data

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, name="http-api", daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
