"""Template locales: which variant a message's locale gets (de-AT -> de -> the default), the values formatted in
that locale through Babel, and what publishing says about locale folders it cannot take."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from postline import locales
from postline.templates import CompiledTemplate, TemplateProblem
from postline_cli.publish import load_template_dir, prepare

RECEIPT = Path(__file__).resolve().parents[1] / "fixtures" / "locale-templates" / "order-receipt"
NBSP = "\u00a0"


@pytest.fixture(scope="module")
def receipt() -> tuple[CompiledTemplate, dict]:
    source = load_template_dir(RECEIPT)
    return CompiledTemplate.compile(prepare(source, "tests")), source.example_data


@pytest.fixture
def folder(tmp_path) -> Path:
    copy = tmp_path / "order-receipt"
    shutil.copytree(RECEIPT, copy)
    return copy


@pytest.mark.parametrize("tag, tried", [
    ("de-AT", ["de-at", "de"]), ("de", ["de"]), ("pt_BR", ["pt-br", "pt"]),
    ("zh-Hant-TW", ["zh-hant-tw", "zh-hant", "zh"]), (None, []), ("", []),
])
def test_a_locale_is_tried_from_its_most_specific_tag_to_its_language(tag, tried):
    assert locales.chain(tag) == tried


@pytest.mark.parametrize("message, chosen, formatted", [
    ("de-AT", "de", "de-AT"),  # no de-AT variant: de's text, Austrian formatting
    ("de", "de", "de"),
    ("DE_at", "de", "DE_at"),
    ("de-QQ", "de", "de"),  # well formed but unknown to Babel: the variant's own formatting
    ("en-GB", "en", "en-GB"),  # the default's language: British formatting of the English text
    ("fr", "en", "en"),  # no French variant: English text, English formatting (never French numbers in it)
    ("xx", "en", "en"),
    (None, "en", "en"),
])
def test_the_variant_and_the_formatting_locale_a_message_gets(message, chosen, formatted):
    assert locales.choose(message, "en", {"de": 1, "de-at-x": 1}) == (chosen, formatted)


def test_a_more_specific_variant_wins_over_its_language():
    assert locales.choose("de-AT", "en", {"de": 1, "de-at": 1}) == ("de-at", "de-AT")


@pytest.mark.parametrize("message, locale, subject, total, when", [
    ("de-AT", "de", "Ihre Rechnung zur Bestellung A-1042", f"€{NBSP}60,97", "4. Dezember 2026"),
    ("de", "de", "Ihre Rechnung zur Bestellung A-1042", f"60,97{NBSP}€", "4. Dezember 2026"),
    ("fr-CA", "fr", "Votre reçu pour la commande A-1042", f"60,97{NBSP}€", "4 décembre 2026"),
    ("en-GB", "en", "Your receipt for order A-1042", "€60.97", "4 December 2026"),
    ("ja", "en", "Your receipt for order A-1042", "€60.97", "December 4, 2026"),
    (None, "en", "Your receipt for order A-1042", "€60.97", "December 4, 2026"),
])
def test_a_message_gets_its_locales_variant_with_values_formatted_for_it(receipt, message, locale, subject, total,
                                                                          when):
    template, data = receipt
    rendered = template.render(data, {}, message)
    assert (rendered.locale, rendered.subject) == (locale, subject)
    assert total in rendered.text and total in rendered.html
    assert when in rendered.text and when in rendered.html


def test_a_locale_without_text_j2_gets_a_text_part_made_from_its_own_html(receipt):
    template, data = receipt
    text = template.render(data, {}, "fr").text
    assert text.startswith("Bonjour Ada, merci pour votre commande du 4 décembre 2026.\n")
    assert "Votre reçu en ligne (https://shop.example.com/orders/A-1042?view=receipt)" in text


def test_the_published_version_lists_its_locales_default_first(receipt):
    template, _ = receipt
    assert template.locales == ["en", "de", "fr"]
    item = prepare(load_template_dir(RECEIPT), "tests")
    assert (item.locale, sorted(item.locales)) == ("en", ["de", "fr"])
    assert set(item.locales["de"]) == {"subject", "html", "text"}
    assert '<td style="text-align: right" class="amount">' in item.locales["de"]["html"]  # CSS inlined in each


def test_what_a_message_needs_does_not_depend_on_its_locale(folder):
    (folder / "locales" / "de" / "subject.j2").write_text("Ihre Rechnung {{ order_number }} ({{ shop_name }})\n")
    with pytest.raises(TemplateProblem, match="^order-receipt: example.json lacks shop_name$"):
        prepare(load_template_dir(folder), "tests")
    data = json.loads((folder / "example.json").read_text())
    (folder / "example.json").write_text(json.dumps({**data, "shop_name": "Lumen"}))
    template = CompiledTemplate.compile(prepare(load_template_dir(folder), "tests"))
    assert "shop_name" in template.required
    assert template.missing(data) == ["shop_name"]  # an English message without it is rejected too


def test_a_template_without_locales_keeps_the_hash_it_had(tmp_path):
    import hashlib

    source = load_template_dir(Path(__file__).resolve().parents[2] / "templates" / "welcome")
    item = prepare(source, "tests")
    hashed = json.dumps([source.stream, item.subject, item.html, item.text, item.required, source.from_address,
                         source.example_data], sort_keys=True)
    assert item.content_hash == hashlib.sha256(hashed.encode()).hexdigest()  # re-pushing stores no new version
    assert (item.locale, item.locales) == ("en", None)


# --- the filters ----------------------------------------------------------------------------------------------------

def render_html(html: str, data: dict, locale: str | None = None, default: str | None = None) -> str:
    """``html`` rendered for a message of ``locale``, by a template whose default variant is in that locale."""
    from postline.models import Template

    default = default or locale or "en"
    item = Template("t", 1, stream="transactional", subject="s", html=html, text="t", required=[], locale=default)
    return CompiledTemplate.compile(item).render(data, {}, locale).html


@pytest.mark.parametrize("html, data, locale, shown", [
    ("{{ n|number }}", {"n": 1234567.5}, "de", "1.234.567,5"),
    ("{{ n|number }}", {"n": "1234567.5"}, None, "1,234,567.5"),
    ("{{ r|percent }}", {"r": 0.125}, "en", "12%"),
    ("{{ t|money('usd') }}", {"t": 0.1}, "en-US", "$0.10"),  # through str: never 0.1000000000000000055...
    ("{{ t|money('JPY') }}", {"t": 1200}, "ja", "￥1,200"),
    ("{{ d|date }}", {"d": "2026-12-04"}, "en", "Dec 4, 2026"),
    ("{{ d|date('full') }}", {"d": "2026-12-04"}, "de", "Freitag, 4. Dezember 2026"),
    ("{{ d|date('short', tz='Pacific/Auckland') }}", {"d": "2026-12-04T13:00:00Z"}, "en-NZ", "05/12/2026"),
    ("{{ d|datetime('short', tz='Europe/Vienna') }}", {"d": 1796389200}, "de-AT", "04.12.26, 14:00"),
    ("{{ d|date('yyyy-MM-dd') }}", {"d": "2026-12-04T23:30:00+01:00"}, "en", "2026-12-04"),
])
def test_the_formatting_filters(html, data, locale, shown):
    assert render_html(html, data, locale) == shown


def test_the_default_locale_formats_a_message_without_one():
    assert render_html("{{ t|money('EUR') }}", {"t": 5}, None, default="de") == f"5,00{NBSP}€"


@pytest.mark.parametrize("html, data, error", [
    ("{{ t|money('EURO') }}", {"t": 5}, "money: 'EURO' is not an ISO 4217 currency code (like EUR or USD)"),
    ("{{ t|money('EUR') }}", {"t": "five"}, "money: 'five' is not a number"),
    ("{{ t|number }}", {"t": True}, "number: True is not a number"),
    ("{{ t|number }}", {"t": "NaN"}, "number: 'NaN' is not a number"),
    ("{{ d|date }}", {"d": "04/12/2026"}, "date: '04/12/2026' is not a date (ISO 8601 like 2026-12-04 or "
                                          "2026-12-04T09:30:00Z, or epoch seconds)"),
    ("{{ d|datetime(tz='Mars/Olympus') }}", {"d": 0}, "datetime: unknown time zone 'Mars/Olympus' (an IANA name like "
                                                      "Europe/Berlin)"),
])
def test_a_value_a_filter_cannot_format_rejects_the_message_with_the_reason(html, data, error):
    with pytest.raises(TemplateProblem) as raised:
        render_html(html, data)
    assert str(raised.value) == f"cannot render t@1 with this data: {error} (html line 1)"


def test_a_render_failure_in_a_locale_names_it(receipt):
    template, data = receipt
    with pytest.raises(TemplateProblem) as raised:
        template.render({**data, "total": "lots"}, {}, "de-AT")
    assert str(raised.value) == ("cannot render order-receipt@1 with this data: money: 'lots' is not a number "
                                 "(de html line 11)")
    assert (raised.value.locale, raised.value.part, raised.value.line) == ("de", "html", 11)


# --- what publishing refuses ---------------------------------------------------------------------------------------

def test_publishing_names_the_locale_file_and_line_that_does_not_render(folder):
    (folder / "locales" / "fr" / "html.j2").write_text("<p>Bonjour {{ name }}</p>\n<p>{{ total|money(name) }}</p>\n")
    with pytest.raises(TemplateProblem) as raised:
        prepare(load_template_dir(folder), "tests")
    assert str(raised.value) == (f"{folder}/locales/fr/html.j2:2: cannot render with example.json: money: 'Ada' is "
                                 "not an ISO 4217 currency code (like EUR or USD), in: <p>{{ total|money(name) }}</p>")


def test_publishing_names_a_syntax_error_in_a_locale_subject(folder):
    (folder / "locales" / "de" / "subject.j2").write_text("Rechnung {{ order_number \n")
    with pytest.raises(TemplateProblem, match=f"^{folder}/locales/de/subject.j2: unexpected end of template"):
        prepare(load_template_dir(folder), "tests")


@pytest.mark.parametrize("setup, error", [
    (lambda f: (f / "locales" / "deutsch").mkdir(),
     "{f}/locales/deutsch: not a locale; name the folder by a BCP 47 tag such as de or de-AT"),
    (lambda f: (f / "locales" / "de" / "subject.j2").unlink(),
     "{f}/locales/de: no subject.j2 (a locale has its own subject.j2 and html.j2; text.j2 is optional)"),
    (lambda f: shutil.copytree(f / "locales" / "de", f / "locales" / "en"),
     "{f}/locales/en: the template's default locale (template.json's locale): its files are the folder's own"),
    (lambda f: shutil.copytree(f / "locales" / "de", f / "locales" / "DE"),
     "{f}/locales/de: the same locale as locales/DE"),  # DE sorts first
    (lambda f: (f / "template.json").write_text(json.dumps({"stream": "transactional", "subject": "x",
                                                             "locale": "english"})),
     "{f}/template.json: locale 'english' is not a locale (a BCP 47 tag such as en or en-GB)"),
])
def test_locale_folders_publishing_refuses(folder, setup, error):
    setup(folder)
    with pytest.raises(TemplateProblem) as raised:
        load_template_dir(folder)
    assert str(raised.value) == error.format(f=folder)


def test_every_locale_of_a_marketing_template_must_show_the_unsubscribe_link(folder):
    meta = json.loads((folder / "template.json").read_text())
    (folder / "template.json").write_text(json.dumps({**meta, "stream": "marketing"}))
    for html in [folder / "html.j2", *folder.glob("locales/*/html.j2")]:
        html.write_text(html.read_text().replace("</body>", '<a href="{{ unsubscribe_url }}">x</a></body>'))
    (folder / "locales" / "fr" / "html.j2").write_text("<p>Bonjour {{ name }}</p>\n")
    with pytest.raises(TemplateProblem) as raised:
        prepare(load_template_dir(folder), "tests")
    assert str(raised.value) == (f"{folder}/locales/fr/html.j2: a marketing template must show a link to "
                                 "{{ unsubscribe_url }}")


def test_a_version_too_large_for_one_dynamodb_item_is_refused(folder):
    filler = "<p>" + "x" * 1000 + "</p>\n"
    for html in folder.glob("locales/*/html.j2"):
        html.write_text(html.read_text().replace("<body>", "<body>" + filler * 150))
    with pytest.raises(TemplateProblem) as raised:
        prepare(load_template_dir(folder), "tests")
    assert str(raised.value).startswith(f"{folder}: ")
    assert "KB to store with its 3 locale(s), over DynamoDB's 400 KB for one template version" in str(raised.value)
