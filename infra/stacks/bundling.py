"""Builds the shared layer without Docker: pip downloads wheels for the Lambda platform, then the library is copied.

Every file pip installs is the version and the file that requirements.lock pins (it is the constraints file, with
--require-hashes): the layer runs what the tests ran with. The pip result depends only on the layer's requirements,
the lock and the target platform, so it is cached under .cache/layer-deps/ keyed by their hash: repeated synths (and
the infra tests) copy it instead of downloading again.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling

# Must match the functions' runtime and architecture.
PYTHON_VERSION = "3.13"
PLATFORM = "manylinux2014_aarch64"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


@jsii.implements(ILocalBundling)
class PipLayerBundling:
    """Lays out a Lambda layer: <output>/python/<dependencies> and <output>/python/<package>."""

    def __init__(self, requirements: Path, constraints: Path, package: Path, cache_root: Path) -> None:
        self._requirements = requirements
        self._constraints = constraints
        self._package = package
        self._cache_root = cache_root

    # jsii passes the bundling options positionally or as keywords depending on its version; none are needed.
    def try_bundle(self, output_dir: str, *_options: object, **_keywords: object) -> bool:
        target = Path(output_dir) / "python"
        shutil.copytree(self._dependencies(), target, dirs_exist_ok=True)
        shutil.copytree(self._package, target / self._package.name, ignore=IGNORED, dirs_exist_ok=True)
        return True

    def _dependencies(self) -> Path:
        key = hashlib.sha256(
            self._requirements.read_bytes() + self._constraints.read_bytes() + f"{PLATFORM} cp{PYTHON_VERSION}".encode()
        ).hexdigest()[:16]
        cached = self._cache_root / key
        if cached.is_dir():
            return cached
        self._cache_root.mkdir(parents=True, exist_ok=True)
        # Install into a scratch directory and rename, so an interrupted download never looks cached.
        scratch = Path(tempfile.mkdtemp(dir=self._cache_root, prefix=".partial-"))
        try:
            subprocess.run(  # noqa: S603 - this Python's pip, on the repository's own requirements
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                    str(self._requirements),
                    "-c",
                    str(self._constraints),
                    "--require-hashes",
                    "--target",
                    str(scratch),
                    "--platform",
                    PLATFORM,
                    "--implementation",
                    "cp",
                    "--python-version",
                    PYTHON_VERSION,
                    # wheels only: nothing may be compiled for the build machine; no .pyc for the wrong Python
                    "--only-binary=:all:",
                    "--no-compile",
                ],
                check=True,
            )
            scratch.chmod(0o755)  # mkdtemp makes it private; Lambda must be able to read the layer
            try:
                scratch.rename(cached)
            except OSError:
                # Another synth (a parallel test worker) installed the same dependencies first: use its copy.
                if not cached.is_dir():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return cached


def layer_bundling(requirements: Path, constraints: Path, package: Path, cache_root: Path) -> BundlingOptions:
    return BundlingOptions(
        # Never pulled: the local bundler always succeeds, but CDK requires an image to be named.
        image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.13"),
        local=PipLayerBundling(requirements, constraints, package, cache_root),
    )
