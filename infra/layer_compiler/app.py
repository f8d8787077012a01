"""Deploy-time custom resource: publishes the shared layer with its bytecode, compiled by the functions' runtime.

Lambda mounts a layer read-only, so Python cannot cache the bytecode it compiles: without ``__pycache__`` in the
layer, every cold start compiles every module the handler imports, botocore and Jinja2 included (about
0.85 s more per cold start, measured by ``bench.coldstart``). The layer is built without Docker on the deployer's
machine, whose Python is rarely the runtime's, and bytecode is specific to one Python version. So this function,
running on the very runtime the functions use, takes the built layer from the CDK asset bucket, compiles it
(unchecked hash-based .pyc: Lambda never changes the sources, so nothing is checked at import) and publishes it as
a layer version. Delete removes the version it published; functions already using it keep working.

Self-contained (standard library and the runtime's boto3): it builds the layer, so it cannot use it.
"""

from __future__ import annotations

import compileall
import io
import json
import py_compile
import shutil
import urllib.request
import zipfile
from pathlib import Path

import boto3

WORKDIR = Path("/tmp/layer")  # noqa: S108 - Lambda's only writable place, emptied on every request
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # PublishLayerVersion's limit for an archive sent in the request


def compile_layer(source: bytes, workdir: Path) -> bytes:
    """The layer archive ``source`` with a ``__pycache__`` beside every module, for the running Python. The
    source's entries are copied as they are (their permissions included); the bytecode is added."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as original:
        original.extractall(workdir)
        # One process: Lambda has no /dev/shm, which compileall's worker pool needs.
        if not compileall.compile_dir(
            workdir, quiet=1, workers=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
        ):
            raise RuntimeError("some modules of the layer do not compile on this runtime (see the log)")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for entry in original.infolist():
                archive.writestr(entry, original.read(entry), compress_type=zipfile.ZIP_DEFLATED)
            for path in sorted(workdir.rglob("*.pyc")):
                archive.write(path, path.relative_to(workdir).as_posix())
    shutil.rmtree(workdir, ignore_errors=True)
    return out.getvalue()


def publish(properties: dict, s3=None, lambda_client=None, workdir: Path = WORKDIR) -> str:
    """Compile the layer at the properties' S3 location and publish it; returns the layer version's ARN."""
    s3 = s3 or boto3.client("s3")
    lambda_client = lambda_client or boto3.client("lambda")
    source = s3.get_object(Bucket=properties["SourceBucket"], Key=properties["SourceKey"])["Body"].read()
    archive = compile_layer(source, workdir)
    if len(archive) > DIRECT_UPLOAD_LIMIT:
        raise RuntimeError(
            f"the compiled layer is {len(archive)} bytes, over the {DIRECT_UPLOAD_LIMIT}-byte limit of a direct upload"
        )
    answer = lambda_client.publish_layer_version(
        LayerName=properties["LayerName"],
        Description=properties["Description"],
        Content={"ZipFile": archive},
        CompatibleRuntimes=[properties["Runtime"]],
        CompatibleArchitectures=[properties["Architecture"]],
    )
    return answer["LayerVersionArn"]


def delete(physical_id: str, lambda_client=None) -> None:
    """Delete the layer version a Create or Update published (an id that is no version ARN published nothing)."""
    parts = physical_id.split(":")
    if len(parts) != 8 or parts[5] != "layer" or not parts[7].isdigit():
        return
    lambda_client = lambda_client or boto3.client("lambda")
    lambda_client.delete_layer_version(LayerName=":".join(parts[:7]), VersionNumber=int(parts[7]))


def handler(event: dict, context) -> None:
    """CloudFormation's custom resource protocol: always answer, or the stack waits an hour."""
    physical_id = event.get("PhysicalResourceId") or f"unpublished-{event['RequestId']}"
    try:
        if event["RequestType"] == "Delete":
            delete(physical_id)
            _answer(event, "SUCCESS", physical_id)
        else:  # Create, or Update with a new layer: a new version (CloudFormation then deletes the old one)
            arn = publish(event["ResourceProperties"])
            _answer(event, "SUCCESS", arn, {"LayerVersionArn": arn})
    except Exception as error:  # noqa: BLE001 - reported to CloudFormation, which rolls back
        print(json.dumps({"level": "ERROR", "message": "layer not published", "error": repr(error)}))
        _answer(event, "FAILED", physical_id, reason=f"{type(error).__name__}: {error}"[:1000])


def _answer(event: dict, status: str, physical_id: str, data: dict | None = None, reason: str = "") -> None:
    # Twin of infra/receipt_rule_set's: each asset is app.py alone (no bundling, no layer), so they share no module.
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or status,
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data or {},
        }
    ).encode()
    # CloudFormation's own presigned https URL for this custom resource's answer
    request = urllib.request.Request(  # noqa: S310
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - CloudFormation's presigned https URL
        response.read()
