"""The deploy-time activation of postline's receipt rule set (infra/receipt_rule_set): it never deactivates someone
else's. What CloudFormation is told (status, reason) is read from the answer the handler sends to its response URL."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("receipt_rule_set", ROOT / "infra" / "receipt_rule_set" / "app.py")
activation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(activation)

OURS = "postline-unsubscribe-mail"
THEIRS = "company-inbound"
REFUSAL = (
    'The SES receipt rule set company-inbound is active in this account and region; activating postline\'s '
    '(postline-unsubscribe-mail) would deactivate it and stop the mail it receives. Set "receipt_rule_set": '
    '"company-inbound" in the deploy config so postline adds its rule to it, then deploy again (docs/deploy.md).')


class FakeSes:
    """SES's two calls as boto3 answers them: no Metadata when no rule set is active."""

    def __init__(self, active: str | None) -> None:
        self.active = active
        self.activations: list[dict] = []

    def describe_active_receipt_rule_set(self) -> dict:
        if self.active is None:
            return {"ResponseMetadata": {"HTTPStatusCode": 200}}
        return {"Metadata": {"Name": self.active, "CreatedTimestamp": "2026-01-01T00:00:00Z"}, "Rules": []}

    def set_active_receipt_rule_set(self, **parameters) -> dict:
        self.activations.append(parameters)
        self.active = parameters.get("RuleSetName")
        return {}


@pytest.fixture
def answers(monkeypatch) -> list[dict]:
    """The bodies the handler PUTs to CloudFormation's response URL."""
    sent = []

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b""

    def urlopen(request, timeout):
        assert request.get_method() == "PUT" and request.full_url == "https://cloudformation.example/response"
        sent.append(json.loads(request.data))
        return Response()

    monkeypatch.setattr(activation.urllib.request, "urlopen", urlopen)
    return sent


def _run(request_type: str, ses: FakeSes, monkeypatch) -> None:
    monkeypatch.setattr(activation, "_default_ses", lambda: ses)
    event = {"RequestType": request_type, "ResponseURL": "https://cloudformation.example/response",
             "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/postline/1", "RequestId": "r-1",
             "LogicalResourceId": "UnsubscribeMailActiveRuleSet", "ResourceType": "Custom::ReceiptRuleSetActivation",
             "ResourceProperties": {"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:activator",
                                    "RuleSetName": OURS}}
    if request_type != "Create":
        event["PhysicalResourceId"] = f"{OURS}-active"
    activation.handler(event, None)


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_with_no_rule_set_active_postlines_is_activated(request_type, answers, monkeypatch):
    ses = FakeSes(active=None)
    _run(request_type, ses, monkeypatch)
    assert ses.activations == [{"RuleSetName": OURS}]
    [answer] = answers
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", f"{OURS}-active")


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_with_postlines_already_active_nothing_is_called(request_type, answers, monkeypatch):
    ses = FakeSes(active=OURS)
    _run(request_type, ses, monkeypatch)
    assert ses.activations == []
    assert [a["Status"] for a in answers] == ["SUCCESS"]


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_with_another_rule_set_active_the_deploy_fails_saying_what_to_set(request_type, answers, monkeypatch, capsys):
    ses = FakeSes(active=THEIRS)
    _run(request_type, ses, monkeypatch)
    assert ses.activations == [] and ses.active == THEIRS
    [answer] = answers
    assert answer["Status"] == "FAILED"
    assert answer["Reason"] == REFUSAL  # what `cdk deploy` prints after "Received response status [FAILED]"
    assert json.loads(capsys.readouterr().out)["error"] == REFUSAL


def test_delete_deactivates_postlines_rule_set_when_it_is_the_active_one(answers, monkeypatch):
    ses = FakeSes(active=OURS)
    _run("Delete", ses, monkeypatch)
    assert ses.activations == [{}]  # no name: no rule set active, so SES lets CloudFormation delete it
    assert ses.active is None
    assert [a["Status"] for a in answers] == ["SUCCESS"]


@pytest.mark.parametrize("active", [THEIRS, None])
def test_delete_leaves_another_active_rule_set_alone(active, answers, monkeypatch):
    """Also the rollback of a Create refused because another rule set is active."""
    ses = FakeSes(active=active)
    _run("Delete", ses, monkeypatch)
    assert ses.activations == [] and ses.active == active
    assert [a["Status"] for a in answers] == ["SUCCESS"]


def test_an_ses_error_fails_the_request_with_its_reason(answers, monkeypatch):
    class Throttled(Exception):
        pass

    class FailingSes(FakeSes):
        def describe_active_receipt_rule_set(self) -> dict:
            raise Throttled("Rate exceeded")

    _run("Create", FailingSes(active=None), monkeypatch)
    [answer] = answers
    assert (answer["Status"], answer["Reason"]) == ("FAILED", "Throttled: Rate exceeded")
