"""templates lint: each rule with a template that breaks it and one that does not; what push, render and lint say
about a template folder (the file, the line, the fix, the exit code), without publishing anything."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from postline.templates import CompiledTemplate, TemplateProblem
from postline_cli.main import cli
from postline_cli.publish import load_template_dir, prepare
from postline_cli.template_lint import lint

FOOTER = '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a> · Acme Ltd, 12 Harbour Road, Bristol BS1 5TY</p>'


def folder(root: Path, name="promo", *, stream="transactional", subject="Hello {{ name }}", html="<p>Hi {{ name }}</p>",
           text=None, example=None, optional=None) -> Path:
    path = root / name
    path.mkdir()
    meta = {"stream": stream, "subject": subject}
    if optional:
        meta["optional"] = optional
    (path / "template.json").write_text(json.dumps(meta))
    (path / "html.j2").write_text(html)
    if text is not None:
        (path / "text.j2").write_text(text)
    (path / "example.json").write_text(json.dumps({"name": "Ada"} if example is None else example))
    return path


def rules(path: Path) -> list[tuple[str, str, int | None]]:
    return [(f.rule, f.severity, f.line) for f in lint(load_template_dir(path))]


# rule, severity, what breaks it, what passes
CASES = [
    ("unsubscribe-link", "error", dict(stream="marketing", html="<p>Sale, {{ name }}!</p><p>12 Harbour Road</p>"),
     dict(stream="marketing", html="<p>Sale, {{ name }}!</p>" + FOOTER)),
    ("postal-address", "warning", dict(stream="marketing",
                                       html='<p>Sale!</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>'),
     dict(stream="marketing", html="<p>Sale!</p>" + FOOTER)),
    ("gmail-clipping", "warning", dict(html="<p>{{ name }}</p>" + "<p>" + "x" * 110_000 + "</p>"),
     dict(html="<p>{{ name }}</p>" + "<p>" + "x" * 90_000 + "</p>")),
    ("text-part", "error", dict(html='<p>{{ name }}</p>'.replace("<p>{{ name }}</p>",
                                                                 '<img src="https://x.example/a.png" alt="">'),
                                subject="Hi", example={}),
     dict(html='<img src="https://x.example/a.png" alt=""><p>Our spring range</p>', subject="Hi", example={})),
    ("insecure-url", "warning", dict(html='<p>{{ name }}</p>\n<a href="http://x.example/">site</a>'),
     dict(html='<p>{{ name }}</p>\n<a href="https://x.example/">site</a>')),
    ("image-alt", "warning", dict(html='<p>{{ name }}</p>\n<img src="https://x.example/a.png">'),
     dict(html='<p>{{ name }}</p>\n<img src="https://x.example/a.png" alt="">')),
    ("subject", "error", dict(subject="{{ name }}", example={"name": ""}),
     dict(subject="{{ name }}", example={"name": "Ada"})),
    ("subject", "warning", dict(subject="A" * 120),
     dict(subject="A" * 60)),
    ("publish", "error", dict(html="<p>{{ name }} {{ order_number }}</p>"),
     dict(html="<p>{{ name }} {{ order_number }}</p>", example={"name": "Ada", "order_number": "A-1"})),
    ("unbalanced-tags", "warning", dict(html="<p>{{ name }}</p>\n<table><tr><td>x</td>\n</table>"),
     dict(html="<p>{{ name }}</p>\n<table>{% for i in [1] %}<tr><td>x</td></tr>{% endfor %}\n</table>")),
]


@pytest.mark.parametrize("rule, severity, failing, passing", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_rule_finds_what_breaks_it_and_not_what_does_not(tmp_path, rule, severity, failing, passing):
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    assert (rule, severity) in [(r, s) for r, s, _ in rules(folder(tmp_path / "bad", **failing))]
    assert rule not in [r for r, _, _ in rules(folder(tmp_path / "good", **passing))]


def test_a_finding_names_the_template_file_line_and_fix(tmp_path):
    path = folder(tmp_path, html='<p>{{ name }}</p>\n\n<img src="https://x.example/a.png">')
    (finding,) = lint(load_template_dir(path))
    assert str(finding) == (f"{path}/html.j2:3: an image without alt text (image-alt); add alt=\"what it shows\" "
                            '(alt="" for a decorative image): many clients block images at first')
    assert finding.as_json()["template"] == "promo" and finding.as_json()["line"] == 3


def test_unbalanced_tags_between_jinja_branches_are_not_reported_when_the_email_is_balanced(tmp_path):
    path = folder(tmp_path, html='{% if name %}<a href="https://a.example">{% else %}<a href="https://b.example">'
                                 "{% endif %}{{ name }}</a>")
    assert "unbalanced-tags" not in [r for r, _, _ in rules(path)]


def variant(path: Path, tag: str, *, subject="Hallo {{ name }}", html="<p>Hallo {{ name }}</p>") -> Path:
    (path / "locales" / tag).mkdir(parents=True)
    (path / "locales" / tag / "subject.j2").write_text(subject)
    (path / "locales" / tag / "html.j2").write_text(html)
    return path


def test_a_locale_variant_is_linted_like_the_default_and_named_by_its_own_file(tmp_path):
    path = variant(folder(tmp_path, html='<p>Hi {{ name }}</p>\n<img src="https://x.example/a.png" alt="">'), "de",
                   html='<p>Hallo {{ name }}</p>\n\n<img src="https://x.example/a.png">')
    (finding,) = lint(load_template_dir(path))
    assert str(finding) == (f"{path}/locales/de/html.j2:3: an image without alt text (image-alt); add "
                            'alt="what it shows" (alt="" for a decorative image): many clients block images at first')


def test_a_variant_with_an_empty_subject_refuses_the_push_naming_its_subject_file(tmp_path):
    path = variant(folder(tmp_path, "hi"), "de-AT", subject="{{ name|replace('Ada', '') }}")
    code, output = run("templates", "push", str(path), "--dry-run")
    assert code == 2
    assert f"error: {path}/locales/de-AT/subject.j2: the subject is empty with the example data (subject)" in output
    assert "not published: hi: 1 lint error(s) (--force publishes anyway)" in output


def test_a_marketing_variant_without_the_unsubscribe_link_or_address_is_found_where_the_default_passes(tmp_path):
    path = variant(folder(tmp_path, stream="marketing", html="<p>Sale, {{ name }}!</p>" + FOOTER), "fr",
                   html="<p>Soldes, {{ name }} !</p>")
    found = [(f.file.removeprefix(f"{path}/"), f.rule, f.severity) for f in lint(load_template_dir(path))]
    assert found == [("locales/fr/html.j2", "unsubscribe-link", "error"),
                     ("locales/fr/html.j2", "postal-address", "warning")]


def test_an_http_url_in_the_example_data_is_reported_once_whatever_the_locales(tmp_path):
    path = variant(folder(tmp_path, html='<p>{{ name }}</p><a href="{{ url }}">site</a>',
                          example={"name": "Ada", "url": "http://x.example/"}),
                   "de", html='<p>{{ name }}</p><a href="{{ url }}">Seite</a>')
    assert rules(path) == [("insecure-url", "warning", None)]


# --- what push, render and lint print -----------------------------------------------------------------------

def run(*args):
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_push_names_the_file_and_line_of_a_syntax_error(tmp_path):
    path = folder(tmp_path, "shipping-update",
                  html="<ul>\n{% for p in parcels %}\n<li>{{ p }}</li>\n{% endfo %}\n</ul>",
                  example={"name": "A", "parcels": []})
    code, output = run("templates", "push", str(path), "--dry-run")
    assert code == 2
    assert (f"not published: {path}/html.j2:4: Encountered unknown tag 'endfo'. Jinja was looking for the following "
            "tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'.") in output


def test_a_render_failure_names_the_line_what_it_says_and_the_pitfall(tmp_path):
    path = folder(tmp_path, "order",
                  html="<p>{{ name }}</p>\n{% for item in order.items %}<p>{{ item }}</p>{% endfor %}",
                  example={"name": "A", "order": {"items": ["mug"]}})
    with pytest.raises(TemplateProblem) as caught:
        prepare(load_template_dir(path), "t")
    assert str(caught.value) == (
        f"{path}/html.j2:2: cannot render with example.json: 'builtin_function_or_method' object is not iterable, "
        "in: {% for item in order.items %}<p>{{ item }}</p>{% endfor %} (.items is the dict's method, not your key: "
        'write x["items"] instead of x.items)')


def test_if_on_a_value_the_example_leaves_out_publishes(tmp_path):
    path = folder(tmp_path, "shipping", html="<p>{{ name }}</p>{% if note %}<p>{{ note }}</p>{% endif %}"
                  "{% for p in parcels %}{% if p.tracking_url %}<a href=\"{{ p.tracking_url }}\">t</a>{% endif %}"
                  "{% endfor %}",
                  optional=["note"], example={"name": "A", "parcels": [{"carrier": "Post"}]})
    item = prepare(load_template_dir(path), "t")
    assert (CompiledTemplate.compile(item).render({"name": "A", "parcels": [{}], "note": "door"}, {}).text
            == "A\n\ndoor\n")


def test_printing_a_value_the_data_leaves_out_is_still_an_error(tmp_path):
    path = folder(tmp_path, "x", html="<p>{{ name }} {{ note }}</p>", optional=["note"])
    with pytest.raises(TemplateProblem, match=r"html.j2:1: cannot render with example.json: 'note' is undefined"):
        prepare(load_template_dir(path), "t")


def test_push_dry_run_checks_without_publishing_or_needing_a_stack(tmp_path):
    path = folder(tmp_path, "welcome")
    code, output = run("templates", "push", str(path), "--dry-run")
    assert (code, output) == (0, "welcome (transactional): ready to publish (dry run: nothing published)\n")


def test_push_refuses_lint_errors_and_says_force_publishes(tmp_path):
    path = folder(tmp_path, "hi", subject="{{ name }}", example={"name": ""})
    code, output = run("templates", "push", str(path), "--dry-run")
    assert code == 2
    assert "error: " + f"{path}/template.json: the subject is empty with the example data (subject)" in output
    assert "not published: hi: 1 lint error(s) (--force publishes anyway)" in output
    code, output = run("templates", "push", str(path), "--dry-run", "--force")
    assert code == 0 and "hi (transactional): ready to publish" in output


def test_push_with_nothing_published_prints_no_empty_table(tmp_path):
    path = folder(tmp_path, "broken", html="<p>{{ name }}{% if %}</p>")
    code, output = run("templates", "push", str(path), "--dry-run")
    assert code == 2 and "┃" not in output and "template" not in output.split("not published")[0]


def test_render_a_folder_with_its_example_or_data(tmp_path):
    path = folder(tmp_path, "hello", subject="Hello {{ name }}", html="<ul><li>{{ name }}</li><li>two</li></ul>")
    code, output = run("templates", "render", str(path))
    assert code == 0
    assert output == ("hello (folder " + str(path) + ", unpublished) (transactional)\n"
                      "Subject: Hello Ada\n\n- Ada\n- two\n")
    code, output = run("templates", "render", str(path), "--data", '{"name": "Bob"}', "--json")
    assert code == 0 and json.loads(output)["text"] == "- Bob\n- two"
    code, output = run("templates", "render", str(path), "--data", "{}")
    assert code == 1 and output.endswith(f"error: --data lacks what {path} needs: name\n")


def test_lint_exits_one_on_errors_and_zero_on_warnings(tmp_path):
    folder(tmp_path, "a", html='<p>{{ name }}</p><img src="https://x.example/i.png">')
    code, output = run("templates", "lint", str(tmp_path))
    assert code == 0 and output.endswith("1 template(s): 0 error(s), 1 warning(s)\n")
    folder(tmp_path, "b", subject="{{ name }}", example={"name": ""})
    code, output = run("templates", "lint", str(tmp_path), "--json")
    assert code == 1
    assert [(f["template"], f["rule"], f["severity"]) for f in json.loads(output)["findings"]] == [
        ("a", "image-alt", "warning"), ("b", "subject", "error")]
