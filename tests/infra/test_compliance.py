"""cdk-nag's AwsSolutions pack with no unacknowledged finding, and cfn-lint with no error."""
from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import lint

REGIONS = ["us-east-1", "eu-west-1"]


def _violations(outdir):
    report = json.loads((outdir / "validation-report.json").read_text())
    return [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]


@pytest.mark.parametrize("which", ["synth", "variant", "warmed", "adopted"])
def test_cdk_nag_finds_nothing_unacknowledged(which, request):
    result = request.getfixturevalue(which)  # synthesis itself fails on a finding; the report says so too
    assert _violations(result.outdir) == []


def test_cdk_nag_is_really_checking(tmp_path):
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Careless")
    sqs.Queue(stack, "Plain", encryption=sqs.QueueEncryption.UNENCRYPTED)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    assert {v["ruleName"] for v in _violations(tmp_path)} >= {"AwsSolutions-SQS2", "AwsSolutions-SQS3"}


def test_every_acknowledgment_has_a_reason(synth):
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledged = {rule: reason for construct in synth.stack.node.find_all()
                    for entry in construct.node.metadata if entry.type == key
                    for rule, reason in entry.data.items()}  # {"Annotation::<rule id>": reason}
    assert acknowledged
    for rule, reason in acknowledged.items():
        assert "AwsSolutions-" in rule and len(reason) > 40, rule


@pytest.mark.parametrize("which", ["synth", "variant", "adopted"])
def test_cfn_lint_reports_no_error(which, request):
    template = request.getfixturevalue(which).template
    errors = [m for m in lint(json.dumps(template), regions=REGIONS) if m.rule.id.startswith("E")]
    assert errors == [], "\n".join(str(m) for m in errors)
