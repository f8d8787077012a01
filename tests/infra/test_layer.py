"""The shared layer is published at deploy time by a compiler on the functions' own runtime, with least privilege."""
from __future__ import annotations

from stacks.constants import COMMON_LAYER


def _published(synth):
    (logical_id, resource), = synth.resources("AWS::CloudFormation::CustomResource").items()
    return logical_id, resource["Properties"]


def _compiler(synth, published):
    token = published["ServiceToken"]["Fn::GetAtt"]
    assert token[1] == "Arn"
    return token[0], synth.template["Resources"][token[0]]["Properties"]


def test_the_layer_is_compiled_by_the_runtime_the_functions_run_on(synth):
    _, published = _published(synth)
    _, compiler = _compiler(synth, published)
    functions = list(synth.postline_functions().values())
    assert {f["Properties"]["Runtime"] for f in functions} == {compiler["Runtime"]} == {published["Runtime"]}
    assert {tuple(f["Properties"]["Architectures"]) for f in functions} == {tuple(compiler["Architectures"])}
    assert compiler["Architectures"] == [published["Architecture"]]
    assert published["LayerName"] == COMMON_LAYER
    assert published["SourceKey"].endswith(".zip") and "Ref" not in published["SourceKey"]
    assert compiler["Timeout"] >= 300  # a thousand modules on one vCPU, with room to spare
    assert compiler["Timeout"] < published["ServiceTimeout"] <= 3600  # a stuck deploy fails within the hour
    assert compiler["Handler"] == "app.handler"


def test_the_compiler_may_read_its_source_and_manage_its_own_layer_only(synth):
    _, published = _published(synth)
    _, compiler = _compiler(synth, published)
    role = compiler["Role"]["Fn::GetAtt"][0]
    statements = [s for p in synth.resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    by_action = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            by_action[action] = statement["Resource"]
    assert set(by_action) == {"s3:GetObject", "lambda:PublishLayerVersion", "lambda:DeleteLayerVersion",
                              "logs:CreateLogStream", "logs:PutLogEvents"}
    source_object = "".join(part if isinstance(part, str) else "" for part in by_action["s3:GetObject"]["Fn::Join"][1])
    assert source_object.endswith(f"/{published['SourceKey']}")
    layer = "".join(p if isinstance(p, str) else "" for p in by_action["lambda:PublishLayerVersion"]["Fn::Join"][1])
    versions = "".join(p if isinstance(p, str) else "" for p in by_action["lambda:DeleteLayerVersion"]["Fn::Join"][1])
    assert layer.endswith(f":layer:{COMMON_LAYER}") and versions.endswith(f":layer:{COMMON_LAYER}:*")


def test_the_compiler_logs_with_retention(synth):
    _, published = _published(synth)
    _, compiler = _compiler(synth, published)
    log_group = compiler["LoggingConfig"]["LogGroup"]["Ref"]
    assert synth.template["Resources"][log_group]["Properties"]["RetentionInDays"] == 30


def _compiler_statements(synth):
    _, published = _published(synth)
    _, compiler = _compiler(synth, published)
    role = compiler["Role"]["Fn::GetAtt"][0]
    return [s for p in synth.resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_the_compiler_may_decrypt_its_source_with_a_customer_managed_bootstrap_key_through_s3_only(adopted, synth):
    # cdk bootstrap --bootstrap-kms-key-id encrypts the asset bucket's objects with that key: reading the source
    # then needs it (S3's own key, the default, needs no grant).
    (decrypt,) = [s for s in _compiler_statements(adopted) if s["Action"] == "kms:Decrypt"]
    assert decrypt["Resource"] == adopted.config.bootstrap_kms_key_arn
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": {"Fn::Join": ["", [
        "s3.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}]]}}}
    assert not [s for s in _compiler_statements(synth) if "kms:" in str(s["Action"])]
