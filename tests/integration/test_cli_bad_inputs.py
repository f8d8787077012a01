"""The CLI's bad-input corpus: files an operator hands to `campaigns create --audience`, `send --data` and `templates
push` that cannot be used. Each gets one line naming the file (and the line, where there is one) and exit 2 (a template
folder: `not published: ...`, as for every other reason push refuses one), never a traceback, and nothing is created,
queued or published."""
from __future__ import annotations

import json
import os

import pytest

from postline.campaigns import store
from postline.models import Template
from postline_cli import main
from postline_cli.local import resources
from postline_cli.target import Target
from tests.integration.test_campaigns_cli import ISSUE, TABLE, Operator
from tests.integration.test_cli_errors import WELCOME, postline, queued, refused


@pytest.fixture
def campaign_operator(pipeline, monkeypatch, tmp_path):
    return Operator(pipeline, monkeypatch, tmp_path)


@pytest.fixture
def send_operator(pipeline, monkeypatch):
    """The CLI pointed at the pipeline's queues and tables (as test_cli_errors' operator)."""
    queues = {f"POSTLINE_INBOUND_QUEUE_URL_{stream.upper()}": pipeline.queue_url(name)
              for stream, name in resources.INBOUND_QUEUES.items()}
    where = Target(None, dict(resources.TABLES), queues, resources.SIGNING_SECRET, resources.CLAIM_CHECK_BUCKET,
                   resources.SCHEDULE_GROUP)
    monkeypatch.setattr(main, "target", lambda: where)
    return pipeline


# (what the audience file holds, as bytes; the one line the refusal prints)
AUDIENCES = [
    ("empty file", b"", "error: audience.csv has no valid recipient: nothing to send"),
    ("header without an email column", b"name,intro\nAda,Hi\n",
     "error: --audience audience.csv: the first row has no email column: a CSV audience starts with a header row "
     "naming its columns, one of them email"),
    ("not UTF-8", "email,name,intro\nada@example.com,Zoë,Olá\n".encode("latin-1"),
     "error: --audience audience.csv: line 2 is not UTF-8 text: save the file as UTF-8"),
    ("a quote never closed", b'email,name,intro\nada@example.com,Ada,Hi\ngrace@example.com,"Grace,Hi\n'
                             b'linus@example.com,Linus,Hi\n',
     'error: --audience audience.csv: line 3: a quoted field is never closed (a " missing?)'),
    ("every row broken", b"email,name,intro\nnot-an-address,Ada,Hi\nada@example.com,Ada,Hi,extra,fields\n",
     "error: audience.csv has no valid recipient: nothing to send"),
]


@pytest.mark.parametrize("content, line", [case[1:] for case in AUDIENCES], ids=[case[0] for case in AUDIENCES])
def test_an_audience_file_that_cannot_be_read_is_refused_with_its_line_and_creates_nothing(campaign_operator, content,
                                                                                         line):
    path = campaign_operator.tmp_path / "audience.csv"
    path.write_bytes(content)
    said = campaign_operator.refused("campaigns", "create", "june-news", "--template", "newsletter", "--audience",
                                     str(path), "--data", json.dumps(ISSUE), code=2)
    assert said == line
    assert campaign_operator.uploaded_keys() == [] and campaign_operator.control_messages() == []
    assert store.list_all(campaign_operator.dynamodb, TABLE) == []


def argv(content: bytes) -> str:
    """What a program gets for ``--data "$(cat FILE)"``: the file's bytes as Python decodes a command line."""
    return os.fsdecode(content)


