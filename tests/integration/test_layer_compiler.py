"""The deploy-time layer compiler (infra/layer_compiler): the layer it publishes imports from bytecode, a module that
does not compile fails the deploy with the reason, and CloudFormation always gets its answer.

S3 and Lambda are moto's; CloudFormation's presigned response URL is a real HTTP server on loopback."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("layer_compiler", ROOT / "infra" / "layer_compiler" / "app.py")
compiler = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compiler)

RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"  # the tests' Python stands for Lambda's


def _layer(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return out.getvalue()


def _extract(archive: bytes, where: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        opened.extractall(where)
    return where / "python"


def test_the_layer_imports_from_its_bytecode_without_compiling(tmp_path):
    archive = compiler.compile_layer(_layer({"python/shop/__init__.py": "", "python/shop/prices.py": "VAT = 20\n"}),
                                     tmp_path / "work")
    python = _extract(archive, tmp_path / "opt")
    assert (python / "shop" / "__pycache__" / f"prices.{sys.implementation.cache_tag}.pyc").is_file()
    assert not (tmp_path / "work").exists()  # a warm container's next request starts clean
    # The sources are never checked: Lambda never changes them. Proved by changing one after compiling, on a
    # read-only-like import (no bytecode written): the compiled value is what Python runs.
    (python / "shop" / "prices.py").write_text("VAT = 99\n")
    answer = subprocess.run([sys.executable, "-c", "import shop.prices; print(shop.prices.VAT)"],
                            env={**os.environ, "PYTHONPATH": str(python), "PYTHONDONTWRITEBYTECODE": "1"},
                            capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "20"


def test_the_layer_keeps_its_files_as_they_were_built(tmp_path):
    source = io.BytesIO()
    with zipfile.ZipFile(source, "w") as archive:
        tool = zipfile.ZipInfo("python/bin/tool")
        tool.external_attr = 0o755 << 16
        archive.writestr(tool, "#!/bin/sh\n")
        archive.writestr("python/data/rules.json", '{"vat": 20}')
    with zipfile.ZipFile(io.BytesIO(compiler.compile_layer(source.getvalue(), tmp_path / "work"))) as compiled:
        assert compiled.getinfo("python/bin/tool").external_attr >> 16 == 0o755
        assert compiled.read("python/data/rules.json") == b'{"vat": 20}'


def test_a_module_that_does_not_compile_fails_the_layer(tmp_path):
    with pytest.raises(RuntimeError, match="do not compile"):
        compiler.compile_layer(_layer({"python/broken.py": "def f(:\n"}), tmp_path / "work")


class _CloudFormation(BaseHTTPRequestHandler):
    answers: list[dict] = []

    def do_PUT(self):  # noqa: N802 - the http.server API
        self.answers.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def cloudformation():
    _CloudFormation.answers = []
    server = HTTPServer(("127.0.0.1", 0), _CloudFormation)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/response", _CloudFormation.answers
    server.shutdown()


@pytest.fixture
def aws(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(compiler, "WORKDIR", tmp_path / "work")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="cdk-assets")
        yield s3, boto3.client("lambda")


def _event(url: str, request: str, source_key: str = "layer.zip", physical_id: str | None = None) -> dict:
    event = {
        "RequestType": request, "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/p/1",
        "RequestId": "r-1", "LogicalResourceId": "Published", "ResourceType": "AWS::CloudFormation::CustomResource",
        "ResourceProperties": {"SourceBucket": "cdk-assets", "SourceKey": source_key, "LayerName": "postline-common",
                               "Description": "test", "Runtime": RUNTIME, "Architecture": "arm64"},
    }
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    return event


def test_create_publishes_a_version_and_delete_removes_it(aws, cloudformation):
    s3, lambda_client = aws
    url, answers = cloudformation
    s3.put_object(Bucket="cdk-assets", Key="layer.zip", Body=_layer({"python/shop.py": "VAT = 20\n"}))

    compiler.handler(_event(url, "Create"), None)
    (created,) = answers
    assert created["Status"] == "SUCCESS", created
    arn = created["Data"]["LayerVersionArn"]
    assert created["PhysicalResourceId"] == arn and arn.endswith(":layer:postline-common:1")
    versions = lambda_client.list_layer_versions(LayerName="postline-common")["LayerVersions"]
    assert [v["LayerVersionArn"] for v in versions] == [arn]
    assert versions[0]["CompatibleRuntimes"] == [RUNTIME]

    compiler.handler(_event(url, "Delete", physical_id=arn), None)
    assert answers[-1]["Status"] == "SUCCESS"
    assert lambda_client.list_layer_versions(LayerName="postline-common")["LayerVersions"] == []


def test_a_failure_is_answered_with_its_reason_and_its_rollback_deletes_nothing(aws, cloudformation):
    s3, lambda_client = aws
    url, answers = cloudformation
    s3.put_object(Bucket="cdk-assets", Key="broken.zip", Body=_layer({"python/broken.py": "def f(:\n"}))

    compiler.handler(_event(url, "Create", source_key="broken.zip"), None)
    (failed,) = answers
    assert failed["Status"] == "FAILED" and "do not compile" in failed["Reason"]
    assert lambda_client.list_layer_versions(LayerName="postline-common")["LayerVersions"] == []

    # CloudFormation rolls back with a Delete for the id the failure gave.
    compiler.handler(_event(url, "Delete", physical_id=failed["PhysicalResourceId"]), None)
    assert answers[-1]["Status"] == "SUCCESS"
