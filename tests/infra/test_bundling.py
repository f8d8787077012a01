"""The layer is built without Docker: wheels for the Lambda platform from a cache, plus the library."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from stacks.bundling import PLATFORM, PYTHON_VERSION, PipLayerBundling


def _layer_dir(synth):
    """The built layer, as the deploy-time compiler receives it (stacks/layer.py)."""
    published = next(iter(synth.resources("AWS::CloudFormation::CustomResource").values()))
    asset_hash = published["Properties"]["SourceKey"].removesuffix(".zip")
    return synth.outdir / f"asset.{asset_hash}"


def test_layer_holds_the_library_and_arm64_wheels(synth):
    python = _layer_dir(synth) / "python"
    assert (python / "postline" / "settings.py").is_file()
    assert not list(python.rglob("__pycache__"))
    assert (python / "aws_lambda_powertools").is_dir() and (python / "pynamodb").is_dir()
    compiled = [p.name for p in (python / "markupsafe").glob("*.so")]  # Jinja2's escaping in C
    assert compiled and all("cpython-313-aarch64" in name for name in compiled), compiled
    assert not (python / "pydantic").exists()  # no function imports it (tests/unit/test_function_modules.py)


def test_the_layer_ships_boto3_with_its_own_botocore_and_they_import_from_it(synth):
    # PynamoDB brings botocore; without boto3 beside it, the runtime's older boto3 would run on the newer botocore.
    python = _layer_dir(synth) / "python"
    shipped = dict(path.name.removesuffix(".dist-info").split("-") for path in python.glob("*.dist-info")
                   if path.name.startswith(("boto3-", "botocore-")))
    assert set(shipped) == {"boto3", "botocore"} and shipped["boto3"] == shipped["botocore"]  # released in step
    # As Lambda imports them: the layer's python/ first, no site-packages; a client is built from botocore's models.
    probe = ("import boto3, botocore, json; boto3.client('sqs', region_name='us-east-1'); "
             "print(json.dumps([boto3.__version__, botocore.__version__, boto3.__file__, botocore.__file__]))")
    answer = subprocess.run([sys.executable, "-S", "-c", probe], env={"PYTHONPATH": str(python)},
                            capture_output=True, text=True, check=True)
    boto3_version, botocore_version, boto3_file, botocore_file = json.loads(answer.stdout)
    assert (boto3_version, botocore_version) == (shipped["boto3"], shipped["botocore"])
    assert Path(boto3_file).is_relative_to(python) and Path(botocore_file).is_relative_to(python)


def test_every_package_in_the_layer_is_the_version_the_lock_pins(synth):
    lock = (Path(__file__).resolve().parents[2] / "requirements.lock").read_text()
    pinned = set(re.findall(r"^([a-z0-9-]+)==(\S+)", lock, re.MULTILINE))
    shipped = {(canonicalize_name(name), version) for name, version in
               (path.name.removesuffix(".dist-info").split("-") for path in (_layer_dir(synth) / "python").glob(
                   "*.dist-info"))}
    assert len(shipped) > 10 and shipped - pinned == set()


def test_dependencies_come_from_the_cache(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("jinja2==3.1.6\n")
    lock = tmp_path / "requirements.lock"
    lock.write_text("jinja2==3.1.6 --hash=sha256:" + "a" * 64 + "\n")
    package = tmp_path / "postline"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__pycache__" / "x.pyc").write_text("")
    calls = []

    def fake_pip(command, check):
        calls.append(command)
        target = command[command.index("--target") + 1]
        Path(target, "jinja2").mkdir()

    monkeypatch.setattr(subprocess, "run", fake_pip)
    bundling = PipLayerBundling(requirements, lock, package, tmp_path / "cache")
    for attempt in range(2):
        output = tmp_path / f"out{attempt}"
        output.mkdir()
        assert bundling.try_bundle(str(output)) is True
        assert (output / "python" / "jinja2").is_dir()
        assert (output / "python" / "postline" / "__init__.py").is_file()
        assert not (output / "python" / "postline" / "__pycache__").exists()
    assert len(calls) == 1  # the second synth copied the cached wheels
    for flag in ("--only-binary=:all:", "--no-compile", "manylinux2014_aarch64", "3.13", "--require-hashes"):
        assert flag in calls[0]
    assert calls[0][calls[0].index("-c") + 1] == str(lock)  # every version and file hash comes from the lock

    requirements.write_text("jinja2==3.1.5\n")
    bundling.try_bundle(str(tmp_path / "out0"))
    assert len(calls) == 2  # new requirements, new cache entry

    lock.write_text("jinja2==3.1.5 --hash=sha256:" + "b" * 64 + "\n")
    bundling.try_bundle(str(tmp_path / "out0"))
    assert len(calls) == 3  # a new lock, a new cache entry


def test_a_failed_install_is_not_cached(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("nothing\n")

    def failing_pip(command, check):
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(subprocess, "run", failing_pip)
    lock = tmp_path / "requirements.lock"
    lock.write_text("nothing==1 --hash=sha256:" + "a" * 64 + "\n")
    bundling = PipLayerBundling(requirements, lock, tmp_path, tmp_path / "cache")
    with pytest.raises(subprocess.CalledProcessError):
        bundling.try_bundle(str(tmp_path / "out"))
    assert list((tmp_path / "cache").iterdir()) == []



def test_an_install_another_synth_finished_first_is_used(tmp_path, monkeypatch):
    # Two test workers synthesize at once: both install, and the second one's rename finds the first one's entry.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("jinja2==3.1.6\n")
    (tmp_path / "postline").mkdir()
    lock = tmp_path / "requirements.lock"
    lock.write_text("jinja2==3.1.6\n")
    key = hashlib.sha256(requirements.read_bytes() + lock.read_bytes()
                         + f"{PLATFORM} cp{PYTHON_VERSION}".encode()).hexdigest()[:16]

    def pip_while_another_finishes(command, check):
        Path(command[command.index("--target") + 1], "jinja2").mkdir()
        theirs = tmp_path / "cache" / key / "jinja2"
        theirs.mkdir(parents=True)
        (theirs / "from-the-other-worker").write_text("")

    monkeypatch.setattr(subprocess, "run", pip_while_another_finishes)
    output = tmp_path / "out"
    output.mkdir()
    assert PipLayerBundling(requirements, lock, tmp_path / "postline", tmp_path / "cache").try_bundle(
        str(output)) is True
    assert (output / "python" / "jinja2" / "from-the-other-worker").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [key]  # no partial install left behind