@pytest.mark.parametrize("content, line", [
    (b'{"name": "Ada",\n "product_name": Lumen}', "error: --data is not valid JSON: Expecting value: line 2 column 18 "
                                                  "(char 33)"),
    (b"", "error: --data is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b'["Ada"]', "error: --data must be a JSON object"),
    ('{"name": "Zoë", "product_name": "Lumen", "dashboard_url": "https://app.example.com"}'.encode("latin-1"),
     "error: --data is not UTF-8 text (at character 13): save the data as UTF-8"),
], ids=["not JSON", "empty", "not an object", "not UTF-8"])
def test_send_data_that_is_not_json_or_not_utf8_is_refused_and_queues_nothing(send_operator, content, line):
    result = postline("send", "--template", "welcome", "--to", "ada@example.com", "--data", argv(content))
    assert refused(result, 2) == line
    assert queued(send_operator) == []


def test_the_same_data_in_utf8_is_queued(send_operator):
    data = {**WELCOME, "name": "Zoë"}
    result = postline("send", "--template", "welcome", "--to", "ada@example.com", "--data",
                      argv(json.dumps(data, ensure_ascii=False).encode()))
    assert result.exit_code == 0, result.stderr
    assert [message["data"]["name"] for message in queued(send_operator)] == ["Zoë"]


@pytest.mark.parametrize("file_name, content, line", [
    ("html.j2", "<p>Hi {{ name }}</p>\n<p>Até já</p>\n".encode("latin-1"), "{folder}/html.j2: line 2"),
    ("text.j2", b"Hello {{ name }}\n\xff\n", "{folder}/text.j2: line 2"),
    ("template.json", b'{"stream": "transactional", "subject": "Ol\xe1"}', "{folder}/template.json: line 1"),
    ("example.json", b'{\n"name": "Zo\xeb"}', "{folder}/example.json: line 2"),
    ("locales/pt/subject.j2", "Olá".encode("latin-1"), "{folder}/locales/pt/subject.j2: line 1"),
], ids=["html.j2", "text.j2", "template.json", "example.json", "a locale's subject.j2"])
def test_a_template_file_that_is_not_utf8_is_refused_and_nothing_is_published(send_operator, tmp_path, file_name,
                                                                             content, line):
    """As every other reason `templates push` refuses a folder for: one line, "not published: ...", exit 2."""
    folder = tmp_path / "greeting"
    (folder / "locales" / "pt").mkdir(parents=True)
    files = {"template.json": b'{"stream": "transactional", "subject": "Hello"}', "html.j2": b"<p>Hi {{ name }}</p>",
             "text.j2": b"Hi {{ name }}", "example.json": b'{"name": "Ada"}', "locales/pt/subject.j2": b"Ola",
             "locales/pt/html.j2": b"<p>Ola {{ name }}</p>", file_name: content}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    result = postline("templates", "push", str(folder))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == f"not published: {line.format(folder=folder)} is not UTF-8 text: save the file as UTF-8\n"
    assert [t for t in Template.scan() if t.name == "greeting"] == []


def test_a_push_that_publishes_some_folders_and_refuses_others_exits_1(send_operator, tmp_path):
    """Only part done (docs/cli.md, "Exit codes"): the good folder is published, the bad one named, exit 1."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder, html in ((good, b"<p>Hi {{ name }}</p>"), (bad, "<p>Até {{ name }}</p>".encode("latin-1"))):
        folder.mkdir()
        for name, data in {"template.json": b'{"stream": "transactional", "subject": "Hello"}', "html.j2": html,
                           "text.j2": b"Hi {{ name }}", "example.json": b'{"name": "Ada"}'}.items():
            (folder / name).write_bytes(data)
    result = postline("templates", "push", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == f"not published: {bad}/html.j2: line 1 is not UTF-8 text: save the file as UTF-8\n"
    assert [t.name for t in Template.scan() if t.name in ("good", "bad") and t.version != 0] == ["good"]


@pytest.mark.parametrize("command", [("templates", "push"), ("templates", "lint")])
def test_a_folder_without_template_folders_is_refused_with_exit_2(send_operator, tmp_path, command):
    """Input refused, nothing done (docs/cli.md, "Exit codes"): not the 1 of a push that did part of its work, or
    of a lint that found errors."""
    (tmp_path / "notes").mkdir()
    result = postline(*command, str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == f"error: no template folders (with template.json) in {tmp_path}\n"
