"""Templates: what a template needs, how data is rendered into it safely, and how versions are looked up."""
from __future__ import annotations

import pytest

from postline.models import ACTIVE_POINTER_VERSION, Template
from postline.templates import (
    PROVIDED_VARIABLES,
    CompiledTemplate,
    Rendered,
    TemplateProblem,
    TemplateStore,
    required_variables,
)

TABLE = "postline-templates"


def template(name="welcome", version=1, *, stream="transactional", subject="Welcome, {{ name }}",
             html="<p>Hello {{ name }}</p>", text="Hello {{ name }}", required=("name",), **extra) -> Template:
    return Template(name, version, stream=stream, subject=subject, html=html, text=text, required=list(required),
                    **extra)


def compiled(**kwargs) -> CompiledTemplate:
    return CompiledTemplate.compile(template(**kwargs))


# --- required_variables --------------------------------------------------------------------------------------------

def test_required_variables_lists_top_level_names_from_all_three_parts():
    found = required_variables("Order {{ order.number }}",
                               "<p>{{ name }}</p>{% for i in items %}{{ i.sku }}{% endfor %}", "{{ total }}")
    assert found == ["items", "name", "order", "total"]


def test_required_variables_ignores_what_postline_provides_and_optional_names():
    assert "unsubscribe_url" in PROVIDED_VARIABLES
    found = required_variables("{{ title }}", '<a href="{{ unsubscribe_url }}">Unsubscribe</a>{{ footer }}',
                               "{{ nickname }}", optional=["footer", "nickname"])
    assert found == ["title"]


def test_required_variables_ignores_names_set_or_looped_inside_the_template():
    assert required_variables("x", "{% set greeting = 'hi' %}{{ greeting }}{% for row in rows %}{{ row }}{% endfor %}",
                              "") == ["rows"]


@pytest.mark.parametrize("part", ["subject", "html", "text"])
def test_required_variables_reports_syntax_errors_as_template_problems(part):
    sources = {"subject": "ok", "html": "ok", "text": "ok", part: "{{ name "}
    with pytest.raises(TemplateProblem, match="template syntax error"):
        required_variables(**sources)


# --- compile and render --------------------------------------------------------------------------------------------

def test_render_fills_subject_html_and_text():
    rendered = compiled().render({"name": "Ada"}, {})
    assert rendered == Rendered(subject="Welcome, Ada", html="<p>Hello Ada</p>", text="Hello Ada")


def test_html_escapes_data_but_text_keeps_it_verbatim():
    payload = "<script>alert('x')</script> & co"
    rendered = compiled().render({"name": payload}, {})
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html and "&amp; co" in rendered.html
    assert rendered.text == f"Hello {payload}"


def test_data_in_html_attributes_cannot_break_out_of_the_attribute():
    rendered = compiled(html='<a href="{{ url }}">x</a>', required=("url",)).render(
        {"name": "Ada", "url": 'https://x.example/" onclick="steal()'}, {})
    assert 'onclick="steal()"' not in rendered.html
    assert "&#34;" in rendered.html or "&quot;" in rendered.html


@pytest.mark.parametrize("name", ["Ada\nBcc: eve@evil.example", "Ada\r\nX-Injected: 1", "Ada\u2028Lovelace",
                                  "  Ada \t\t Lovelace  "])
def test_subject_is_one_line_even_when_data_has_line_breaks(name):
    subject = compiled().render({"name": name}, {}).subject
    assert "\n" not in subject and "\r" not in subject and "\u2028" not in subject
    assert subject.startswith("Welcome, Ada")
    assert "  " not in subject


def test_provided_values_win_over_caller_data():
    rendered = compiled(html='<a href="{{ unsubscribe_url }}">u</a>', required=()).render(
        {"name": "Ada", "unsubscribe_url": "https://evil.example/"}, {"unsubscribe_url": "https://links.example.com/u/t"})
    assert "https://links.example.com/u/t" in rendered.html and "evil" not in rendered.html


def test_missing_required_data_is_a_problem_naming_the_variables():
    tpl = compiled(subject="{{ a }}", html="{{ b }}", text="{{ c }}", required=("a", "b", "c"))
    with pytest.raises(TemplateProblem) as caught:
        tpl.render({"b": 1}, {})
    assert str(caught.value) == "missing data the template welcome@1 needs: a, c"
    assert tpl.missing({"b": 1}) == ["a", "c"]


