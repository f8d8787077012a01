"""The conditional writes that move a message's status forward, checked the way DynamoDB checks them: every
placeholder an expression uses must be defined, and every one defined must be used (DynamoDB rejects both)."""
from __future__ import annotations

import re
from typing import Any

import pytest

from postline.models import Message
from postline.records import attribute_value, count_duplicates, old_status, put_new, update

TABLE = "pl-messages"
NAME = re.compile(r"#[A-Za-z0-9_]+")
VALUE = re.compile(r":[A-Za-z0-9_]+")


def check_placeholders(entry: dict[str, Any]) -> None:
    """Fail the way DynamoDB would: undefined or unused #names / :values, or empty maps."""
    ((kind, body),) = entry.items()
    expressions = " ".join(body.get(k, "") for k in ("UpdateExpression", "ConditionExpression"))
    names = body.get("ExpressionAttributeNames")
    values = body.get("ExpressionAttributeValues")
    if names is not None:
        assert names, "ExpressionAttributeNames must not be empty"
    if values is not None:
        assert values, "ExpressionAttributeValues must not be empty"
    assert set(NAME.findall(expressions)) == set(names or {}), f"{kind}: names used vs defined"
    assert set(VALUE.findall(expressions)) == set(values or {}), f"{kind}: values used vs defined"
    for value in (values or {}).values():
        assert len(value) == 1 and next(iter(value)) in ("S", "N", "BOOL", "M", "SS")
    assert body["TableName"] == TABLE


def record(**fields) -> Message:
    return Message("m1", status=fields.pop("status", "rendered"), recipient="ada@example.com", template="welcome",
                   template_version=2, stream="transactional", updated_at=1_700_000_000.5, attempts=0, **fields)


