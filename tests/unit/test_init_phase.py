"""init_phase: a function's cold start without garbage collection, its result frozen, the collector on after."""
from __future__ import annotations

import gc

import pytest

from postline.init_phase import init_phase


@pytest.fixture(autouse=True)
def collector():
    """The test process's collector as it was: on, nothing frozen."""
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    gc.unfreeze()
    gc.enable() if was_enabled else gc.disable()


def _cycles(n: int) -> list:
    made = []
    for _ in range(n):
        node: dict = {}
        node["self"] = node
        made.append(node)
    return made


def test_nothing_is_collected_in_the_block_and_what_it_built_is_frozen():
    passes = []
    gc.callbacks.append(lambda phase, info: phase == "start" and passes.append(info["generation"]))
    try:
        with init_phase():
            built = _cycles(50_000)  # enough to set off dozens of collections with the collector on
        assert passes == []
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(built)
    finally:
        gc.callbacks.pop()


def test_the_collector_is_on_again_when_the_cold_start_fails():
    with pytest.raises(RuntimeError, match="missing setting"):
        with init_phase():
            raise RuntimeError("missing setting")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    with init_phase():
        pass
    assert not gc.isenabled()
