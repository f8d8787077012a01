"""The cost model prices the history as long as a deployment keeps it by default, and shows what keeping it
90 days would add."""
from __future__ import annotations

import pytest

from bench.cost_model import DAYS_PER_MONTH, Assumptions, model
from postline.settings import Settings

EMAILS = 10


def _scenario():
    """One measured marketing batch, shaped as bench.lifecycle records it (small, fixed numbers)."""
    pixel = {"op": "dynamodb.PutItem", "table": "postline-email-events", "bytes": 163}
    return {
        "emails": EMAILS, "inbound_bytes_per_email": 2000, "message_item_bytes": [480] * EMAILS,
        "phases": {
            "render": {"cpu_s": 0.03, "log_bytes": 600, "log_lines": 1,
                       "requests": [{"op": "sqs.SendMessageBatch", "bytes": 90_000}]},
            "send": {"cpu_s": 0.05, "log_bytes": 600, "log_lines": 1, "sqs_bytes_in": 90_000, "requests": [
                {"op": "dynamodb.BatchGetItem", "keys": {"postline-email-suppressions": 4 * EMAILS}},
                {"op": "dynamodb.BatchExecuteStatement",
                 "items": [{"table": "postline-messages", "bytes": 300}] * EMAILS},
                *[{"op": "sesv2.SendEmail", "bytes": 31_000}] * EMAILS]},
            "ses_events Delivery": {"cpu_s": 0.04, "events": EMAILS, "batches": 1, "sqs_bytes_in": 11_000, "requests": [
                *[{"op": "dynamodb.UpdateItem", "table": "postline-messages"}] * EMAILS,
                # a late delivery's event row, beside the record
                {"op": "dynamodb.BatchWriteItem", "items": [{"table": "postline-email-events", "bytes": 300}]}]},
            "ses_events Send": {"cpu_s": 0.007, "events": EMAILS, "batches": 1, "sqs_bytes_in": 9_000, "requests": [
                {"op": "dynamodb.BatchGetItem", "keys": {"postline-messages": EMAILS}}]},
            "track_open": {"cpu_s": 0.008, "hits": 1, "requests": [
                {"op": "dynamodb.GetItem", "table": "postline-messages"}, pixel]},
            "track_click": {"cpu_s": 0.007, "hits": 1, "requests": [
                {"op": "dynamodb.GetItem", "table": "postline-messages"}, {**pixel, "bytes": 186}]},
        },
    }


def _kept(days: float, **other) -> Assumptions:
    return Assumptions(message_retention_months=days / DAYS_PER_MONTH, event_retention_months=days / DAYS_PER_MONTH,
                       **other)


def _line(cost: dict, starts: str, key: str = "per_million_emails") -> dict | None:
    return next((row for row in cost[key] if row["item"].startswith(starts)), None)


def test_the_model_keeps_the_history_as_long_as_a_deployment_does_by_default():
    # The functions' own defaults (what a deployment that sets nothing keeps), not the model's.
    settings = {f.name: f.default for f in Settings.__dataclass_fields__.values()}
    assume = Assumptions()
    assert assume.message_retention_months * DAYS_PER_MONTH == pytest.approx(settings["message_ttl_days"])
    assert assume.event_retention_months * DAYS_PER_MONTH == pytest.approx(settings["event_ttl_days"])
    default = model(_scenario())
    assert _line(default, "DynamoDB storage")["usd"] == pytest.approx(
        _line(model(_scenario(), assume=_kept(settings["message_ttl_days"])), "DynamoDB storage")["usd"])


def test_keeping_the_history_90_days_is_an_optional_line_priced_as_the_storage_it_adds():
    default, ninety = model(_scenario()), model(_scenario(), assume=_kept(90))
    line = _line(default, "history kept 90 days", "optional_per_million_emails")
    assert line is not None and "message_ttl_days" in line["item"] and "event_ttl_days" in line["item"]
    extra_storage = _line(ninety, "DynamoDB storage")["usd"] - _line(default, "DynamoDB storage")["usd"]
    assert line["usd"] > 0
    assert line["usd"] == pytest.approx(extra_storage)
    assert line["usd"] == pytest.approx(ninety["total_usd"] - default["total_usd"])  # nothing else changes
    # Three times as long, three times the storage.
    assert _line(ninety, "DynamoDB storage")["usd"] == pytest.approx(3 * _line(default, "DynamoDB storage")["usd"])
    assert _line(default, "history kept") is None  # an option, not in the total


def test_with_backups_of_the_history_the_line_includes_their_growth_too():
    default = model(_scenario(), assume=Assumptions(backup_history=True))
    ninety = model(_scenario(), assume=_kept(90, backup_history=True))
    line = _line(default, "history kept 90 days", "optional_per_million_emails")
    assert line["usd"] == pytest.approx(ninety["total_usd"] - default["total_usd"])
    assert line["usd"] > _line(model(_scenario()), "history kept 90 days", "optional_per_million_emails")["usd"]


def test_no_such_line_when_the_history_is_already_kept_that_long():
    assert _line(model(_scenario(), assume=_kept(90)), "history kept", "optional_per_million_emails") is None
    assert _line(model(_scenario(), assume=_kept(400)), "history kept", "optional_per_million_emails") is None


def test_a_tracking_hit_is_one_invocation_however_many_hits_were_measured():
    def invocations(hits: int) -> float:
        scenario = _scenario()
        for name in ("track_open", "track_click"):
            phase = scenario["phases"][name]
            phase["hits"], phase["cpu_s"] = hits, phase["cpu_s"] * hits
            phase["requests"] = phase["requests"] * hits
        row = _line(model(scenario), "Lambda requests")
        return float(row["detail"].split()[0]), row["usd"]

    one, five = invocations(1), invocations(5)
    assert five == pytest.approx(one)
    # render, send, two ses_events batches per ten emails, and the opens and clicks one each
    assume = Assumptions()
    assert one[0] == pytest.approx(4 / EMAILS + assume.opens_per_email + assume.clicks_per_email, abs=0.005)


def test_the_sns_route_pays_for_each_publish_and_has_no_send_events():
    scenario = _scenario()
    del scenario["phases"]["ses_events Send"]
    scenario["phases"]["ses_events Delivery"]["sns_publishes"] = EMAILS
    scenario["ses_event_route"] = "sns"
    by_sns, by_eventbridge = model(scenario), model(_scenario())
    sns = _line(by_sns, "SNS (SES events)")
    assert sns["usd"] == pytest.approx(0.50)  # one publish an email, $0.50 a million
    assert _line(by_sns, "EventBridge (SES events") is None and _line(by_eventbridge, "SNS") is None
    assert "late deliveries" not in _line(by_sns, "DynamoDB writes")["detail"]
    assert "late deliveries" in _line(by_eventbridge, "DynamoDB writes")["detail"]
    assert by_sns["target_usd"] == 6.0 and by_sns["ses_event_route"] == "sns"