def test_missing_nested_attribute_is_a_problem_not_blank_output():
    tpl = compiled(html="<p>{{ order.number }}</p>", text="x", required=("name", "order"))
    with pytest.raises(TemplateProblem, match="cannot render welcome@1.*number"):
        tpl.render({"name": "Ada", "order": {}}, {})


def test_undeclared_optional_variable_used_without_a_guard_is_a_problem():
    tpl = compiled(text="{{ nickname }}")
    with pytest.raises(TemplateProblem, match="nickname"):
        tpl.render({"name": "Ada"}, {})


@pytest.mark.parametrize("expression", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ name.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ name.format.__globals__ }}",
])
def test_sandbox_refuses_unsafe_access_and_the_message_is_rejected(expression):
    tpl = compiled(html=f"<p>{expression}</p>")
    with pytest.raises(TemplateProblem, match="cannot render welcome@1"):
        tpl.render({"name": "Ada"}, {})


def test_sandbox_refuses_unsafe_access_through_data():
    class Sneaky:
        def __init__(self):
            self._private = "hidden"

    tpl = compiled(html="{{ name._private }}")
    with pytest.raises(TemplateProblem):
        tpl.render({"name": Sneaky()}, {})


@pytest.mark.parametrize("stream", ["bulk", "", None, "Marketing"])
def test_unknown_stream_is_refused_at_compile(stream):
    with pytest.raises(TemplateProblem, match="unknown stream"):
        CompiledTemplate.compile(template(stream=stream))


def test_template_that_does_not_compile_is_a_problem():
    with pytest.raises(TemplateProblem, match="does not compile"):
        CompiledTemplate.compile(template(html="{% for x in %}"))


def test_compiled_template_knows_its_ref_stream_and_sender():
    tpl = CompiledTemplate.compile(template("invoice", 7, stream="critical", from_address="billing@example.com"))
    assert (tpl.ref, tpl.stream, tpl.from_address, tpl.required) == ("invoice@7", "critical", "billing@example.com",
                                                                       ("name",))


def test_data_of_the_wrong_type_is_a_template_problem_not_a_crash():
    tpl = compiled(html='<p>{{ "%.2f"|format(total) }}</p>', required=("name", "total"))
    with pytest.raises(TemplateProblem):
        tpl.render({"name": "Ada", "total": "forty-two"}, {})


# --- the template store --------------------------------------------------------------------------------------------

class FakeDynamo:
    """batch_get_item over an in-memory templates table; counts calls and keys asked for."""

    def __init__(self, *items: Template) -> None:
        self.items = {(item.name, int(item.version)): item.serialize() for item in items}
        self.calls: list[list[tuple[str, int]]] = []

    def put(self, item: Template) -> None:
        self.items[(item.name, int(item.version))] = item.serialize()

    def batch_get_item(self, RequestItems):
        found, asked = {}, []
        for table, request in RequestItems.items():
            assert table == TABLE
            for key in request["Keys"]:
                ref = (key["name"]["S"], int(key["version"]["N"]))
                asked.append(ref)
                if ref in self.items:
                    found.setdefault(table, []).append(self.items[ref])
        self.calls.append(sorted(asked))
        return {"Responses": found, "UnprocessedKeys": {}}


def pointer(name: str, active: int) -> Template:
    return Template(name, ACTIVE_POINTER_VERSION, active_version=active, latest_version=active, stream="transactional")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def store(dynamo, clock, ttl=30) -> TemplateStore:
    return TemplateStore(TABLE, dynamo, ttl, clock=clock)


def test_unpinned_ref_resolves_through_the_active_pointer(clock):
    dynamo = FakeDynamo(pointer("welcome", 2), template(version=1, subject="v1"), template(version=2, subject="v2"))
    resolved = store(dynamo, clock).resolve([("welcome", None)])
    tpl = resolved[("welcome", None)]
    assert isinstance(tpl, CompiledTemplate) and tpl.ref == "welcome@2"
    assert tpl.render({"name": "Ada"}, {}).subject == "v2"


