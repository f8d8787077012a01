"""Each function's module as Lambda loads it: in a fresh interpreter that has only the standard library, the layer's
packages and the runtime's boto3, with the environment the stack gives it."""
from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

from bench.coldstart import FUNCTIONS, distributions, layer_distributions

# Importing anything else raises ModuleNotFoundError, as in Lambda (an optional import just goes without).
_IMPORT_AS_IN_LAMBDA = """
import gc, importlib.abc, importlib.util, json, sys
shipped = set({shipped!r})

class OnlyShipped(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        # (zoneinfo reads its search path through sysconfig, whose build data module the list does not name)
        if top not in shipped and top not in sys.stdlib_module_names and not top.startswith("_sysconfigdata"):
            raise ModuleNotFoundError(f"No module named {{top!r}} in the layer or the runtime", name=top)

sys.meta_path.insert(0, OnlyShipped())
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
spec = importlib.util.spec_from_file_location("app", {path!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps({{"collections": collections, "collector_on": gc.isenabled(), "frozen": gc.get_freeze_count()}}))
"""


def _shipped() -> set[str]:
    names = {d.metadata["Name"] for d in layer_distributions() + distributions(["boto3"])}
    return {"postline"} | {module for module, of in metadata.packages_distributions().items() if set(of) & names}


@pytest.fixture(scope="module")
def loaded() -> dict[str, subprocess.CompletedProcess]:
    from postline_cli.local import resources

    shipped = sorted(_shipped())
    assert "pydantic" not in shipped and "jinja2" in shipped and "botocore" in shipped
    env = {"PATH": "/usr/bin:/bin", **resources.function_environment("http://127.0.0.1:4566", "http://127.0.0.1:3000")}
    return {app.parent.name: subprocess.run([sys.executable, "-c", _IMPORT_AS_IN_LAMBDA.format(shipped=shipped,
                                                                                            path=str(app))],
                                            env=env, capture_output=True, text=True)
            for app in sorted(FUNCTIONS.glob("*/app.py"))}


def test_the_functions_import_only_what_the_layer_and_the_runtime_ship(loaded):
    """A package the development environment happens to have (pydantic, rich, moto) is not in Lambda."""
    assert len(loaded) == 8
    for name, answer in loaded.items():
        assert answer.returncode == 0, f"{name}: {answer.stderr[-1500:]}"


def test_the_cold_start_runs_without_collections_and_leaves_the_collector_on(loaded):
    for name, answer in loaded.items():
        state = json.loads(answer.stdout)
        assert state["collections"] == [], name  # not one pass over what the cold start builds
        assert state["collector_on"], name  # warm invocations collect as usual...
        assert state["frozen"] > 50_000, name  # ...without walking the modules, models and clients again
