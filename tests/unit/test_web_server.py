"""The local web server's rules (routes, the Host check, CSRF, security headers), through ``WebApp``: no socket."""
from __future__ import annotations

import re

import pytest

from postline_cli.web.server import (
    CONTENT_SECURITY_POLICY,
    Response,
    Route,
    WebApp,
    csrf_input,
    escape,
    page,
    response_headers,
)

PORT = 8025
HOST = {"host": f"127.0.0.1:{PORT}"}


def echo(request) -> Response:
    return Response(f"{request.method} {request.params} {request.query} {request.form}", content_type="text/plain")


@pytest.fixture
def app() -> WebApp:
    return WebApp([Route("GET", "/campaigns/{name}", echo), Route("POST", "/campaigns/{name}/pause", echo),
                   Route("GET", "/form", lambda request: page("Form", f"<form>{csrf_input(request)}</form>"))], PORT)


def post(app: WebApp, form: str, **headers: str) -> Response:
    return app.respond("POST", "/campaigns/december/pause", {**HOST, **headers}, form.encode())


def test_a_route_gets_its_path_parameters_decoded_and_the_query():
    response = WebApp([Route("GET", "/campaigns/{name}", echo)], PORT).respond(
        "GET", "/campaigns/d%C3%A9cembre%202026?days=7", HOST)
    assert response.body == "GET {'name': 'décembre 2026'} {'days': '7'} {}"


def test_unknown_paths_are_404_and_known_paths_with_another_method_are_405(app):
    assert app.respond("GET", "/nothing", HOST).status == 404
    assert app.respond("GET", "/campaigns/a/b", HOST).status == 404  # a parameter is one path segment
    refused = app.respond("GET", "/campaigns/december/pause", HOST)
    assert (refused.status, refused.headers["Allow"]) == (405, "POST")


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1:9999", ""])
def test_a_request_naming_another_host_is_refused_so_dns_rebinding_reads_nothing(app, host):
    assert app.respond("GET", "/campaigns/december", {"host": host}).status == 421


def test_localhost_on_the_same_port_is_this_server_too(app):
    assert app.respond("GET", "/campaigns/december", {"host": f"localhost:{PORT}"}).status == 200


def test_a_post_with_the_servers_token_from_its_own_origin_is_handled(app):
    response = post(app, f"csrf_token={app.csrf_token}&note=x", origin=f"http://127.0.0.1:{PORT}")
    assert response.status == 200
    assert "'note': 'x'" in response.body


def test_a_post_may_carry_the_token_as_a_header_for_scripts(app):
    assert post(app, "", **{"x-csrf-token": app.csrf_token}).status == 200


@pytest.mark.parametrize("form, origin", [
    ("", f"http://127.0.0.1:{PORT}"),  # no token
    ("csrf_token=guessed", f"http://127.0.0.1:{PORT}"),
    ("csrf_token={token}", "https://evil.example"),  # the token leaked, but another site posts it
    ("csrf_token={token}", "null"),  # a sandboxed or file: page
])
def test_a_post_without_the_token_or_from_another_origin_is_refused(app, form, origin):
    response = post(app, form.format(token=app.csrf_token), origin=origin)
    assert response.status == 403


def test_each_server_has_its_own_token_and_pages_embed_it(app):
    assert app.csrf_token != WebApp([], PORT).csrf_token
    assert len(app.csrf_token) >= 32
    form = app.respond("GET", "/form", HOST).body
    assert f'name="csrf_token" value="{app.csrf_token}"' in form


def test_every_response_carries_the_security_headers():
    headers = response_headers(Response("x"))
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"


def test_the_policy_names_no_remote_origin_and_no_inline_script():
    sources = " ".join(part.split(" ", 1)[1] for part in CONTENT_SECURITY_POLICY.split("; "))
    assert not re.search(r"https?:|\*|'unsafe-inline'|'unsafe-eval'", sources)
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


def test_a_response_may_replace_a_security_header_for_itself():
    own = response_headers(Response("x", headers={"Content-Security-Policy": "default-src 'none'"}))
    assert own["Content-Security-Policy"] == "default-src 'none'"
    assert own["X-Content-Type-Options"] == "nosniff"


def test_escape_makes_text_safe_in_html_and_in_quoted_attributes():
    assert escape('<img src=x onerror="alert(1)">') == "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
    assert escape("it's") == "it&#x27;s"
    assert escape(None) == ""


def test_a_page_escapes_its_title_and_links_only_local_files():
    document = page("<b>Outbox</b>", "<p>body</p>").body
    assert "<title>&lt;b&gt;Outbox&lt;/b&gt; · postline</title>" in document
    assert re.findall(r'(?:href|src)="([^"]+)"', document) == ["data:,", "/static/postline.css"]
