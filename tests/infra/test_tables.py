"""Tables: keyed like the library's models, on-demand, PITR, encrypted, TTL on event data, the GSI it queries."""
from __future__ import annotations

import pytest

from postline.models import EmailEvent, Message, Suppression, Template
from stacks.constants import TABLES


def _keys(properties):
    return {k["AttributeName"]: k["KeyType"] for k in properties["KeySchema"]}


def _table(synth, name):
    return synth.resource(synth.stack.tables.tables[name])


def test_every_table_is_on_demand_recoverable_and_encrypted(synth):
    tables = synth.resources("AWS::DynamoDB::Table")
    assert len(tables) == len(TABLES) == 7
    for name in TABLES:
        properties = _table(synth, name)["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        # the expiring history and the counters derived from it, unless the config asks
        backed_up = name not in ("messages", "email_events", "stats")
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": backed_up}
        assert properties["SSESpecification"] == {"SSEEnabled": True}  # the AWS managed KMS key
        assert properties["DeletionProtectionEnabled"] is True
        assert _table(synth, name)["DeletionPolicy"] == "Retain"


def test_data_can_be_released_and_history_backed_up_when_configured(variant):
    for table in variant.resources("AWS::DynamoDB::Table").values():
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert table["Properties"]["DeletionProtectionEnabled"] is False
        assert table["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("name, model", [
    ("messages", Message), ("email_events", EmailEvent), ("email_suppressions", Suppression),
    ("templates", Template),
])
def test_keys_match_the_library_models(synth, name, model):
    expected = {model._hash_keyname: "HASH"}
    if model._range_keyname:
        expected[model._range_keyname] = "RANGE"
    assert _keys(_table(synth, name)["Properties"]) == expected


def test_keys_of_the_other_tables(synth):
    assert _keys(_table(synth, "campaigns")["Properties"]) == {"campaign_id": "HASH"}
    assert _keys(_table(synth, "rate_limits")["Properties"]) == {"bucket": "HASH", "window": "RANGE"}
    # postline.analytics: a row per campaign, template or stream (scope), counters and markers under it (key)
    assert _keys(_table(synth, "stats")["Properties"]) == {"scope": "HASH", "key": "RANGE"}
    types = {a["AttributeName"]: a["AttributeType"]
             for a in _table(synth, "templates")["Properties"]["AttributeDefinitions"]}
    assert types == {"name": "S", "version": "N"}


def test_ttl_on_event_data_and_message_records(synth):
    for name in ("email_events", "rate_limits", "messages", "stats"):
        assert _table(synth, name)["Properties"]["TimeToLiveSpecification"] == {
            "AttributeName": "expires_at", "Enabled": True}
    for name in ("email_suppressions", "templates"):  # kept until removed: they are the product's memory
        assert "TimeToLiveSpecification" not in _table(synth, name)["Properties"]


def test_no_table_has_a_secondary_index(synth):
    """Every index entry is another billed write (SES events find their message by its tag, not by an index)."""
    for name in TABLES:
        assert "GlobalSecondaryIndexes" not in _table(synth, name)["Properties"]
        assert "LocalSecondaryIndexes" not in _table(synth, name)["Properties"]
