"""Retry pacing of the send stage."""
from __future__ import annotations

import pytest

from postline.send import MAX_BACKOFF_SECONDS, SQS_MAX_VISIBILITY_SECONDS, backoff_seconds


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
