"""The local endpoint logs the garbage collections that stop it (``aws_endpoint.log_own_pauses``): the rate
benchmark tells the emulator's stops from postline's own pace with them."""
import gc
import json

from postline_cli.local.aws_endpoint import PAUSE_LOG, log_own_pauses


def _logged(tmp_path, at_least: float) -> list[dict]:
    callback = log_own_pauses(str(tmp_path / "ses-send-log.jsonl"), clock=lambda: 1234.5, at_least=at_least)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)
    log = tmp_path / PAUSE_LOG
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_collection_that_held_the_endpoint_is_logged_beside_the_send_log_on_the_stacks_clock(tmp_path):
    entries = _logged(tmp_path, at_least=0.0)
    assert entries[-1]["timestamp"] == 1234.5
    assert entries[-1]["generation"] == 2  # gc.collect() is a full collection, what grows with moto's state
    assert entries[-1]["seconds"] >= 0


def test_collections_shorter_than_the_threshold_are_not_logged(tmp_path):
    assert _logged(tmp_path, at_least=60.0) == []
