"""The layer is built without Docker: wheels for the Lambda platform from a cache, plus the library."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stacks.bundling import PipLayerBundling


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


def test_dependencies_come_from_the_cache(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("jinja2==3.1.6\n")
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
    bundling = PipLayerBundling(requirements, package, tmp_path / "cache")
    for attempt in range(2):
        output = tmp_path / f"out{attempt}"
        output.mkdir()
        assert bundling.try_bundle(str(output)) is True
        assert (output / "python" / "jinja2").is_dir()
        assert (output / "python" / "postline" / "__init__.py").is_file()
        assert not (output / "python" / "postline" / "__pycache__").exists()
    assert len(calls) == 1  # the second synth copied the cached wheels
    for flag in ("--only-binary=:all:", "--no-compile", "manylinux2014_aarch64", "3.13"):
        assert flag in calls[0]

    requirements.write_text("jinja2==3.1.5\n")
    bundling.try_bundle(str(tmp_path / "out0"))
    assert len(calls) == 2  # new requirements, new cache entry


def test_a_failed_install_is_not_cached(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("nothing\n")

    def failing_pip(command, check):
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(subprocess, "run", failing_pip)
    bundling = PipLayerBundling(requirements, tmp_path, tmp_path / "cache")
    with pytest.raises(subprocess.CalledProcessError):
        bundling.try_bundle(str(tmp_path / "out"))
    assert list((tmp_path / "cache").iterdir()) == []
