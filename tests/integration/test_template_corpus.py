"""The template corpus (tests/fixtures/templates) through the real pipeline on moto: published, rendered, sent,
and every tracked link in the email sent comes back through the click redirect to exactly its original URL."""
from __future__ import annotations

import email
import email.policy
import json
import re
from pathlib import Path

import pytest

from postline.contract import message_id_for
from postline.engagement import EngagementContext, follow_click
from postline.templates import CompiledTemplate
from postline.tracking import unescape_attribute
from postline_cli.publish import load_template_dir, prepare, publish

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
NAMES = sorted(p.name for p in CORPUS.iterdir() if (p / "template.json").exists())
HUMAN = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
TRACKED = re.compile(r'href="https://t\.example\.com/c/([^"]+)"')


def sent_html(pipeline, name: str) -> tuple[str, dict]:
    source = load_template_dir(CORPUS / name)
    publish(prepare(source, "tests"))
    pipeline.enqueue(source.stream, {"template": name, "to": f"{name}@example.org", "data": source.example_data,
                                     "id": f"corpus-{name}"})
    pipeline.drain()
    send = next(s for s in pipeline.ses.sends if s["tags"]["postline_message_id"] == message_id_for(f"corpus-{name}"))
    mime = email.message_from_bytes(send["Content"]["Raw"]["Data"], policy=email.policy.default)
    return mime.get_body(("html",)).get_content(), source.example_data


def links_written(name: str, data: dict) -> list[str]:
    """The http(s) links of the email as its author's template renders them, before tracking, as a browser
    reads them."""
    item = prepare(load_template_dir(CORPUS / name), "tests")
    html = CompiledTemplate.compile(item).render(data, {"unsubscribe_url": "https://t.example.com/u/x"}).html
    html = re.sub(r"<!--.*?-->", "", html, flags=re.DOTALL)
    hrefs = [unescape_attribute(m.group(1) or m.group(2)) for m in
             re.finditer(r"""<a\b[^>]*?\bhref=(?:"([^"]*)"|'([^']*)')""", html)]
    return [h for h in hrefs if h.startswith(("http://", "https://")) and not h.startswith("https://t.example.com/u/")]


@pytest.mark.parametrize("name", [n for n in NAMES if json.loads((CORPUS / n / "template.json").read_text())["stream"]
                                  != "critical"])
def test_every_link_comes_back_through_the_click_redirect_byte_for_byte(pipeline, name):
    html, data = sent_html(pipeline, name)
    ctx = EngagementContext(pipeline.settings, dynamodb=pipeline.session.client("dynamodb"),
                            events=pipeline.session.client("events"),
                            secrets=pipeline.session.client("secretsmanager"), clock=pipeline.clock)
    followed = [follow_click(ctx, token, HUMAN) for token in TRACKED.findall(html)]
    expected = links_written(name, data)
    assert expected and followed == expected
    if (CORPUS / name / "links.json").exists():
        assert followed == json.loads((CORPUS / name / "links.json").read_text())


def test_critical_mail_from_the_corpus_keeps_its_links_untouched(pipeline):
    html, data = sent_html(pipeline, "password-code")
    assert data["secure_url"] in html and not TRACKED.search(html)
