"""Publishing templates: the shipped samples publish cleanly, and templates that would send broken or
non-compliant mail are refused before they are stored."""
from __future__ import annotations

import json
import re
import socket
from html.parser import HTMLParser
from pathlib import Path

import pytest

from postline.templates import CompiledTemplate, TemplateProblem
from postline_cli.publish import load_template_dir, prepare

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SAMPLES = sorted(p.name for p in TEMPLATES.iterdir() if (p / "template.json").exists())


@pytest.fixture(autouse=True)
def no_aws(monkeypatch):
    """prepare() must work offline: any AWS call or network connection fails the test."""
    import botocore.client

    def refuse(*args, **kwargs):
        raise AssertionError("prepare() must not call AWS or open a connection")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


class Elements(HTMLParser):
    """(tag, attributes) of every start tag."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def make_template(root: Path, name: str, *, stream="transactional", subject="Hello {{ name }}", html=None,
                  text=None, example=None, optional=None) -> Path:
    folder = root / name
    folder.mkdir()
    meta = {"stream": stream, "subject": subject, "description": "test"}
    if optional is not None:
        meta["optional"] = optional
    (folder / "template.json").write_text(json.dumps(meta))
    (folder / "html.j2").write_text(html if html is not None else "<html><body><p>Hi {{ name }}</p></body></html>")
    if text is not None:
        (folder / "text.j2").write_text(text)
    (folder / "example.json").write_text(json.dumps(example if example is not None else {"name": "Ada"}))
    return folder


# --- the shipped samples -----------------------------------------------------------------------------------------

def test_the_samples_are_all_there():
    assert set(SAMPLES) >= {"welcome", "password-reset", "order-confirmation", "invoice", "newsletter"}


@pytest.mark.parametrize("name", SAMPLES)
def test_each_sample_prepares_and_renders_its_example(name):
    source = load_template_dir(TEMPLATES / name)
    item = prepare(source, author="tester")
    meta = json.loads((TEMPLATES / name / "template.json").read_text())
    assert (item.name, item.stream, item.subject) == (name, meta["stream"], meta["subject"])
    assert item.author == "tester" and item.content_hash
    assert set(item.required) <= set(source.example_data)
    assert not set(item.required) & set(meta.get("optional", []))
    rendered = CompiledTemplate.compile(item).render(source.example_data,
                                                     {"unsubscribe_url": "https://links.example.com/u/t"})
    assert rendered.subject and "{{" not in rendered.subject
    assert "{{" not in rendered.html and "{{" not in rendered.text


@pytest.mark.parametrize("name", SAMPLES)
def test_each_sample_has_its_css_inlined(name):
    source_elements = Elements((TEMPLATES / name / "html.j2").read_text()).found
    stored_elements = Elements(prepare(load_template_dir(TEMPLATES / name), "t").html).found
    unstyled_in_source = {(tag, attrs.get("class")) for tag, attrs in source_elements
                          if attrs.get("class") and "style" not in attrs}
    styled_after = {(tag, attrs.get("class")) for tag, attrs in stored_elements if attrs.get("style")}
    assert unstyled_in_source & styled_after, "classes should have become style attributes"


def test_css_rules_become_style_attributes(tmp_path):
    folder = make_template(tmp_path, "cta", html=(
        "<html><head><style>.cta { color: #ff0000; font-weight: 700 }</style></head>"
        '<body><a class="cta" href="{{ url }}">Go</a></body></html>'), example={"name": "Ada", "url": "https://x.example"})
    item = prepare(load_template_dir(folder), "t")
    (anchor,) = [attrs for tag, attrs in Elements(item.html).found if tag == "a"]
    assert anchor["class"] == "cta"
    assert "color: #ff0000" in anchor["style"] and "font-weight: 700" in anchor["style"]
    assert anchor["href"] == "{{ url }}"  # Jinja in attributes survives inlining
    assert CompiledTemplate.compile(item).render({"name": "A", "url": "https://x.example/?a=1&b=2"}, {}).html.count(
        "https://x.example/?a=1&amp;b=2") == 1


@pytest.mark.parametrize("name, expressions, hidden", [
    ("welcome", ["{{ name }}", "{{ dashboard_url }}", "{{ product_name }}", "{{ step.url }}"],
     "Here’s how to get the most out of your first week"),
    ("newsletter", ["{{ intro }}", "{{ article.title }}", "{{ article.url }}", "{{ unsubscribe_url }}",
                    "{{ cta_url }}"], None),
])
def test_text_part_is_generated_from_the_html_when_there_is_no_text_template(name, expressions, hidden):
    assert not (TEMPLATES / name / "text.j2").exists()
    source = load_template_dir(TEMPLATES / name)
    assert source.text is None
    text = prepare(source, "t").text
    for expression in expressions:
        assert expression in text, expression
    assert not re.search(r"<(p|a|table|td|div|span|img|br)\b", text)  # plain text, not markup
    assert "\n\n\n" not in text and text.endswith("\n")
    if hidden:
        assert hidden not in text  # the hidden preheader is not part of the readable text


def test_generated_text_renders_with_the_links_written_out():
    source = load_template_dir(TEMPLATES / "welcome")
    text = CompiledTemplate.compile(prepare(source, "t")).render(source.example_data, {}).text
    assert source.example_data["dashboard_url"] in text
    assert source.example_data["name"] in text


def test_a_text_template_is_used_as_written():
    source = load_template_dir(TEMPLATES / "password-reset")
    assert prepare(source, "t").text == (TEMPLATES / "password-reset" / "text.j2").read_text()


def test_preparing_twice_gives_the_same_content_hash():
    first = prepare(load_template_dir(TEMPLATES / "invoice"), "a")
    second = prepare(load_template_dir(TEMPLATES / "invoice"), "b")
    assert first.content_hash == second.content_hash


# --- refusals ------------------------------------------------------------------------------------------------------

def test_marketing_template_without_an_unsubscribe_link_is_refused(tmp_path):
    folder = make_template(tmp_path, "promo", stream="marketing",
                           html="<html><body><p>Big sale, {{ name }}!</p></body></html>")
    with pytest.raises(TemplateProblem, match="unsubscribe_url"):
        prepare(load_template_dir(folder), "t")


def test_marketing_template_with_an_unsubscribe_link_is_accepted(tmp_path):
    folder = make_template(tmp_path, "promo", stream="marketing", html=(
        '<html><body><p>Big sale, {{ name }}!</p><a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>'))
    item = prepare(load_template_dir(folder), "t")
    assert item.stream == "marketing" and "unsubscribe_url" not in item.required


def test_transactional_template_needs_no_unsubscribe_link(tmp_path):
    assert prepare(load_template_dir(make_template(tmp_path, "receipt")), "t").stream == "transactional"


def test_example_missing_a_required_variable_is_refused_naming_it(tmp_path):
    folder = make_template(tmp_path, "receipt", html="<p>{{ name }} owes {{ total }}</p>", text="{{ order_number }}",
                           example={"name": "Ada"})
    with pytest.raises(TemplateProblem) as caught:
        prepare(load_template_dir(folder), "t")
    assert "example.json lacks order_number, total" in str(caught.value)


def test_optional_variables_need_no_example(tmp_path):
    folder = make_template(tmp_path, "receipt", html="<p>{{ name }}{% if note is defined %}{{ note }}{% endif %}</p>",
                           optional=["note"])
    assert prepare(load_template_dir(folder), "t").required == ["name"]


def test_example_that_does_not_render_is_refused(tmp_path):
    folder = make_template(tmp_path, "receipt", html="<p>{{ order.number }}</p>", example={"name": "A", "order": {}})
    with pytest.raises(TemplateProblem, match="cannot render"):
        prepare(load_template_dir(folder), "t")


def test_template_syntax_error_is_refused(tmp_path):
    folder = make_template(tmp_path, "broken", html="<p>{% if name %}unclosed</p>")
    with pytest.raises(TemplateProblem):
        prepare(load_template_dir(folder), "t")


def test_folder_without_template_json_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TemplateProblem, match="no template.json"):
        load_template_dir(tmp_path / "empty")


@pytest.mark.parametrize("stream", ["bulk", None])
def test_unknown_stream_is_refused(tmp_path, stream):
    folder = make_template(tmp_path, "x", stream=stream)
    with pytest.raises(TemplateProblem, match="stream must be one of critical, transactional, marketing"):
        load_template_dir(folder)


def test_missing_subject_is_refused(tmp_path):
    with pytest.raises(TemplateProblem, match="needs a subject"):
        load_template_dir(make_template(tmp_path, "x", subject=""))


def test_missing_html_is_refused(tmp_path):
    folder = make_template(tmp_path, "x")
    (folder / "html.j2").unlink()
    with pytest.raises(TemplateProblem, match="no html.j2"):
        load_template_dir(folder)


def test_invalid_json_is_refused(tmp_path):
    folder = make_template(tmp_path, "x")
    (folder / "example.json").write_text("{name: Ada}")
    with pytest.raises(TemplateProblem, match="invalid JSON"):
        load_template_dir(folder)


# --- bugs --------------------------------------------------------------------------------------------------------

def test_comparison_in_a_jinja_condition_survives_publishing(tmp_path):
    folder = make_template(tmp_path, "cart", html=(
        "<html><body><p>{% if count > 1 %}{{ count }} items{% else %}one item{% endif %}</p></body></html>"),
        example={"name": "Ada", "count": 3})
    item = prepare(load_template_dir(folder), "t")
    assert "3 items" in CompiledTemplate.compile(item).render({"name": "Ada", "count": 3}, {}).html


def test_loop_over_table_rows_survives_publishing(tmp_path):
    folder = make_template(tmp_path, "lines", html=(
        "<html><body><table>{% for row in rows %}<tr><td>{{ row.label }}</td></tr>{% endfor %}</table></body></html>"),
        text="{% for row in rows %}{{ row.label }}\n{% endfor %}",
        example={"name": "Ada", "rows": [{"label": "A"}]})
    item = prepare(load_template_dir(folder), "t")
    html = CompiledTemplate.compile(item).render({"name": "Ada", "rows": [{"label": "first"}, {"label": "second"}]},
                                                 {}).html
    assert "<td>first</td>" in html and "<td>second</td>" in html


def test_a_text_part_is_derived_from_a_loop_between_table_rows(tmp_path):
    folder = make_template(tmp_path, "lines", html=(
        "<html><body><table>{% for row in rows %}<tr><td>{{ row.label }}</td></tr>{% endfor %}</table></body></html>"),
        example={"name": "Ada", "rows": [{"label": "A"}]})
    item = prepare(load_template_dir(folder), "t")
    text = CompiledTemplate.compile(item).render({"name": "Ada", "rows": [{"label": "first"}, {"label": "second"}]},
                                                 {}).text
    assert text == "first\nsecond\n"


def test_marketing_template_mentioning_unsubscribe_url_only_in_a_comment_is_refused(tmp_path):
    folder = make_template(tmp_path, "promo", stream="marketing", html=(
        "<html><body><p>Big sale, {{ name }}!</p>{# TODO: add unsubscribe_url link #}</body></html>"))
    with pytest.raises(TemplateProblem, match="unsubscribe_url"):
        prepare(load_template_dir(folder), "t")
