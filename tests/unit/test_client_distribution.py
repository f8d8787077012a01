"""The distribution (pyproject.toml): `pip install postline` brings the client's dependencies only, the `cli` extra
the rest, and the wheel holds every package of the library and the CLI (a package left out of the list would be
missing from an installed postline while the editable install in .venv still found it)."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_an_application_installs_boto3_and_the_contracts_address_checks_only():
    assert PROJECT["project"]["dependencies"] == ["boto3>=1.34", "email-validator>=2.1"]
    assert {"click>=8.1", "moto[server]>=5.0", "jinja2>=3.1"} <= set(PROJECT["project"]["optional-dependencies"]["cli"])


def test_every_package_folder_is_in_the_wheel():
    setuptools = PROJECT["tool"]["setuptools"]
    on_disk = set()
    for package, folder in setuptools["package-dir"].items():
        for module in (ROOT / folder).rglob("*.py"):
            on_disk.add(".".join([package, *module.parent.relative_to(ROOT / folder).parts]))
    assert sorted(on_disk - set(setuptools["packages"])) == []
