"""Batched DynamoDB writes and reads: failed conditions are reported per item, the rest still get written."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from postline import dynamo
from postline.dynamo import ConditionFailed, RetryLater, batch_get, transact_write

from .fakes import FakeTransactions, client_error


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch):
    pauses: list[int] = []
    monkeypatch.setattr(dynamo, "_pause", pauses.append)
    return pauses


def item(message_id: str) -> dict:
    return {"Update": {"TableName": "t", "Key": {"message_id": {"S": message_id}}, "UpdateExpression": "SET a = :a",
                       "ConditionExpression": "attribute_exists(message_id)",
                       "ExpressionAttributeValues": {":a": {"N": "1"}}}}


def test_all_items_written_in_one_call():
    fake = FakeTransactions()
    assert transact_write(fake, [item(f"m{i}") for i in range(5)]) == [None] * 5
    assert fake.calls == [["m0", "m1", "m2", "m3", "m4"]]
    assert fake.written == ["m0", "m1", "m2", "m3", "m4"]


def test_failed_condition_is_reported_with_the_old_item_and_the_rest_are_written():
    old = {"message_id": {"S": "m1"}, "status": {"S": "sent"}}
    fake = FakeTransactions(condition_fails={"m1": old})
    outcome = transact_write(fake, [item("m0"), item("m1"), item("m2")])
    assert outcome == [None, ConditionFailed(old), None]
    assert fake.calls == [["m0", "m1", "m2"], ["m0", "m2"]]
    assert fake.written == ["m0", "m2"]


def test_failed_condition_on_a_missing_item_has_no_old_item():
    fake = FakeTransactions(condition_fails={"m0": None})
    assert transact_write(fake, [item("m0")]) == [ConditionFailed(None)]
    assert fake.written == []


def test_every_item_failing_its_condition_writes_nothing_and_stops():
    fake = FakeTransactions(condition_fails={"m0": {"status": {"S": "a"}}, "m1": {"status": {"S": "b"}}})
    outcome = transact_write(fake, [item("m0"), item("m1")])
    assert outcome == [ConditionFailed({"status": {"S": "a"}}), ConditionFailed({"status": {"S": "b"}})]
    assert len(fake.calls) == 1


@pytest.mark.parametrize("code", ["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"])
def test_other_cancellation_codes_are_retried_until_written(code, no_sleeping):
    fake = FakeTransactions(transient={"m1": [code, code]})
    assert transact_write(fake, [item("m0"), item("m1"), item("m2")]) == [None, None, None]
    assert sorted(fake.written) == ["m0", "m1", "m2"]
    assert len(fake.calls) == 3
    assert no_sleeping  # it backed off before retrying


def test_conflict_and_failed_condition_in_the_same_call():
    fake = FakeTransactions(condition_fails={"m0": {"status": {"S": "sent"}}},
                            transient={"m2": ["TransactionConflict"]})
    outcome = transact_write(fake, [item("m0"), item("m1"), item("m2")])
    assert outcome == [ConditionFailed({"status": {"S": "sent"}}), None, None]
    assert sorted(fake.written) == ["m1", "m2"]


def test_a_conflict_that_never_clears_becomes_retry_later():
    fake = FakeTransactions(transient={"m0": ["TransactionConflict"] * 50})
    with pytest.raises(RetryLater, match="kept failing"):
        transact_write(fake, [item("m0"), item("m1")])
    assert fake.written == []
    assert len(fake.calls) <= 6  # bounded, not forever


@pytest.mark.parametrize("error", [
    client_error("ValidationException", "Transaction request cannot include multiple operations on one item"),
    client_error("ResourceNotFoundException", "Requested resource not found"),
    client_error("AccessDeniedException", "no"),
])
def test_non_cancellation_errors_propagate(error):
    fake = FakeTransactions(error=error)
    with pytest.raises(ClientError) as caught:
        transact_write(fake, [item("m0")])
    assert caught.value is error
    assert len(fake.calls) == 1


def test_cancellation_without_matching_reasons_propagates():
    fake = FakeTransactions(error=client_error("TransactionCanceledException", "cancelled",
                                               CancellationReasons=[{"Code": "None"}]))
    with pytest.raises(ClientError):
        transact_write(fake, [item("m0"), item("m1")])


def test_more_than_100_items_are_split_into_chunks_of_100():
    fake = FakeTransactions(condition_fails={"m150": {"status": {"S": "sent"}}})
    items = [item(f"m{i}") for i in range(250)]
    outcome = transact_write(fake, items)
    # the second chunk is cancelled by m150 and written again without it
    assert [len(c) for c in fake.calls] == [100, 100, 99, 50]
    assert fake.calls[0][0] == "m0" and fake.calls[1][0] == "m100" and fake.calls[3][0] == "m200"
    assert "m150" not in fake.calls[2]
    assert outcome[150] == ConditionFailed({"status": {"S": "sent"}})
    assert sum(o is None for o in outcome) == 249
    assert sorted(fake.written) == sorted(f"m{i}" for i in range(250) if i != 150)


def test_nothing_to_write_makes_no_call():
    fake = FakeTransactions()
    assert transact_write(fake, []) == []
    assert fake.calls == []


def test_a_single_throttled_call_of_many_items_is_retried():
    fake = FakeTransactions(transient={f"m{i}": ["ThrottlingError"] for i in range(10)})
    assert transact_write(fake, [item(f"m{i}") for i in range(10)]) == [None] * 10
    assert sorted(fake.written) == sorted(f"m{i}" for i in range(10))


# --- batch_get ------------------------------------------------------------------------------------------------------

def key(i: int) -> dict:
    return {"message_id": {"S": f"m{i}"}}


class FakeBatchGet:
    """BatchGetItem over in-memory tables; ``unprocessed`` keys are left over on their first request."""

    def __init__(self, tables: dict[str, set[str]], unprocessed: dict[str, int] | None = None) -> None:
        self.tables = tables
        self.unprocessed = dict(unprocessed or {})  # key -> how many more times to leave it unprocessed
        self.calls: list[dict[str, list[str]]] = []

    def batch_get_item(self, RequestItems):
        asked = {t: [k["message_id"]["S"] for k in r["Keys"]] for t, r in RequestItems.items()}
        self.calls.append(asked)
        assert sum(len(v) for v in asked.values()) <= 100, "BatchGetItem takes at most 100 keys"
        responses, left = {}, {}
        for table, ids in asked.items():
            for message_id in ids:
                if self.unprocessed.get(message_id, 0) > 0:
                    self.unprocessed[message_id] -= 1
                    left.setdefault(table, {"Keys": []})["Keys"].append({"message_id": {"S": message_id}})
                elif message_id in self.tables.get(table, set()):
                    responses.setdefault(table, []).append({"message_id": {"S": message_id}, "table": {"S": table}})
        return {"Responses": responses, "UnprocessedKeys": left}


def found_ids(result: dict, table: str) -> list[str]:
    return sorted(i["message_id"]["S"] for i in result[table])


def test_batch_get_returns_what_exists_per_table():
    fake = FakeBatchGet({"a": {"m1", "m2"}, "b": {"m3"}})
    result = batch_get(fake, {"a": [key(1), key(2), key(9)], "b": [key(3)]})
    assert found_ids(result, "a") == ["m1", "m2"]
    assert found_ids(result, "b") == ["m3"]
    assert len(fake.calls) == 1


def test_batch_get_chunks_at_100_keys():
    fake = FakeBatchGet({"a": {f"m{i}" for i in range(250)}})
    result = batch_get(fake, {"a": [key(i) for i in range(250)]})
    assert [len(c["a"]) for c in fake.calls] == [100, 100, 50]
    assert len(result["a"]) == 250


def test_batch_get_chunks_across_tables():
    fake = FakeBatchGet({"a": {f"m{i}" for i in range(80)}, "b": {f"m{i}" for i in range(80)}})
    result = batch_get(fake, {"a": [key(i) for i in range(80)], "b": [key(i) for i in range(80)]})
    assert [sum(len(v) for v in c.values()) for c in fake.calls] == [100, 60]
    assert len(result["a"]) == len(result["b"]) == 80


def test_batch_get_follows_unprocessed_keys(no_sleeping):
    fake = FakeBatchGet({"a": {"m1", "m2", "m3"}}, unprocessed={"m2": 2, "m3": 1})
    result = batch_get(fake, {"a": [key(1), key(2), key(3)]})
    assert found_ids(result, "a") == ["m1", "m2", "m3"]
    assert fake.calls == [{"a": ["m1", "m2", "m3"]}, {"a": ["m2", "m3"]}, {"a": ["m2"]}]
    assert len(no_sleeping) == 2


def test_batch_get_gives_up_on_keys_that_stay_unprocessed():
    fake = FakeBatchGet({"a": {"m1"}}, unprocessed={"m1": 1000})
    with pytest.raises(RetryLater, match="unprocessed"):
        batch_get(fake, {"a": [key(1)]})
    assert len(fake.calls) <= 6


def test_batch_get_of_nothing_makes_no_call():
    fake = FakeBatchGet({})
    assert batch_get(fake, {"a": []}) == {"a": []}
    assert fake.calls == []
