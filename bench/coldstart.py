"""Cold start: the import time of each function's handler module, against the floor of importing boto3 and
creating the clients that function creates, each in a fresh interpreter, median of several runs, with every module's
bytecode compiled beforehand, as in the deployed layer.

Runs alternate (floor, handler, floor without garbage collection, floor, ...) so a busy moment of the machine falls
on all alike. The handler is imported the way Lambda does (``functions/<name>/app.py`` as a module, with the
environment the CDK stack sets, here the local stack's), which runs its module-level code: settings, table binding,
contexts and clients, inside ``init_phase()``. Interpreter start-up itself is in no figure.
"""
from __future__ import annotations

import compileall
import importlib.util
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
LAYER = ROOT / "layers" / "common"

_HANDLER = """
import time
started = time.perf_counter()
import importlib.util
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
elapsed = time.perf_counter() - started
import sys, json
print(json.dumps({{"seconds": elapsed, "modules": len(sys.modules)}}))
"""

_FLOOR = """
import time
started = time.perf_counter()
{body}
elapsed = time.perf_counter() - started
import sys, json
print(json.dumps({{"seconds": elapsed, "modules": len(sys.modules)}}))
"""
_FLOOR_BODY = """import boto3
from botocore.config import Config
session = boto3.session.Session()
clients = [session.client(name, config=Config(retries={{"mode": "standard"}})) for name in {services!r}]
"""


def _floor(services: list[str], paused: bool = False) -> str:
    """The floor's code. ``paused``: built as the functions build their cold start, inside ``init_phase()`` (without
    garbage collection); a function's figure against it is its overhead alone, against the plain floor what its
    cold start costs beside a function that just imports boto3 and makes its clients."""
    body = _FLOOR_BODY.format(services=services)
    if paused:
        body = "from postline.init_phase import init_phase\nwith init_phase():\n" + textwrap.indent(body, "    ")
    return _FLOOR.format(body=body)


# Which clients a handler creates at import: found by importing it once with boto3's client factory watched.
_DISCOVER = """
import boto3.session, json, importlib.util
made = []
original = boto3.session.Session.client
def watched(self, service_name, *a, **k):
    made.append(service_name)
    return original(self, service_name, *a, **k)
boto3.session.Session.client = watched
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(set(made))))
"""


def _packages(code: str, env: dict[str, str]) -> dict[str, float]:
    """Import time by top-level package (self time, ``-X importtime``, milliseconds)."""
    answer = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True,
                            cwd=ROOT)
    totals: dict[str, float] = {}
    for line in answer.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].startswith("import time:") and parts[0].split(":")[1].strip().isdigit():
            package = parts[2].strip().split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(parts[0].split(":")[1]) / 1000
    return totals


def function_names() -> list[str]:
    return sorted(p.name for p in FUNCTIONS.iterdir() if (p / "app.py").exists())


def _environment() -> dict[str, str]:
    from postline_cli.local import resources

    env = dict(os.environ)
    env.update(resources.function_environment("http://127.0.0.1:4566", "http://127.0.0.1:3000"))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def _run(code: str, env: dict[str, str]) -> dict:
    answer = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    if answer.returncode != 0:
        raise RuntimeError(answer.stderr[-2000:])
    return json.loads(answer.stdout.strip().splitlines()[-1])