def test_pinned_version_is_used_even_when_another_is_active(clock):
    dynamo = FakeDynamo(pointer("welcome", 2), template(version=1, subject="v1"), template(version=2, subject="v2"))
    resolved = store(dynamo, clock).resolve([("welcome", 1), ("welcome", None)])
    assert resolved[("welcome", 1)].render({"name": "Ada"}, {}).subject == "v1"
    assert resolved[("welcome", None)].ref == "welcome@2"


def test_pinned_ref_needs_no_pointer_read(clock):
    dynamo = FakeDynamo(template(version=3))
    resolved = store(dynamo, clock).resolve([("welcome", 3)])
    assert resolved[("welcome", 3)].ref == "welcome@3"
    assert dynamo.calls == [[("welcome", 3)]]


def test_unknown_template_is_a_problem(clock):
    resolved = store(FakeDynamo(), clock).resolve([("nope", None)])
    problem = resolved[("nope", None)]
    assert isinstance(problem, TemplateProblem)
    assert "unknown template 'nope'" in str(problem)


def test_unknown_pinned_version_is_a_problem(clock):
    dynamo = FakeDynamo(pointer("welcome", 1), template(version=1))
    problem = store(dynamo, clock).resolve([("welcome", 9)])[("welcome", 9)]
    assert isinstance(problem, TemplateProblem) and "unknown template version welcome@9" in str(problem)


def test_a_stored_version_that_does_not_compile_is_a_problem_for_its_messages_only(clock):
    dynamo = FakeDynamo(pointer("broken", 1), template("broken", 1, html="{% if %}"), template("welcome", 1))
    resolved = store(dynamo, clock).resolve([("broken", None), ("welcome", 1)])
    assert isinstance(resolved[("broken", None)], TemplateProblem)
    assert "broken@1" in str(resolved[("broken", None)])
    assert isinstance(resolved[("welcome", 1)], CompiledTemplate)


def test_many_refs_are_resolved_in_one_pointer_read_and_one_version_read(clock):
    names = [f"t{i}" for i in range(5)]
    dynamo = FakeDynamo(*[pointer(n, 1) for n in names], *[template(n, 1) for n in names])
    resolved = store(dynamo, clock).resolve([(n, None) for n in names])
    assert all(isinstance(v, CompiledTemplate) for v in resolved.values())
    assert len(dynamo.calls) == 2


def test_pointer_is_cached_within_its_ttl_and_reread_after(clock):
    dynamo = FakeDynamo(pointer("welcome", 1), template(version=1), template(version=2))
    templates = store(dynamo, clock, ttl=30)
    assert templates.resolve([("welcome", None)])[("welcome", None)].ref == "welcome@1"
    calls_after_first = len(dynamo.calls)

    dynamo.put(pointer("welcome", 2))  # a push of version 2
    clock.now += 29
    assert templates.resolve([("welcome", None)])[("welcome", None)].ref == "welcome@1"
    assert len(dynamo.calls) == calls_after_first  # within the TTL: no read at all

    clock.now += 2
    assert templates.resolve([("welcome", None)])[("welcome", None)].ref == "welcome@2"  # the push takes effect


def test_compiled_versions_are_cached_for_the_life_of_the_store(clock):
    dynamo = FakeDynamo(template(version=4))
    templates = store(dynamo, clock)
    first = templates.resolve([("welcome", 4)])[("welcome", 4)]
    calls = len(dynamo.calls)
    clock.now += 10_000
    second = templates.resolve([("welcome", 4)])[("welcome", 4)]
    assert second is first
    assert len(dynamo.calls) == calls


def test_second_resolve_within_ttl_makes_no_calls(clock):
    dynamo = FakeDynamo(pointer("welcome", 1), template(version=1))
    templates = store(dynamo, clock)
    templates.resolve([("welcome", None)])
    calls = len(dynamo.calls)
    templates.resolve([("welcome", None)])
    assert len(dynamo.calls) == calls == 2


def test_deleted_pointer_makes_the_template_unknown_after_the_ttl(clock):
    dynamo = FakeDynamo(pointer("welcome", 1), template(version=1))
    templates = store(dynamo, clock, ttl=5)
    assert isinstance(templates.resolve([("welcome", None)])[("welcome", None)], CompiledTemplate)
    del dynamo.items[("welcome", ACTIVE_POINTER_VERSION)]
    clock.now += 6
    assert isinstance(templates.resolve([("welcome", None)])[("welcome", None)], TemplateProblem)
