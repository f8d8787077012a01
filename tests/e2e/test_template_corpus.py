"""Three templates of the corpus (tests/fixtures/templates), one per stream, published with `templates push` and
sent with `postline send` on the local stack, as a team arriving with its own templates would: the rows a loop or a
condition puts between `<tr>`s arrive in order, Outlook's conditional comments arrive intact, and each tracked link
goes through the local HTTP API's click redirect to exactly the URL its author wrote."""
from __future__ import annotations

import html
import json
import re
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
SENT = ("password-code", "receipt-rows", "newsletter-responsive")  # critical, transactional, marketing
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # urllib then raises the 302 as an HTTPError, Location header and all


def example(name: str) -> dict:
    return json.loads((CORPUS / name / "example.json").read_text())


def row_texts(email_html: str) -> list[str]:
    """The visible text of each innermost table row, in order, whitespace collapsed."""
    rows = re.findall(r"<tr\b[^>]*>((?:(?!<tr\b).)*?)</tr>", email_html, re.DOTALL)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split()) for row in rows]


def click_location(url: str) -> str:
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": BROWSER})
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(request, timeout=10)
    assert redirect.value.code == 302
    return redirect.value.headers["Location"]


@pytest.fixture(scope="module")
def delivered(local_stack, tmp_path_factory) -> dict[str, str]:
    """Each of SENT pushed and sent once: its delivered HTML part, by template name."""
    folder = tmp_path_factory.mktemp("corpus")
    for name in SENT:
        shutil.copytree(CORPUS / name, folder / name)
    pushed = local_stack.cli_json("templates", "push", str(folder))["published"]
    assert sorted(p["name"] for p in pushed) == sorted(SENT)
    run = uuid.uuid4().hex[:8]
    sent = {name: local_stack.cli_json("send", "--template", name, "--to", f"{name}-{run}@example.org",
                                       "--data", json.dumps(example(name)))
            for name in SENT}
    parts = {}
    for name, message in sent.items():
        assert local_stack.wait_for(message["message_id"], statuses={"delivered"})["status"] == "delivered"
        [mail] = local_stack.outbox_for(f"{name}-{run}@example.org")
        parts[name] = mail.get_body(("html",)).get_content()
    return parts


def test_the_rows_of_a_loop_between_table_rows_arrive_in_order(delivered):
    rows = row_texts(delivered["receipt-rows"])
    start = rows.index("Item Qty Price")
    assert rows[start:start + 5] == ["Item Qty Price", "Blue mug 2 24.00 EUR", "Tea sampler 1 18.50 EUR",
                                     "Discount (SPRING10) \u22124.25 EUR",
                                     "Total 38.25 EUR"]


def test_a_row_shown_only_for_some_messages_arrives_in_its_place(delivered):
    rows = row_texts(delivered["password-code"])
    assert [row.split(" ")[0] for row in rows] == ["Hi", "482", "Requested", "It"]
    assert rows[2] == "Requested from a new device: Firefox on Linux, near Lisbon."


def test_outlook_conditional_comments_arrive_intact(delivered):
    source = (CORPUS / "newsletter-responsive" / "html.j2").read_text()
    comments = set(re.findall(r"<!--\[if mso\]>.*?<!\[endif\]-->", source, re.DOTALL))
    assert len(comments) == 7  # the head's OfficeDocumentSettings and the ghost tables' opening and closing tags
    for comment in comments:
        assert comment in delivered["newsletter-responsive"]
    # one ghost table per pair of stories (three stories: two pairs), one ghost cell per story
    assert delivered["newsletter-responsive"].count('<!--[if mso]><td width="290" valign="top"><![endif]-->') == 3


@pytest.mark.parametrize("name, written", [
    ("receipt-rows", lambda data: [data["help_url"]]),
    ("newsletter-responsive", lambda data: [url for story in data["issue"]["stories"] for url in (story["url"],) * 2]
     + [data["issue"]["preferences_url"]]),
])
def test_each_tracked_link_redirects_to_exactly_its_original_url(local_stack, delivered, name, written):
    hrefs = [html.unescape(href) for href in re.findall(r'<a\b[^>]*?\bhref="([^"]+)"', delivered[name])]
    tracked = [href for href in hrefs if href.startswith(local_stack.api_url + "/c/")]
    assert [click_location(href) for href in tracked] == written(example(name))


def test_critical_mail_keeps_its_links_as_written(local_stack, delivered):
    assert f'href="{example("password-code")["secure_url"]}"' in delivered["password-code"]
    assert local_stack.api_url + "/c/" not in delivered["password-code"]
