"""Managing the suppression list: history, filters, CSV import and export, and that imports take effect."""
from __future__ import annotations

import io
import json
from pathlib import Path

from postline.contract import message_id_for
from postline.models import Message, Suppression
from postline.suppression import suppression_names
from postline_cli import suppressions as manage

ROOT = Path(__file__).resolve().parents[2]


def test_add_and_remove_keep_a_history_and_show_separates_it(pipeline):
    manage.add("ada@example.com", "all", "manual", "asked by phone")
    [removed] = manage.remove(["ada@example.com"], "all", "ticket 1234: mistaken")
    assert removed.reason == "manual"
    active, history, _ = manage.show(["ada@example.com"])
    assert active == []
    assert [(h.scope.rsplit("#", 1)[1], h.reason, h.detail) for h in history] == [
        ("added", "manual", "asked by phone"), ("removed", "manual", "ticket 1234: mistaken")]
    assert manage.remove(["ada@example.com"], "all", "again") == []
    assert list(manage.iterate()) == []  # history entries are not suppressions


def test_show_and_remove_find_an_address_kept_under_its_erased_form(pipeline):
    names = suppression_names("ada@example.com", b"e" * 32)  # an unsubscribe after its record expired
    Suppression(names[1], "marketing", reason="unsubscribe", suppressed_at=1.0, source="one-click").save()
    active, _, _ = manage.show(names)
    assert [(s.email, s.scope, s.reason) for s in active] == [(names[1], "marketing", "unsubscribe")]
    assert [s.reason for s in manage.remove(names, "marketing", "asked to rejoin")] == ["unsubscribe"]
    active, history, _ = manage.show(names)
    assert active == [] and [(h.email, h.detail) for h in history] == [(names[1], "asked to rejoin")]


def test_iterate_filters(pipeline):
    manage.add("a@example.com", "all", "hard_bounce", None, source="ses:Bounce")
    manage.add("b@example.com", "marketing", "unsubscribe", None, source="one-click")
    manage.add("c@example.com", "all", "manual", None)
    assert {i.email for i in manage.iterate(scope="all")} == {"a@example.com", "c@example.com"}
    assert {i.email for i in manage.iterate(reason="unsubscribe")} == {"b@example.com"}
    assert {i.email for i in manage.iterate(source="ses:")} == {"a@example.com"}


def test_import_thousands_reports_bad_rows_and_takes_effect(pipeline):
    rows = ["email,scope,reason"] + [f"User{i}@Example.COM,marketing,unsubscribe" for i in range(3000)]
    rows += ["not-an-address,all,manual", "x@example.com,everything,manual", "y@example.com,all,because",
             "erased:12ab,all,manual", ""]
    rows += ["block@example.com,,"]  # defaults apply
    progress = []
    result = manage.import_csv(io.StringIO("\n".join(rows)), "all", "manual", source="import:test.csv",
                               progress=lambda done, total: progress.append((done, total)))
    assert result.added == 3001
    assert [(line, value) for line, value, _ in result.invalid] == [
        (3002, "not-an-address"), (3003, "x@example.com"), (3004, "y@example.com"), (3005, "erased:12ab")]
    assert progress[-1] == (3001, 3001) and len(progress) == 121
    # Kept without regard to case: User0@ and user0@ are one person.
    assert {i.email for i in manage.iterate(reason="unsubscribe")} >= {"user0@example.com", "user2999@example.com"}

    data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
    pipeline.enqueue("transactional", {"template": "welcome", "to": "block@example.com", "data": data, "id": "b"})
    pipeline.drain()
    assert Message.get(message_id_for("b")).status == "suppressed"


def test_a_headerless_file_of_addresses(pipeline):
    result = manage.import_csv(io.StringIO("one@example.com\ntwo@example.com\n"), "transactional", "manual",
                               source="import:list.txt")
    assert result.added == 2 and result.invalid == []
    assert {(i.email, i.scope) for i in manage.iterate()} == {("one@example.com", "transactional"),
                                                               ("two@example.com", "transactional")}


def test_export_round_trips_through_import(pipeline):
    manage.add("a@example.com", "all", "complaint", "feedback loop")
    manage.add("b@example.com", "marketing", "unsubscribe", None)
    erased = suppression_names("c@example.com", b"e" * 32)[1]  # kept only as its keyed hash
    manage.add(erased, "marketing", "unsubscribe", None)
    exported = io.StringIO()
    assert manage.export_csv(exported, manage.iterate()) == 3
    text = exported.getvalue()
    assert text.splitlines()[0] == "email,scope,reason,suppressed_at,source,detail"
    for item in list(manage.iterate()):
        item.delete()
    result = manage.import_csv(io.StringIO(text), "all", "manual", source="import:export.csv")
    assert result.added == 3 and result.invalid == []
    assert {(i.email, i.scope, i.reason) for i in manage.iterate()} == {
        ("a@example.com", "all", "complaint"), ("b@example.com", "marketing", "unsubscribe"),
        (erased, "marketing", "unsubscribe")}