def test_put_new_creates_only_when_absent():
    entry = put_new(TABLE, record())
    check_placeholders(entry)
    put = entry["Put"]
    assert put["ConditionExpression"] == "attribute_not_exists(message_id)"
    assert put["Item"]["message_id"] == {"S": "m1"} and put["Item"]["status"] == {"S": "rendered"}
    assert put["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"  # so the caller learns what was there


def test_put_new_may_be_replaced_by_its_own_redelivery_or_the_retry_its_record_asked_for():
    entry = put_new(TABLE, record(rendered_by="sqs-1"), redelivery_replaces=("rendered",), retry=2)
    check_placeholders(entry)
    put = entry["Put"]
    assert put["ConditionExpression"].startswith("(#status IN (")  # a retry never creates a record
    assert "rendered_by = :by" in put["ConditionExpression"]
    assert "retry_requested = :retry AND (attribute_not_exists(#retry) OR #retry < :retry)" in (
        put["ConditionExpression"])
    values = put["ExpressionAttributeValues"]
    assert values[":by"] == {"S": "sqs-1"} and values[":retry"] == {"N": "2"} and values[":r0"] == {"S": "rendered"}
    assert put["ExpressionAttributeNames"] == {"#status": "status", "#retry": "retry"}


@pytest.mark.parametrize("kwargs", [
    # settle a send
    dict(set_values={"status": "sent", "ses_message_id": "0100-abc", "sent_at": 1.5, "updated_at": 2},
         condition="#status = :c_sending", condition_values={":c_sending": "sending"}),
    # claim: SET + ADD + a condition with several values and a bare attribute name
    dict(set_values={"status": "sending", "claimed_at": 10.0, "updated_at": 10.0}, add={"attempts": 1},
         condition="#status = :c_rendered OR (#status = :c_sending AND claimed_at < :c_stale)",
         condition_values={":c_rendered": "rendered", ":c_sending": "sending", ":c_stale": 9.0}),
    # give a claim back: SET + REMOVE
    dict(set_values={"status": "rendered", "reason": "SES Throttling", "updated_at": 3},
         remove=("claimed_at",), condition="#status = :c_sending", condition_values={":c_sending": "sending"}),
    # SET + ADD + REMOVE together
    dict(set_values={"status": "rendered"}, add={"attempts": 1, "duplicates": 2}, remove=("claimed_at", "reason"),
         condition="#status IN (:c_0, :c_1)", condition_values={":c_0": "sending", ":c_1": "rendered"}),
    # a claim that creates the record: fields set only where absent
    dict(set_values={"status": "sending"}, initial={"recipient": "ada@example.com", "tags": {"plan": "pro"}},
         add={"attempts": 1}, condition="#status = :c_rendered",
         condition_values={":c_rendered": "rendered"}),
    # no #status and no condition values at all
    dict(set_values={"last_duplicate_at": 5}, add={"duplicates": 3}, condition="attribute_exists(message_id)"),
    # values of every supported type
    dict(set_values={"flag": True, "count": 3, "at": 1.23456, "tags": {"plan": "pro", "n": 1}},
         condition="attribute_exists(message_id)"),
])
def test_update_placeholders_are_all_defined_and_all_used(kwargs):
    entry = update(TABLE, "m1", **kwargs)
    check_placeholders(entry)
    body = entry["Update"]
    assert body["Key"] == {"message_id": {"S": "m1"}}
    assert body["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    # every attribute the caller named is written, under its real name
    expected = (set(kwargs["set_values"]) | set(kwargs.get("initial") or {}) | set(kwargs.get("add") or {})
                | set(kwargs.get("remove", ())))
    if "#status" in kwargs["condition"]:
        expected.add("status")
    assert set(body["ExpressionAttributeNames"].values()) == expected


def test_update_expression_has_set_add_and_remove_clauses():
    body = update(TABLE, "m1", set_values={"status": "sending"}, add={"attempts": 1}, remove=("claimed_at",),
                  condition="attribute_exists(message_id)")["Update"]
    expression = body["UpdateExpression"]
    assert expression.startswith("SET ")
    assert expression.index("SET ") < expression.index(" ADD ") < expression.index(" REMOVE ")


def test_update_with_the_records_fields_may_create_the_record_and_only_fills_what_is_missing():
    body = update(TABLE, "m1", set_values={"status": "sending"}, initial={"recipient": "ada@example.com"},
                  condition="#status = :c_rendered", condition_values={":c_rendered": "rendered"})["Update"]
    assert body["ConditionExpression"] == "attribute_not_exists(message_id) OR #status = :c_rendered"
    assert "if_not_exists(#i0, :i0)" in body["UpdateExpression"]
    without = update(TABLE, "m1", set_values={"status": "sending"}, condition="#status = :c_rendered",
                     condition_values={":c_rendered": "rendered"})["Update"]
    assert without["ConditionExpression"] == "#status = :c_rendered"  # an existing record only


def test_update_values_are_typed_for_dynamodb():
    body = update(TABLE, "m1", set_values={"status": "sent", "sent_at": 1_700_000_000.123456, "attempts": 2},
                  condition="#status = :c", condition_values={":c": "sending"})["Update"]
    values = {body["ExpressionAttributeNames"][n]: body["ExpressionAttributeValues"][":" + n[1:]]
              for n in body["ExpressionAttributeNames"] if n != "#status"}
    assert values == {"status": {"S": "sent"}, "sent_at": {"N": "1700000000.123"}, "attempts": {"N": "2"}}


@pytest.mark.parametrize("value, expected", [(True, {"BOOL": True}), (0, {"N": "0"}), (2.5, {"N": "2.5"}),
                                             ("x", {"S": "x"}), ({"a": 1}, {"M": {"a": {"N": "1"}}})])
def test_attribute_value(value, expected):
    assert attribute_value(value) == expected


def test_attribute_value_refuses_what_dynamodb_cannot_store():
    with pytest.raises(TypeError):
        attribute_value(None)


def test_count_duplicates_gives_one_entry_per_message_adding_each_repeats_sqs_message_once():
    repeats = [("m1", "q1"), ("m2", "q2"), ("m1", "q3"), ("m3", "q4"), ("m1", "q1"), ("m2", "q5")]
    entries = count_duplicates(TABLE, repeats, now=42)
    assert len(entries) == 3  # a transaction may touch an item only once
    added_by_message = {}
    for entry in entries:
        check_placeholders(entry)
        body = entry["Update"]
        names, values = body["ExpressionAttributeNames"], body["ExpressionAttributeValues"]
        added = {names[n]: values[v] for n, v in re.findall(r"(#a\d+) (:a\d+)", body["UpdateExpression"])}
        added_by_message[body["Key"]["message_id"]["S"]] = added["repeats"]["SS"]
        assert {"N": "42"} in values.values()  # last_duplicate_at
        assert body["ConditionExpression"] == "attribute_exists(message_id)"
    # A set: SQS delivering the repeat q1 twice adds it once.
    assert added_by_message == {"m1": ["q1", "q3"], "m2": ["q2", "q5"], "m3": ["q4"]}


def test_count_duplicates_of_nothing_is_nothing():
    assert count_duplicates(TABLE, [], now=1) == []


def test_old_status_reads_the_item_returned_on_condition_failure():
    assert old_status({"status": {"S": "sent"}, "message_id": {"S": "m1"}}) == "sent"
    assert old_status(None) is None
    assert old_status({}) is None