def measure(runs: int = 7, names: list[str] | None = None) -> dict[str, dict]:
    # The deploy compiles the layer, postline included (infra/layer_compiler); here the installed packages come
    # compiled by pip, and postline's own modules are compiled now. Otherwise, where Python may not write bytecode
    # (PYTHONDONTWRITEBYTECODE, as on some CI machines), every run would compile postline from source.
    compileall.compile_dir(str(LAYER / "postline"), quiet=1)
    env = _environment()
    results = {}
    for name in names or function_names():
        path = str(FUNCTIONS / name / "app.py")
        services = json.loads(subprocess.run([sys.executable, "-c", _DISCOVER.format(path=path)], env=env,
                                             capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip())
        handler_code, floor_code, paused_code = _HANDLER.format(path=path), _floor(services), _floor(services, True)
        handler, floor, floor_paused = [], [], []
        _run(floor_code, env)  # page cache warm for all
        _run(handler_code, env)
        for _ in range(runs):
            floor.append(_run(floor_code, env))
            handler.append(_run(handler_code, env))
            floor_paused.append(_run(paused_code, env))
        # Where the difference goes: import time by package, the handler's minus the floor's (one run each, under
        # -X importtime, which inflates everything; read it as proportions).
        mine, floors = _packages(handler_code, env), _packages(floor_code, env)
        extra = {p: round(t - floors.get(p, 0.0), 1) for p, t in mine.items() if t - floors.get(p, 0.0) >= 2}
        h = statistics.median(r["seconds"] for r in handler)
        f = statistics.median(r["seconds"] for r in floor)
        fp = statistics.median(r["seconds"] for r in floor_paused)
        results[name] = {"clients": services, "runs": runs, "handler_ms": h * 1000, "floor_ms": f * 1000,
                         "ratio": h / f, "floor_paused_ms": fp * 1000, "ratio_same_collector": h / fp,
                         "handler_modules": handler[0]["modules"], "floor_modules": floor[0]["modules"],
                         "extra_import_ms_by_package": dict(sorted(extra.items(), key=lambda kv: -kv[1]))}
    return results


def distributions(requirements: list[str], leave_out: tuple[str, ...] = ()) -> list:
    """This environment's distributions that these requirements install, with what they need (extras included),
    except the named ones and what only they need."""
    from importlib import metadata

    from packaging.requirements import Requirement

    wanted = [Requirement(line) for line in requirements if line.strip() and not line.lstrip().startswith("#")]
    seen: set[str] = set()
    found = []
    while wanted:
        requirement = wanted.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in seen or name in leave_out:
            continue
        seen.add(name)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(distribution)
        extras = requirement.extras or {""}
        for needed in map(Requirement, distribution.requires or []):
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                wanted.append(needed)
    return found


def layer_distributions() -> list:
    """What the shared layer bundles besides postline: layers/common/requirements.txt and what it needs, boto3
    (the runtime's) left out."""
    return distributions((LAYER / "requirements.txt").read_text().splitlines(), leave_out=("boto3",))


def _layer_tree(where: Path) -> Path:
    """The shared layer laid out as bundling lays it out (python/<dependencies>, python/postline), from this
    environment's copies of ``layer_distributions()``, sources only (as pip --no-compile leaves them)."""
    python = where / "python"
    for distribution in layer_distributions():
        for file in distribution.files or []:
            source = Path(distribution.locate_file(file))
            if file.parts[0] != ".." and file.suffix != ".pyc" and source.is_file():
                (python / file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, python / file)
    shutil.copytree(LAYER / "postline", python / "postline", ignore=shutil.ignore_patterns("__pycache__"))
    return python


def layer_bytecode(runs: int = 5, names: tuple[str, ...] = ("render", "send", "track_click")) -> dict[str, dict]:
    """Handler import from the layer as Lambda mounts it (read-only: Python writes no bytecode), without bytecode
    (as it was shipped before) and with the bytecode the deploy-time compiler (infra/layer_compiler) adds, compiled
    by the same code for this Python."""
    spec = importlib.util.spec_from_file_location("layer_compiler", ROOT / "infra" / "layer_compiler" / "app.py")
    compiler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compiler)
    with tempfile.TemporaryDirectory(prefix="postline-layer-") as scratch:
        source = _layer_tree(Path(scratch) / "source")
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in source.rglob("*"):
                if path.is_file():
                    zipped.write(path, path.relative_to(source.parent).as_posix())
        compiled_zip = compiler.compile_layer(archive.getvalue(), Path(scratch) / "work")
        with zipfile.ZipFile(io.BytesIO(compiled_zip)) as zipped:
            zipped.extractall(Path(scratch) / "compiled")
        layers = {"without": source, "with": Path(scratch) / "compiled" / "python"}
        base = _environment()
        results = {}
        for name in names:
            code = _HANDLER.format(path=str(FUNCTIONS / name / "app.py"))
            times: dict[str, list[float]] = {"without": [], "with": []}
            for _ in range(runs):
                for label, layer in layers.items():
                    env = {**base, "PYTHONPATH": str(layer), "PYTHONDONTWRITEBYTECODE": "1"}
                    times[label].append(_run(code, env)["seconds"])
            results[name] = {f"{label}_ms": statistics.median(t) * 1000 for label, t in times.items()} | {"runs": runs}
    return results


if __name__ == "__main__":
    for name, row in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 5).items():
        print(f"{name:<12} {row['handler_ms']:7.1f} ms  floor {row['floor_ms']:7.1f} ms  x{row['ratio']:.2f}  "
              f"(floor without collections {row['floor_paused_ms']:7.1f} ms  x{row['ratio_same_collector']:.2f})  "
              f"modules {row['handler_modules']} vs {row['floor_modules']}  clients {','.join(row['clients'])}\n"
              f"             extra by package: {row['extra_import_ms_by_package']}")
