"""What the benchmarks that run postline against a local endpoint share."""
from __future__ import annotations

import json
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def example(name: str) -> dict:
    """A sample template's example data (templates/<name>/example.json)."""
    return json.loads((ROOT / "templates" / name / "example.json").read_text())
