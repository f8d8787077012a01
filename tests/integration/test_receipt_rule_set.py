"""The receipt rule set activation (infra/receipt_rule_set) against SES's own answers (moto's): a rule set active
before the deploy stays active, postline's is activated when nothing is, and the stack can delete it afterwards."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("receipt_rule_set", ROOT / "infra" / "receipt_rule_set" / "app.py")
activation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(activation)

OURS = "postline-unsubscribe-mail"


@pytest.fixture
def ses(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("ses")
        monkeypatch.setattr(activation, "_default_ses", lambda: client)
        for name in (OURS, "company-inbound"):
            client.create_receipt_rule_set(RuleSetName=name)
        yield client


@pytest.fixture
def answers(monkeypatch) -> list[tuple[str, str]]:
    sent = []
    monkeypatch.setattr(activation, "_answer", lambda event, status, physical_id, reason="": sent.append(
        (status, reason)))
    return sent


def _request(request_type: str) -> None:
    activation.handler({"RequestType": request_type, "ResourceProperties": {"RuleSetName": OURS}}, None)


def _active(ses) -> str | None:
    return ses.describe_active_receipt_rule_set().get("Metadata", {}).get("Name")


def test_a_rule_set_active_before_stays_active_through_the_refused_deploy_and_its_rollback(ses, answers):
    ses.set_active_receipt_rule_set(RuleSetName="company-inbound")
    _request("Create")
    _request("Delete")  # CloudFormation's rollback
    assert [status for status, _ in answers] == ["FAILED", "SUCCESS"]
    assert 'Set "receipt_rule_set": "company-inbound" in the deploy config' in answers[0][1]
    assert _active(ses) == "company-inbound"
    ses.delete_receipt_rule_set(RuleSetName=OURS)  # the rollback then deletes postline's inactive rule set


def test_with_nothing_active_postlines_is_activated_and_deactivated_before_it_is_deleted(ses, answers):
    _request("Create")
    assert _active(ses) == OURS
    _request("Update")  # already active: nothing changes
    assert _active(ses) == OURS
    _request("Delete")
    assert answers == [("SUCCESS", ""), ("SUCCESS", ""), ("SUCCESS", "")]
    assert _active(ses) is None
    ses.delete_receipt_rule_set(RuleSetName=OURS)


def test_a_rule_set_activated_after_the_deploy_survives_the_stacks_deletion(ses, answers):
    _request("Create")
    ses.set_active_receipt_rule_set(RuleSetName="company-inbound")  # the operator's later choice
    _request("Delete")
    assert answers == [("SUCCESS", ""), ("SUCCESS", "")]
    assert _active(ses) == "company-inbound"
