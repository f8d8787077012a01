"""The local stack's clock (``postline local clock``): real time plus an offset kept in the state folder, read by
everything in the stack that tells the time."""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from postline_cli import rate
from postline_cli.local import clock as local_clock
from postline_cli.local.aws_endpoint import SesSendingLimits
from postline_cli.local.clock import (
    LONGEST_SLEEP_SECONDS,
    LocalClock,
    describe_offset,
    parse_duration,
    parse_instant,
    write_offset,
)
from postline_cli.local.runner import use_clock
from postline_cli.main import cli

DAY = 86_400


@pytest.fixture
def clock_file(tmp_path):
    return tmp_path / "clock.json"


def test_without_an_offset_the_clock_is_real_time(clock_file):
    assert abs(LocalClock(clock_file)() - time.time()) < 0.5


def test_a_running_clock_sees_each_new_offset_and_real_time_again_after_a_reset(clock_file):
    clock = LocalClock(clock_file)
    write_offset(clock_file, DAY)
    assert abs(clock() - (time.time() + DAY)) < 0.5
    write_offset(clock_file, 2 * DAY)
    assert abs(clock() - (time.time() + 2 * DAY)) < 0.5
    write_offset(clock_file, 0)
    assert not clock_file.exists()
    assert abs(clock() - time.time()) < 0.5


def test_the_offset_is_read_again_only_when_the_file_changed(clock_file, monkeypatch):
    write_offset(clock_file, 60)
    reads = []
    monkeypatch.setattr(local_clock, "read_offset", lambda path: reads.append(path) or 60.0)
    clock = LocalClock(clock_file)
    for _ in range(1000):
        clock()
    assert len(reads) == 1


def test_a_sleep_for_a_slot_taken_before_the_clock_moved_back_is_cut_short(monkeypatch):
    slept = []
    monkeypatch.setattr(local_clock.time, "sleep", slept.append)
    LocalClock.sleep(0.25)
    LocalClock.sleep(DAY)  # a slot a day "ahead": the clock was moved back after it was taken
    LocalClock.sleep(-1.0)
    assert slept == [0.25, LONGEST_SLEEP_SECONDS, 0.0]


@pytest.mark.parametrize(("text", "seconds"), [("1d", DAY), ("36h", 36 * 3600), ("1d12h", 1.5 * DAY),
                                               ("30m", 1800), ("90s", 90), ("1.5h", 5400), (" 2D ", 2 * DAY)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "d", "-1d", "1w", "1d 2h", "tomorrow"])
def test_what_is_not_a_duration_is_refused_with_examples(text):
    with pytest.raises(ValueError, match="say 1d"):
        parse_duration(text)


def test_times_are_utc_unless_they_say_otherwise():
    midnight = parse_instant("2030-01-02")
    assert parse_instant("2030-01-02T09:00:00Z") == midnight + 9 * 3600
    assert parse_instant("2030-01-02T10:00:00+01:00") == midnight + 9 * 3600
    assert parse_instant("2030-01-02T09:00:00") == midnight + 9 * 3600
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant("next tuesday")


def test_the_offset_is_described_from_real_time():
    assert describe_offset(0) == "real time"
    assert describe_offset(DAY + 2 * 3600 + 61) == "real time + 1d 2h 1m 1s"
    assert describe_offset(-90) == "real time - 0d 0h 1m 30s"


def test_the_functions_get_the_clock_and_the_send_functions_limiter_and_sleep_too(clock_file):
    clock = LocalClock(clock_file)
    limiter = SimpleNamespace(clock=time.time)
    send = SimpleNamespace(clock=time.time, sleep=time.sleep, limiter=limiter,
                           campaigns=SimpleNamespace(clock=time.time))
    modules = {"send": SimpleNamespace(send_context=send),
               "render": SimpleNamespace(render_context=SimpleNamespace(clock=time.time)),
               "ses_events": SimpleNamespace(events_context=SimpleNamespace(clock=time.time))}
    use_clock(modules, clock)
    assert send.clock is clock and limiter.clock is clock and send.sleep == clock.sleep
    assert modules["render"].render_context.clock is clock
    assert modules["ses_events"].events_context.clock is clock


def test_the_local_ses_forgets_sends_made_after_the_clock_was_moved_back():
    limits = SesSendingLimits(rate=3, quota=3, now=1000.0)
    for at in (1000.1, 1000.2, 1000.3 + DAY):
        limits.record(at)
    # Moved back a day: the send "tomorrow" neither holds the rate nor counts against the quota.
    assert limits.refusal(1000.5) is None
    assert limits.sent_last_24_hours(1000.5) == 2
    limits.record(1000.6)
    assert limits.refusal(1000.7) == "Daily message quota exceeded."


# -- postline local clock --------------------------------------------------------------------------------------------
@pytest.fixture
def stack_up(tmp_path, monkeypatch):
    """A local stack up in ``tmp_path`` as far as the command can tell."""
    monkeypatch.setenv("POSTLINE_LOCAL_DIR", str(tmp_path))
    monkeypatch.setattr("postline_cli.local.stack.running_state", lambda paths: {"pid": 1, "ready": True})
    return tmp_path / "clock.json"


def local_clock_command(*args: str):
    return CliRunner().invoke(cli, ["local", "clock", *args])


def test_advancing_twice_moves_the_clock_two_days(stack_up):
    assert local_clock_command("--advance", "1d").exit_code == 0
    result = local_clock_command("--advance", "1d", "--json")
    shown = json.loads(result.output)
    assert shown["offset_seconds"] == 2 * DAY
    assert shown["now"][:10] == time.strftime("%Y-%m-%d", time.gmtime(time.time() + 2 * DAY))


def test_set_moves_the_clock_to_a_time_and_reset_back_to_real_time(stack_up):
    result = local_clock_command("--set", "2030-01-02T12:00:00Z")
    assert result.exit_code == 0
    assert "local stack clock: 2030-01-02T12:00:0" in result.output and "real time + " in result.output
    assert local_clock_command("--reset").exit_code == 0
    assert not stack_up.exists()
    assert "(real time)" in local_clock_command().output


def test_a_bad_duration_or_two_moves_at_once_are_usage_errors(stack_up):
    bad = local_clock_command("--advance", "soon")
    assert bad.exit_code == 2 and "not a duration" in bad.output
    both = local_clock_command("--advance", "1d", "--reset")
    assert both.exit_code == 2 and "one of" in both.output
    assert not stack_up.exists()


def test_without_a_stack_up_the_clock_is_not_moved(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTLINE_LOCAL_DIR", str(tmp_path))
    monkeypatch.setattr("postline_cli.local.stack.running_state", lambda paths: None)
    result = local_clock_command("--advance", "1d")
    assert result.exit_code == 1 and "no local stack is up" in result.output
    assert not (tmp_path / "clock.json").exists()


def test_rate_and_warmup_status_tell_the_time_by_the_local_stacks_clock(stack_up, monkeypatch):
    write_offset(stack_up, DAY)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert abs(rate.now() - (time.time() + DAY)) < 0.5
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://dynamodb.eu-west-1.amazonaws.com")
    assert abs(rate.now() - time.time()) < 0.5
