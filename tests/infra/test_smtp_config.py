"""A stream on an SMTP relay in the deploy config (issue 26): validated with clear errors, given to the send function
alone, whose role may read that secret and no other (cdk-nag clean: the synth fails on a finding)."""
from __future__ import annotations

import json

import pytest

from postline.smtp import parse_relays

from .conftest import _synthesize, parse_config

BASE = {"domain": "mail.example.com", "from_address": "Lumen <hello@mail.example.com>"}
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:postline/postmark-AbC123"
SMTP_CONFIG = {**BASE, "stack_name": "postline-smtp", "transports": {
    "critical": {"type": "smtp", "host": "smtp.postmarkapp.com", "port": 587, "tls": "starttls", "secret": SECRET_ARN},
    "transactional": {"type": "smtp", "host": "email-smtp.us-east-1.amazonaws.com", "port": 465, "tls": "implicit",
                      "secret": "postline/ses-smtp"},
    "marketing": "ses_api",
}}


def _problems(transports) -> list[str]:
    with pytest.raises(ValueError) as caught:
        parse_config({**BASE, "transports": transports})
    return str(caught.value).split("\n  - ")[1:]


def test_streams_default_to_ses_api_and_smtp_streams_are_read():
    assert parse_config(BASE).transports == {}
    config = parse_config(SMTP_CONFIG)
    assert sorted(config.transports) == ["critical", "transactional"]
    assert config.transports["critical"].relay() == {"host": "smtp.postmarkapp.com", "port": 587, "tls": "starttls",
                                                     "secret": SECRET_ARN}


def test_each_problem_with_a_transport_is_named():
    assert _problems({
        "urgent": "smtp",
        "critical": {"type": "smtp", "host": "smtp.example.net", "port": 25, "tls": "none", "secret": "s"},
        "transactional": {"type": "smtp", "host": "smtp.example.net", "port": 465, "tls": "starttls",
                          "username": "me", "secret": "arn:aws:secretsmanager:us-east-1:1:secret:x"},
        "marketing": "sendgrid",
    }) == [
        "transports.urgent: unknown stream (streams: critical, transactional, marketing)",
        'transports.critical.tls: must be "implicit" (TLS from the start, port 465) or "starttls" (port 587), got '
        "'none'; a deployed relay is never reached in plaintext",
        "transports.transactional.username: unknown key (known: type, host, port, tls, secret)",
        "transports.transactional.port: 465 is the port for implicit TLS, not starttls (use 587)",
        'transports.transactional.secret: must be the name or complete ARN of a Secrets Manager secret holding '
        '{"username": ..., "password": ...} (never the credentials themselves)',
        """transports.marketing: must be "ses_api" or {"type": "smtp", "host", "port", "tls", "secret"}, got """
        "'sendgrid'",
    ]


@pytest.fixture(scope="module")
def relayed(tmp_path_factory):
    return _synthesize(parse_config(SMTP_CONFIG, "smtp"), tmp_path_factory.mktemp("cdk.out.smtp"),
                       context={"aws:cdk:bundling-stacks": []})


def test_only_the_send_function_is_told_the_relays_and_reads_them_as_given(relayed):
    functions = relayed.stack.functions.functions
    environments = {name: relayed.resource(function)["Properties"]["Environment"]["Variables"]
                    for name, function in functions.items()}
    assert [name for name, variables in environments.items() if "POSTLINE_SMTP_RELAYS" in variables] == ["send"]
    relays = json.loads(environments["send"]["POSTLINE_SMTP_RELAYS"])
    assert relays["transactional"] == {"host": "email-smtp.us-east-1.amazonaws.com", "port": 465, "tls": "implicit",
                                       "secret": "postline/ses-smtp"}
    read = parse_relays(environments["send"]["POSTLINE_SMTP_RELAYS"], ("critical", "transactional", "marketing"))
    assert sorted(read) == ["critical", "transactional"] and read["transactional"].is_ses


def _secret_grants(synth, function: str) -> list[dict]:
    return [s for s in synth.policy_statements(function)
            if any(str(a).startswith("secretsmanager:") for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                                   else s["Action"]))]


def test_send_may_read_the_relays_secrets_and_no_other(relayed):
    statements = [s for s in _secret_grants(relayed, "send")]
    assert len(statements) == 1 and statements[0]["Action"] == "secretsmanager:GetSecretValue"
    resources = statements[0]["Resource"]
    named = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":secretsmanager:", {"Ref": "AWS::Region"}, ":",
                               {"Ref": "AWS::AccountId"}, ":secret:postline/ses-smtp-??????"]]}
    assert sorted(map(json.dumps, resources)) == sorted(map(json.dumps, [SECRET_ARN, named]))
    # The other functions never see a relay's credentials.
    for name in relayed.stack.functions.functions:
        if name != "send":
            assert not any("postline/" in json.dumps(s["Resource"]) and "ses-smtp" in json.dumps(s["Resource"])
                           for s in _secret_grants(relayed, name))


def test_without_a_relay_send_reads_no_secret(synth):
    assert _secret_grants(synth, "send") == []
