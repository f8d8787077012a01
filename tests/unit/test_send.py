"""Retry pacing of the send stage."""
from __future__ import annotations

import pytest

from postline.send import MAX_BACKOFF_SECONDS, SQS_MAX_VISIBILITY_SECONDS, backoff_seconds, claim_wait_seconds


def test_backoff_starts_at_thirty_seconds():
    assert backoff_seconds(1) == 30


@pytest.mark.parametrize("receive_count", [0, -3])
def test_backoff_for_an_unknown_count_is_the_first_step(receive_count):
    assert backoff_seconds(receive_count) == 30


def test_backoff_doubles_with_each_receive():
    assert [backoff_seconds(n) for n in range(1, 6)] == [30, 60, 120, 240, 480]


def test_backoff_never_decreases_and_caps_at_fifteen_minutes():
    delays = [backoff_seconds(n) for n in range(1, 200)]
    assert delays == sorted(delays)
    assert max(delays) == MAX_BACKOFF_SECONDS == 900
    assert delays[-1] == 900 and backoff_seconds(6) == 900


def test_backoff_is_a_valid_sqs_visibility_timeout():
    assert all(0 < backoff_seconds(n) <= SQS_MAX_VISIBILITY_SECONDS for n in range(0, 100))
    assert all(isinstance(backoff_seconds(n), int) for n in range(0, 100))


def _wait(claimed_at: float, now: float, delay: int = 60) -> int:
    return claim_wait_seconds(claimed_at, now, stale_claim_seconds=900, send_event_delay_seconds=delay)


def test_a_copy_that_finds_a_young_claim_looks_again_once_the_send_event_has_had_time():
    # SQS delivered the job twice: the first copy claimed it a second ago. Its Send event is held back a minute,
    # and given a minute more to be applied.
    assert _wait(claimed_at=1000.0, now=1001.0) == 120
    assert _wait(claimed_at=1000.0, now=1001.0, delay=0) == 60


def test_a_copy_that_finds_an_older_claim_waits_until_it_is_stale():
    # The attempt died (or SES's events are late): look when the claim may be taken over, not before.
    assert _wait(claimed_at=1000.0, now=1150.0) == 751
    assert _wait(claimed_at=1000.0, now=1120.0) == 781


def test_a_claim_already_stale_is_looked_at_again_at_once():
    assert _wait(claimed_at=1000.0, now=5000.0) == 2
