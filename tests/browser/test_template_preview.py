"""``postline templates preview`` opened in Chromium as an author opens it: every template, each of its locales,
the HTML part (in a sandboxed frame, styled as a mail client shows it) beside the text part, with the example data
formatted for each locale; and a template that cannot be rendered shows why on the page."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from postline_cli.main import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# One template per stream: a receipt in three locales, a responsive newsletter with remote images, a sign-in code.
TEMPLATES = {"order-receipt": FIXTURES / "locale-templates" / "order-receipt",
             "newsletter-responsive": FIXTURES / "templates" / "newsletter-responsive",
             "password-code": FIXTURES / "templates" / "password-code"}
# What each locale's HTML and text parts must show, formatted for that locale, and its subject.
RECEIPT = {
    "en": ("Your receipt for order A-1042", "Hello Ada, thank you for your order of December 4, 2026.",
           "Total  €60.97"),
    "de": ("Ihre Rechnung zur Bestellung A-1042", "Hallo Ada, vielen Dank für Ihre Bestellung vom 4. Dezember 2026.",
           "Summe: 60,97\u00a0€"),
    "fr": ("Votre reçu pour la commande A-1042", "Bonjour Ada, merci pour votre commande du 4 décembre 2026.",
           "Total  60,97\u00a0€"),
}


# The newsletter's images are on a CDN this machine cannot reach: the only fetch errors a preview may show.
NEWSLETTER_IMAGES = r"Failed to load resource: net::ERR_\w+ \(https://cdn\.northwind\.example/img/\w+\.jpg\)"


def preview(folder: Path, out: Path):
    return CliRunner().invoke(cli, ["templates", "preview", str(folder), "--out", str(out)])


@pytest.fixture
def templates_dir(tmp_path) -> Path:
    folder = tmp_path / "templates"
    for name, path in TEMPLATES.items():
        shutil.copytree(path, folder / name)
    return folder


def test_the_preview_shows_each_template_in_each_locale_html_beside_text(page, browser_log, screenshot,
                                                                           templates_dir, tmp_path):
    out = tmp_path / "preview.html"
    result = preview(templates_dir, out)
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {out}: 3 template(s), 5 locale variant(s)\n"

    page.context.set_offline(True)  # the page needs nothing from anywhere but the newsletter's images, which fail
    browser_log.allow(NEWSLETTER_IMAGES)
    page.goto(out.as_uri())
    assert page.title() == "Template preview: postline"
    assert page.locator("section.template").evaluate_all("s => s.map(e => e.dataset.template)") == sorted(TEMPLATES)

    receipt = page.locator('section[data-template="order-receipt"]')
    assert receipt.locator("article").evaluate_all("a => a.map(e => e.dataset.locale)") == ["en", "de", "fr"]
    assert receipt.locator("h3").all_inner_texts() == ["en: English (default)", "de: German", "fr: French"]
    for locale, (subject, greeting, total) in RECEIPT.items():
        variant = receipt.locator(f'article[data-locale="{locale}"]')
        assert variant.locator('[data-part="subject"]').inner_text() == subject
        email = page.frame_locator(f'section[data-template="order-receipt"] article[data-locale="{locale}"] iframe')
        assert email.locator("p").first.inner_text() == greeting
        text = variant.locator('[data-part="text"]').inner_text()
        assert text.startswith(greeting) and total in text
        frame, text_part = variant.locator("iframe").bounding_box(), variant.locator("pre").bounding_box()
        assert frame["x"] + frame["width"] <= text_part["x"] and frame["y"] == text_part["y"]  # side by side
        assert frame["height"] > 300 and text_part["height"] > 300
    # The email's own CSS, inlined at publish, styles it inside its frame: the amounts are right-aligned.
    amount = page.frame_locator('article[data-locale="de"] iframe').locator("td.amount").first
    assert amount.evaluate("e => getComputedStyle(e).textAlign") == "right"

    newsletter = page.locator('section[data-template="newsletter-responsive"]')
    assert newsletter.locator("article").evaluate_all("a => a.map(e => e.dataset.locale)") == ["en"]
    links = page.frame_locator('section[data-template="newsletter-responsive"] iframe').locator("a")
    assert "https://example.com/u/preview" in links.evaluate_all("a => a.map(e => e.getAttribute('href'))")
    code = page.locator('section[data-template="password-code"] [data-part="text"]').inner_text()
    assert code.startswith("Hi Ada, use this code to sign in: 482 913\n")

    for frame in page.locator("iframe").all():  # an email runs no script and cannot reach the page
        assert frame.get_attribute("sandbox") == "allow-popups allow-popups-to-escape-sandbox"
    fetched = {url for url in browser_log.requests if url not in (out.as_uri(), "about:srcdoc")}
    assert all(url.startswith("https://") for url in fetched), fetched  # at most the newsletter's images
    shot = screenshot(page, "template-preview")
    # Headless Chromium leaves a frame unpainted in a full-page shot unless it is on screen: each variant too.
    for variant in page.locator("article.variant").all():
        section = variant.locator("xpath=..").get_attribute("data-template")
        variant.screenshot(path=shot.parent / f"template-preview-{section}-{variant.get_attribute('data-locale')}.png")


def test_a_template_that_cannot_render_shows_why_and_fails(page, browser_log, templates_dir, tmp_path):
    (templates_dir / "order-receipt" / "locales" / "de" / "html.j2").write_text(
        "<p>Hallo {{ name }}, {{ total|money('EURO') }}</p>\n")
    out = tmp_path / "preview.html"
    result = preview(templates_dir, out)
    assert result.exit_code == 1
    why = (f"{templates_dir}/order-receipt/locales/de/html.j2:1: cannot render with example.json: money: 'EURO' is not "
           "an ISO 4217 currency code (like EUR or USD), in: <p>Hallo {{ name }}, {{ total|money('EURO') }}</p>")
    assert f"cannot preview: {why}" in result.output

    browser_log.allow(NEWSLETTER_IMAGES)
    page.goto(out.as_uri())
    assert page.locator('section[data-template="order-receipt"] .problem').inner_text() == why
    assert page.locator('section[data-template="password-code"] article').count() == 1  # the others are shown
