"""Browser tests: postline's pages opened in a real headless Chromium (Debian's ``/usr/bin/chromium``), driven by
Playwright for Python (its own driver, never its downloaded browsers).

Fixtures for any browser test:

- ``browser`` (session): one Chromium for the whole run.
- ``page``: a fresh browser context (its own cookies and cache) and page for each test.
- ``browser_log``: what that page's browser said and fetched: ``console_errors``, ``page_errors`` (uncaught
  exceptions), ``requests`` (every URL it asked for). ``browser_log.allow(regex)`` accepts an error the test
  expects; ``browser_log.assert_clean()`` fails on any other. It is checked again after the test, so an error on
  the page fails the test even where the test did not ask.
- ``screenshot(page, name)``: a full-page PNG in ``test-artifacts/screenshots/NAME.png``; returns its path.
- ``web_server(routes)``: serves ``postline_cli.web`` routes on a free loopback port for the test; its base URL.

Without ``/usr/bin/chromium`` these tests are skipped, except on CI (``CI`` set), where that is a failure.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# Headless, and nothing that calls home: this machine's network is closed, and a test must not depend on one.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@dataclass
class BrowserLog:
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Accept console or page errors matching ``pattern`` (a regex searched in the message)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [error for error in self.console_errors + self.page_errors
                if not any(pattern.search(error) for pattern in self.allowed)]

    def assert_clean(self) -> None:
        errors = self.unexpected()
        assert not errors, "the browser reported errors:\n" + "\n".join(errors)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing on CI: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium): the browser tests need it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def page(browser, browser_log):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    context.set_default_timeout(15_000)
    new_page = context.new_page()
    new_page.on("console", lambda message: message.type == "error" and browser_log.console_errors.append(
        f"console error: {message.text} ({message.location.get('url', '')})"))
    new_page.on("pageerror", lambda error: browser_log.page_errors.append(f"uncaught: {error}"))
    new_page.on("request", lambda request: browser_log.requests.append(request.url))
    yield new_page
    context.close()
    browser_log.assert_clean()


@pytest.fixture
def screenshot():
    def take(page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="package")
def browser_stack(tmp_path_factory):
    """One local stack (``postline local up --detach``) for the browser tests that need one; each sends to addresses
    of its own. Down once tests/browser is done."""
    from tests.e2e.conftest import started_stack

    with started_stack(tmp_path_factory.mktemp("browser-stack")) as stack:
        yield stack


@pytest.fixture
def web_server():
    from postline_cli.web.server import make_server

    started = []

    def serve(routes) -> str:
        server = make_server(routes, port=0)
        server.start()
        started.append(server)
        return server.url

    yield serve
    for server in started:
        server.shutdown()
        server.server_close()
