"""transact_write with dependents: an item written only together with the checks it depends on."""
from __future__ import annotations

import pytest

from postline import dynamo
from postline.dynamo import ConditionFailed, Withdrawn, transact_write

from .fakes import FakeTransactions


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch):
    monkeypatch.setattr(dynamo, "_pause", lambda attempt: None)


def write(name: str) -> dict:
    return {"Update": {"TableName": "messages", "Key": {"message_id": {"S": name}}, "UpdateExpression": "SET a = :a",
                       "ExpressionAttributeValues": {":a": {"N": "1"}}}}


def check(name: str) -> dict:
    return {"ConditionCheck": {"TableName": "suppressions", "Key": {"email": {"S": name}, "scope": {"S": "all"}},
                               "ConditionExpression": "attribute_not_exists(email)"}}


def test_a_failed_check_withdraws_its_dependents_and_the_rest_are_written_with_their_checks():
    found = {"email": {"S": "bad@x"}, "scope": {"S": "all"}, "reason": {"S": "complaint"}}
    fake = FakeTransactions(condition_fails={"bad@x": found})
    items = [check("ok@x"), write("m1"), check("bad@x"), write("m2"), write("m3")]
    outcome = transact_write(fake, items, {0: [1], 2: [3]})
    assert outcome == [None, None, ConditionFailed(found), Withdrawn(2), None]
    assert fake.calls == [["ok@x", "m1", "bad@x", "m2", "m3"], ["ok@x", "m1", "m3"]]
    assert fake.written == ["m1", "m3"]


def test_a_check_shared_by_two_writes_withdraws_both():
    fake = FakeTransactions(condition_fails={"bad@x": {}})
    outcome = transact_write(fake, [write("m1"), write("m2"), check("bad@x")], {2: [0, 1]})
    assert outcome[:2] == [Withdrawn(2), Withdrawn(2)]
    assert fake.written == [] and len(fake.calls) == 1  # nothing left to write: no second call


def test_a_write_failing_its_own_condition_reports_that_and_its_idle_check_is_dropped():
    fake = FakeTransactions(condition_fails={"m1": None})
    outcome = transact_write(fake, [check("ok@x"), write("m1"), write("m2")], {0: [1]})
    assert outcome == [None, ConditionFailed(None), None]
    assert fake.calls[-1] == ["m2"]


def test_dependents_travel_with_their_check_across_transactions():
    items, dependents = [], {}
    for i in range(40):  # 40 x (check + write) = 80 items, plus 30 plain writes: two transactions
        dependents[len(items)] = [len(items) + 1]
        items += [check(f"a{i}@x"), write(f"c{i}")]
    items += [write(f"p{i}") for i in range(30)]
    fake = FakeTransactions()
    transact_write(fake, items, dependents)
    assert [len(c) for c in fake.calls] == [100, 10]
    for call in fake.calls:
        for i in range(40):
            assert (f"a{i}@x" in call) == (f"c{i}" in call)


def test_without_dependents_nothing_changes():
    fake = FakeTransactions(condition_fails={"m1": None})
    assert transact_write(fake, [write("m0"), write("m1")]) == [None, ConditionFailed(None)]


def test_withdrawal_reaches_the_dependents_of_a_withdrawn_item():
    fake = FakeTransactions(condition_fails={"bad@x": {}})
    outcome = transact_write(fake, [check("bad@x"), write("m1"), write("kept1"), write("m2")], {0: [1], 1: [2]})
    assert outcome[1:] == [Withdrawn(0), Withdrawn(0), None]
    assert fake.written == ["m2"]
