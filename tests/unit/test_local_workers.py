"""The local stack's worker processes: which queues each function's worker consumes, and how the CLI tells a
running worker from a pid that is not one."""
from __future__ import annotations

import os

import pytest

from postline_cli.local import resources
from postline_cli.local.stack import LocalStackError, kill_worker, worker_running, workers
from postline_cli.local.worker import WORKER_FUNCTIONS, consumers


def test_each_worker_consumes_its_functions_queues_with_the_stacks_concurrency():
    render = {c.queue_name: c.pollers for c in consumers("render", 2)}
    assert render == dict.fromkeys(resources.INBOUND_QUEUES.values(), 2)
    assert {c.queue_name for c in consumers("send", 2)} == set(resources.SEND_QUEUES.values())
    assert {c.queue_name for c in consumers("ses_events", 1)} == {resources.EVENTS_QUEUE, resources.SEND_EVENTS_QUEUE}
    [control] = consumers("campaign", 2)
    assert (control.queue_name, control.pollers, control.batch_size, control.timeout_seconds) == (
        resources.CAMPAIGN_QUEUE, 2, 1, resources.CAMPAIGN_TIMEOUT_SECONDS)
    with pytest.raises(ValueError, match="no worker runs 'unsubscribe_mail'"):
        consumers("unsubscribe_mail", 1)
    assert WORKER_FUNCTIONS == ("render", "send", "ses_events", "campaign")


def test_a_pid_that_is_not_the_named_worker_is_neither_listed_alive_nor_killed():
    state = {"workers": {"send": {"pid": os.getpid(), "restarts": 2}}}  # this test process: alive, not a worker
    assert workers(state) == [{"name": "send", "pid": os.getpid(), "alive": False, "restarts": 2}]
    with pytest.raises(LocalStackError, match=r"^the send worker \(pid \d+\) is not running: the stack is starting"):
        kill_worker(state, "send")
    with pytest.raises(LocalStackError, match="runs no render worker"):
        kill_worker(state, "render")
    assert not worker_running(2**22 + 12345, "send")  # no such process
