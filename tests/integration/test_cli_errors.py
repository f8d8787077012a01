"""What an operator sees when the CLI refuses or finds nothing (the exact line and the exit code), against moto
with the sample templates published: `send` refuses before queueing what postline would reject, `status` says
plainly when it has no record, and the suppression and erasure commands say what they did."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from postline.contract import message_id_for
from postline.models import Message, Suppression
from postline_cli import main
from postline_cli.local import resources
from postline_cli.main import cli
from postline_cli.target import Target

ROOT = Path(__file__).resolve().parents[2]
WELCOME = {"name": "Ada", "product_name": "Lumen", "dashboard_url": "https://app.example.com"}
NO_RECORD = "unknown: no record for this id (not received yet, never sent, or older than the history kept)"


@pytest.fixture
def operator(pipeline, monkeypatch):
    queues = {f"POSTLINE_INBOUND_QUEUE_URL_{stream.upper()}": pipeline.queue_url(name)
              for stream, name in resources.INBOUND_QUEUES.items()}
    where = Target(None, dict(resources.TABLES), queues, resources.SIGNING_SECRET, resources.CLAIM_CHECK_BUCKET,
                   resources.SCHEDULE_GROUP)
    monkeypatch.setattr(main, "target", lambda: where)
    return pipeline


def postline(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def refused(result, code: int) -> str:
    """The one line a refused command prints on stderr."""
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.output and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.rstrip("\n")


def queued(pipeline) -> list[dict]:
    return [json.loads(record.body) for stream in resources.INBOUND_QUEUES.values()
            for record in pipeline.receive(stream)]


def send(*args: str, data: dict = WELCOME):
    return postline("send", "--to", "ada@example.com", "--data", json.dumps(data), *args)


# ---------------------------------------------------------------- send
@pytest.mark.parametrize("args, data, line", [
    (["--template", "welcom"], WELCOME,
     "error: not sent: unknown template 'welcom' (no active version published): did you mean 'welcome'?"),
    (["--template", "shipping"], WELCOME,
     "error: not sent: unknown template 'shipping' (no active version published); published: invoice, newsletter, "
     "order-confirmation, password-reset, welcome"),
    (["--template", "welcome@7"], WELCOME,
     "error: not sent: unknown template version welcome@7 (the latest is welcome@1)"),
    (["--template", "welcome"], {"name": "Ada"},
     "error: not sent: missing data the template welcome@1 needs: dashboard_url, product_name"),
    (["--template", "welcome"], {**WELCOME, "getting_started": 5},
     "error: not sent: cannot render welcome@1 with this data: object of type 'int' has no len()"),
    (["--template", "Welcome"], WELCOME,
     "error: not sent: template: must be a template name like 'welcome' or 'welcome@3'"),
    (["--template", "welcome", "--reply-to", "support"], WELCOME,
     "error: not sent: reply_to: invalid address: An email address must have an @-sign."),
    (["--template", "welcome", "--locale", "english please"], WELCOME,
     "error: not sent: locale: String should match pattern '^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$'"),
    (["--template", "welcome", "--tag", "postline_x=1"], WELCOME,
     "error: not sent: tags.postline_x: tag names are 1 to 64 of A-Z a-z 0-9 _ - and must not start with "
     "'postline_' (reserved for postline's own tags)"),
    (["--template", "welcome", "--tag", "plan"], WELCOME, "error: --tag 'plan' must be NAME=VALUE"),
    (["--template", "welcome", "--queue", "critical"], WELCOME,
     "error: not sent: template 'welcome' is in the transactional stream, not critical: it goes on the "
     "transactional queue (leave out --queue)"),
])
def test_send_refuses_what_postline_would_reject_and_queues_nothing(operator, args, data, line):
    shown = refused(send(*args, data=data), 2)
    assert re.sub(r" \(html line \d+\)$", "", shown) == line  # where in the template: the templates' own tests
    assert queued(operator) == []


def test_send_carries_reply_to_locale_and_tags_on_the_templates_queue(operator):
    result = send("--template", "welcome", "--id", "welcome-ada", "--reply-to", "Help@Example.com", "--locale", "en-GB",
                  "--tag", "plan=pro", "--tag", "cohort=b")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"queued {message_id_for('welcome-ada')} on the transactional queue\n"
    [body] = [json.loads(r.body) for r in operator.receive(resources.INBOUND_QUEUES["transactional"])]
    assert {key: body[key] for key in ("template", "to", "reply_to", "locale", "tags", "id")} == {
        "template": "welcome", "to": "ada@example.com", "reply_to": "Help@example.com", "locale": "en-GB",
        "tags": {"plan": "pro", "cohort": "b"}, "id": "welcome-ada"}


def test_send_checks_a_marketing_template_with_the_unsubscribe_link_render_gives_it(operator):
    data = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
    result = send("--template", "newsletter", "--json", data=data)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["queue"] == "marketing"


# ---------------------------------------------------------------- status
def test_status_of_an_id_with_no_record_says_so_with_exit_3(operator):
    result = postline("status", "never-sent")
    assert result.exit_code == 3
    assert result.stdout == f"{message_id_for('never-sent')}: {NO_RECORD}\n"


def test_status_json_of_an_id_with_no_record_keeps_status_and_says_not_found(operator):
    result = postline("status", "never-sent", "--json")
    assert result.exit_code == 3
    view = json.loads(result.stdout)
    assert (view["status"], view["found"], view["events"]) == ("unknown", False, [])
    assert view["reason"] == NO_RECORD.removeprefix("unknown: ")


def test_status_of_a_recorded_message_is_found_with_exit_0(operator):
    assert send("--template", "welcome", "--id", "recorded").exit_code == 0
    operator.run_render()
    result = postline("status", "recorded", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["found"] is True


# ---------------------------------------------------------------- suppressions and erasure
def test_suppressions_list_shows_whole_addresses(operator):
    address = "a.rather.long.name.for.a.mailbox@mail.subdomain.example.org"
    assert postline("suppressions", "add", address).exit_code == 0
    result = postline("suppressions", "list")  # not a terminal: rich's 80 columns
    assert result.exit_code == 0
    assert address in result.stdout and "…" not in result.stdout


def test_suppressions_import_with_invalid_rows_exits_1_saying_what_it_skipped_and_why(operator, tmp_path):
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,scope\nada@example.com,all\nnot-an-address,all\nbob@example.com,newsletters\n")
    result = postline("suppressions", "import", str(csv_file))
    assert result.exit_code == 1
    assert result.stdout == "suppressed 1 addresses\n"
    assert result.stderr.splitlines() == [
        "line 3: 'not-an-address': An email address must have an @-sign.",
        "line 4: 'bob@example.com': unknown scope 'newsletters'",
        "error: skipped 2 invalid rows (listed above): correct them and import them again"]
    assert [(s.email, s.scope) for s in Suppression.scan()] == [("ada@example.com", "all")]


def test_suppressions_import_json_with_invalid_rows_exits_1(operator, tmp_path):
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("ada@example.com\nnot-an-address\n")
    result = postline("suppressions", "import", str(csv_file), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["added"] == 1
    assert [row["line"] for row in json.loads(result.stdout)["invalid"]] == [2]


def test_declining_erase_is_not_an_error(operator):
    assert send("--template", "welcome", "--id", "kept").exit_code == 0
    operator.run_render()
    result = postline("erase", "ada@example.com", input="n\n")
    assert result.exit_code == 0
    assert result.stdout == "nothing erased\n"
    assert Message.get(message_id_for("kept")).recipient == "ada@example.com"
