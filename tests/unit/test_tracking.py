"""Open pixel and click tracking added to rendered HTML: every tracked link still leads exactly where it did."""
from __future__ import annotations

import re

import pytest

from postline.contract import message_id_for
from postline.tokens import CLICK, OPEN
from postline.tracking import add_tracking

BASE = "https://links.example.com"
MESSAGE_ID = message_id_for("order-1234")
TRACKED_HREF = re.compile(r'href="' + re.escape(BASE) + r'/c/([^"]+)"')
PIXEL_SRC = re.compile(r'<img src="' + re.escape(BASE) + r'/o/([^"]+)"')


def track(keyring, html: str, untracked: frozenset[str] = frozenset()) -> str:
    return add_tracking(html, MESSAGE_ID, keyring, BASE, untracked)


def click_targets(keyring, html: str) -> list[str]:
    targets = []
    for token in TRACKED_HREF.findall(html):
        claims = keyring.verify(token)
        assert claims is not None, "a tracked link must carry a token we signed"
        assert claims.kind == CLICK and claims.message_id == MESSAGE_ID
        targets.append(claims.target)
    return targets


@pytest.mark.parametrize("href, target", [
    ("https://shop.example.com/orders/1234", "https://shop.example.com/orders/1234"),
    ("http://example.com/", "http://example.com/"),
    ("https://shop.example.com/p?a=1&amp;b=2#reviews", "https://shop.example.com/p?a=1&b=2#reviews"),
    ("https://example.com/?q=%3Cb%3E&amp;x=&quot;y&quot;", 'https://example.com/?q=%3Cb%3E&x="y"'),
    ("https://例え.jp/パス?検索=東京#節", "https://例え.jp/パス?検索=東京#節"),
    ("  https://example.com/padded  ", "https://example.com/padded"),
    ("HTTPS://EXAMPLE.COM/Upper", "HTTPS://EXAMPLE.COM/Upper"),
])
def test_http_links_are_rewritten_to_signed_click_urls_with_the_exact_target(keyring, href, target):
    html = track(keyring, f'<p><a href="{href}" class="btn">Go</a></p>')
    assert click_targets(keyring, html) == [target]
    assert href not in html
    assert 'class="btn">Go</a>' in html  # the rest of the tag and the link text are untouched


def test_every_link_is_rewritten_and_order_is_kept(keyring):
    html = track(keyring, '<a href="https://a.example/1">1</a> <a href="https://b.example/2">2</a>'
                          '<a target="_blank" href="https://c.example/3" title="x">3</a>')
    assert click_targets(keyring, html) == ["https://a.example/1", "https://b.example/2", "https://c.example/3"]
    assert 'target="_blank"' in html and 'title="x">3</a>' in html


def test_single_quoted_hrefs_are_tracked(keyring):
    html = track(keyring, "<a href='https://example.com/?a=1&amp;b=2'>x</a>")
    assert click_targets(keyring, html) == ["https://example.com/?a=1&b=2"]


def test_upper_case_tags_and_attributes_are_tracked(keyring):
    html = track(keyring, '<A HREF="https://example.com/x">x</A>')
    tokens = re.findall(r'HREF="' + re.escape(BASE) + r'/c/([^"]+)"', html)
    assert [keyring.verify(t).target for t in tokens] == ["https://example.com/x"]


@pytest.mark.parametrize("attribute", ["data-postline-notrack", 'data-postline-notrack=""', "data-postline-notrack='1'",
                                       "DATA-POSTLINE-NOTRACK"])
def test_notrack_links_are_untouched_and_lose_the_marker(keyring, attribute):
    html = track(keyring, f'<a href="https://example.com/web-version" {attribute} target="_blank">View online</a>')
    assert '<a href="https://example.com/web-version" target="_blank">View online</a>' in html
    assert "notrack" not in html.lower()
    assert click_targets(keyring, html) == []


@pytest.mark.parametrize("href", ["mailto:help@example.com?subject=Hi", "tel:+15555550100", "#top", "/relative/path",
                                  "ftp://files.example.com/x", "javascript:alert(1)", ""])
def test_non_http_links_are_untouched(keyring, href):
    original = f'<a href="{href}">x</a>'
    html = track(keyring, original)
    assert html.startswith(original)
    assert click_targets(keyring, html) == []


def test_untracked_urls_are_untouched(keyring):
    unsubscribe = "https://links.example.com/u/tok.en"
    html = track(keyring, f'<a href="{unsubscribe}">Unsubscribe</a><a href="https://example.com/">Shop</a>',
                 untracked=frozenset({unsubscribe}))
    assert f'<a href="{unsubscribe}">Unsubscribe</a>' in html
    assert click_targets(keyring, html) == ["https://example.com/"]


def test_anchors_without_href_are_untouched(keyring):
    html = track(keyring, '<a name="top"></a><abbr title="x">y</abbr>')
    assert html.startswith('<a name="top"></a><abbr title="x">y</abbr>')


def test_pixel_is_inserted_just_before_body_end_and_verifies_as_an_open(keyring):
    html = track(keyring, "<html><body><p>Hello</p></body></html>")
    pixel_at = html.index("<img ")
    assert html.index("<p>Hello</p>") < pixel_at < html.index("</body>")
    assert html.endswith("</body></html>")
    tokens = PIXEL_SRC.findall(html)
    assert len(tokens) == 1
    claims = keyring.verify(tokens[0])
    assert claims is not None and claims.kind == OPEN and claims.message_id == MESSAGE_ID and claims.target is None
    assert 'width="1" height="1"' in html and 'alt=""' in html


def test_pixel_is_inserted_once_before_an_upper_case_body_end(keyring):
    html = track(keyring, "<HTML><BODY>Hi</BODY ></HTML>")
    assert html.count("<img ") == 1
    assert html.index("<img ") < html.index("</BODY >")


def test_pixel_is_appended_when_there_is_no_body_tag(keyring):
    html = track(keyring, "<p>Just a fragment</p>")
    assert html.startswith("<p>Just a fragment</p><img ")
    assert keyring.verify(PIXEL_SRC.findall(html)[0]).kind == OPEN


def test_pixel_is_not_a_tracked_link(keyring):
    html = track(keyring, "<body></body>")
    assert click_targets(keyring, html) == []


@pytest.mark.parametrize("written, signed", [
    ("https://shop.example.com/a\r\nSet-Cookie: x=1", "https://shop.example.com/a%0D%0ASet-Cookie:%20x=1"),
    ("https://shop.example.com/a b\tc", "https://shop.example.com/a%20b%09c"),
    ("https://shop.example.com/\x00\x7f", "https://shop.example.com/%00%7F"),
])
def test_control_characters_in_a_link_target_are_encoded_before_signing(keyring, written, signed):
    """A CR LF in a target would otherwise split the redirect's Location header; a browser drops such
    characters from a link anyway, so the link still leads where it did."""
    html = track(keyring, f'<a href="{written}">x</a>')
    assert click_targets(keyring, html) == [signed]


def test_the_click_endpoint_refuses_a_target_with_a_line_break_signed_before_it_was_encoded(keyring):
    from postline.engagement import is_safe_target

    assert is_safe_target("https://shop.example.com/a?b=c#d")
    assert not is_safe_target("https://shop.example.com/a\r\nSet-Cookie: x=1")
    assert not is_safe_target("javascript:alert(1)") and not is_safe_target(None)
