"""The text part made from the HTML: lines where the reader sees blocks, Jinja kept in order wherever it stands."""
from __future__ import annotations

import pytest

from postline.models import Template
from postline.templates import CompiledTemplate
from postline_cli.template_inline import inline_css
from postline_cli.template_text import html_to_text


def text_of(html: str, data: dict) -> str:
    derived = html_to_text(inline_css(html))
    item = Template("t", 1, stream="transactional", subject="s", html=html, text=derived, required=[])
    return CompiledTemplate.compile(item).render(data, {}).text


def test_each_list_item_is_its_own_line():
    html = "<p>Parcels:</p><ul>{% for p in parcels %}<li>{{ p }}</li>{% endfor %}</ul><p>Bye</p>"
    assert text_of(html, {"parcels": ["DHL", "Post"]}) == "Parcels:\n\n- DHL\n- Post\n\nBye"


def test_a_numbered_list_without_loops_is_numbered():
    assert text_of("<ol><li>one</li><li>two</li></ol>", {}) == "1. one\n2. two"


@pytest.mark.parametrize("show, expected", [(True, "Order\n\nA  1\nB  2\nDiscount  -1\nTotal  2"),
                                            (False, "Order\n\nA  1\nB  2\nTotal  2")])
def test_rows_looped_and_shown_between_table_rows_stay_in_the_table(show, expected):
    html = ("<p>Order</p><table>{% for r in rows %}<tr><td>{{ r.name }}</td><td>{{ r.price }}</td></tr>{% endfor %}"
            "{% if discount %}<tr><td>Discount</td><td>-{{ discount }}</td></tr>{% endif %}"
            "<tr><td>Total</td><td>{{ total }}</td></tr></table>")
    data = {"rows": [{"name": "A", "price": 1}, {"name": "B", "price": 2}], "total": 2, "discount": 1 if show else 0}
    assert text_of(html, data) == expected


def test_hidden_preheader_head_and_outlook_only_blocks_are_left_out():
    html = ('<html><head><title>T</title><style>.x{color:red}</style></head><body>'
            '<div style="display:none">Preheader {{ name }}</div><!--[if mso]><p>Outlook only</p><![endif]-->'
            '<p>Hello {{ name }}</p></body></html>')
    assert text_of(html, {"name": "Ada"}) == "Hello Ada"


def test_links_read_text_then_address_and_image_only_links_are_left_out():
    html = ('<p><a href="{{ url }}"><img src="https://x.example/i.png" alt="Logo"></a></p>'
            '<p>See <a href="{{ url }}?a=1&amp;copy=2">your order</a>, '
            'or <a href="mailto:help@x.example">write</a>.</p>')
    assert text_of(html, {"url": "https://x.example/o"}) == "See your order (https://x.example/o?a=1&copy=2), or write."


def test_a_condition_inside_a_sentence_keeps_its_spaces():
    html = ("<p>Hello {% if vip %}dear {% endif %}friend, you subscribed to "
            "{% if n %}the {{ n }} list{% else %}this list{% endif %}.</p>")
    assert text_of(html, {"vip": True, "n": "Lumen"}) == "Hello dear friend, you subscribed to the Lumen list."
    assert text_of(html, {"vip": False, "n": ""}) == "Hello friend, you subscribed to this list."


def test_a_condition_around_paragraphs_leaves_one_blank_line_either_way():
    html = "<p>A</p>{% if x %}<p>B</p>{% endif %}<p>C</p>"
    assert text_of(html, {"x": True}) == "A\n\nB\n\nC"
    assert text_of(html, {"x": False}) == "A\n\nC"


def test_cells_repeated_by_a_loop_are_separated():
    html = "<table><tr>{% for c in cells %}<td>{{ c }}</td>{% endfor %}</tr></table>"
    assert text_of(html, {"cells": ["a", "b", "c"]}) == "a  b  c"
