"""Locales through the real pipeline on moto: a message's ``locale`` picks the template's variant as published
(de-AT gets de, with Austrian formatting; a locale the template lacks gets the default), and the operator sees the
locales in ``templates list`` and previews one with ``templates render --locale``."""
from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from postline.contract import message_id_for
from postline.models import Message
from postline_cli import main
from postline_cli.local import resources
from postline_cli.main import cli
from postline_cli.publish import load_template_dir, prepare, publish
from postline_cli.target import Target

RECEIPT = Path(__file__).resolve().parents[1] / "fixtures" / "locale-templates" / "order-receipt"
NBSP = "\u00a0"


@pytest.fixture
def published(pipeline, monkeypatch):
    source = load_template_dir(RECEIPT)
    publish(prepare(source, "tests"))
    where = Target(None, dict(resources.TABLES), {}, resources.SIGNING_SECRET, resources.CLAIM_CHECK_BUCKET,
                   resources.SCHEDULE_GROUP)
    monkeypatch.setattr(main, "target", lambda: where)
    return pipeline, source.example_data


def sent(pipeline, key: str):
    send = next(s for s in pipeline.ses.sends if s["tags"]["postline_message_id"] == message_id_for(key))
    return email.message_from_bytes(send["Content"]["Raw"]["Data"], policy=email.policy.default)


@pytest.mark.parametrize("locale, subject, greeting, total", [
    ("de-AT", "Ihre Rechnung zur Bestellung A-1042", "Hallo Ada, vielen Dank für Ihre Bestellung vom 4. Dezember 2026.",
     f"Summe: €{NBSP}60,97"),
    ("de", "Ihre Rechnung zur Bestellung A-1042", "Hallo Ada, vielen Dank für Ihre Bestellung vom 4. Dezember 2026.",
     f"Summe: 60,97{NBSP}€"),
    ("pt-BR", "Your receipt for order A-1042", "Hello Ada, thank you for your order of December 4, 2026.",
     "Total  €60.97"),
    (None, "Your receipt for order A-1042", "Hello Ada, thank you for your order of December 4, 2026.",
     "Total  €60.97"),
])
def test_a_messages_locale_picks_the_variant_it_is_sent_in(published, locale, subject, greeting, total):
    pipeline, data = published
    key = f"receipt-{locale}"
    pipeline.enqueue("transactional", {"template": "order-receipt", "to": "ada@example.com", "data": data, "id": key,
                                       **({"locale": locale} if locale else {})})
    pipeline.drain()
    mime = sent(pipeline, key)
    assert mime["Subject"] == subject
    text = mime.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith(greeting + "\n") and total in text
    html = mime.get_body(("html",)).get_content()
    assert greeting in html and total.split(" ")[-1] in html
    assert Message.get(message_id_for(key)).status == "sent"


def test_a_value_the_variant_cannot_format_rejects_that_message_with_the_reason(published):
    pipeline, data = published
    pipeline.enqueue("transactional", {"template": "order-receipt", "to": "ada@example.com", "id": "bad-total",
                                       "locale": "de-AT", "data": {**data, "total": "sixty"}})
    pipeline.drain()
    record = Message.get(message_id_for("bad-total"))
    assert (record.status, record.reason) == (
        "rejected", "cannot render order-receipt@1 with this data: money: 'sixty' is not a number (de html line 11)")
    assert not pipeline.ses.sends


def test_templates_list_shows_each_templates_locales(published):
    result = CliRunner().invoke(cli, ["templates", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = {item["name"]: item for item in json.loads(result.stdout)}
    assert (listed["order-receipt"]["locale"], listed["order-receipt"]["locales"]) == ("en", ["en", "de", "fr"])
    assert listed["welcome"]["locales"] == ["en"]  # a sample without locales: its default alone
    table = CliRunner().invoke(cli, ["templates", "list"]).stdout
    assert "en, de, fr" in table


def test_templates_render_previews_a_locale(published):
    result = CliRunner().invoke(cli, ["templates", "render", "order-receipt", "--locale", "de-AT"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == ["order-receipt@1 (transactional, locale de (default en))",
                         "Subject: Ihre Rechnung zur Bestellung A-1042", ""]
    assert f"Summe: €{NBSP}60,97" in lines
    as_json = json.loads(CliRunner().invoke(cli, ["templates", "render", "order-receipt", "--locale", "ja",
                                                  "--json"]).stdout)
    assert (as_json["locale"], as_json["subject"]) == ("en", "Your receipt for order A-1042")


def test_templates_render_refuses_a_malformed_locale(published):
    result = CliRunner().invoke(cli, ["templates", "render", "order-receipt", "--locale", "german please"])
    assert result.exit_code == 2
    assert result.stderr == "error: --locale 'german please' is not a locale (a BCP 47 tag such as de or de-AT)\n"


def test_templates_lint_of_a_published_template_checks_its_variants(published):
    from postline.models import ACTIVE_POINTER_VERSION, Template

    active = int(Template.get("order-receipt", ACTIVE_POINTER_VERSION).active_version)
    item = Template.get("order-receipt", active)
    item.locales["de"]["html"] += '\n<img src="https://example.com/logo.png">'
    item.save()
    result = CliRunner().invoke(cli, ["templates", "lint", "order-receipt", "--json"])
    findings = json.loads(result.stdout)["findings"]
    assert [(f["rule"], f["file"]) for f in findings] == [("image-alt", f"order-receipt@{active}/locales/de/html.j2")]
