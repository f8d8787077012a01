"""The local stack's worker processes: which queues each function's worker consumes, and how the CLI tells a
running worker from a pid that is not one."""
from __future__ import annotations

import json
import os

import pytest

from postline_cli.local import resources
from postline_cli.local.stack import (
    INFRA_DIR,
    LOCAL_MAX_POLLERS,
    LocalPaths,
    LocalStack,
    LocalStackError,
    deploy_pollers,
    kill_worker,
    worker_running,
    workers,
)
from postline_cli.local.worker import WORKER_FUNCTIONS, consumers, queues_of

EXAMPLE_CONFIG = INFRA_DIR / "config" / "example.json"


def test_each_worker_consumes_its_functions_queues_with_the_pollers_it_is_given():
    render = {c.queue_name: c.pollers for c in consumers("render", dict.fromkeys(queues_of("render"), 2))}
    assert render == dict.fromkeys(resources.INBOUND_QUEUES.values(), 2)
    assert set(queues_of("send")) == set(resources.SEND_QUEUES.values())
    assert set(queues_of("ses_events")) == {resources.EVENTS_QUEUE, resources.SEND_EVENTS_QUEUE}
    [control] = consumers("campaign", {resources.CAMPAIGN_QUEUE: 2})
    assert (control.queue_name, control.pollers, control.batch_size, control.timeout_seconds) == (
        resources.CAMPAIGN_QUEUE, 2, 1, resources.CAMPAIGN_TIMEOUT_SECONDS)
    with pytest.raises(ValueError, match="no worker runs 'unsubscribe_mail'"):
        queues_of("unsubscribe_mail")
    assert WORKER_FUNCTIONS == ("render", "send", "ses_events", "campaign")


def test_the_example_config_gives_each_stream_its_deploy_concurrency():
    pollers, note = deploy_pollers(str(EXAMPLE_CONFIG))
    assert pollers == {
        "render": {"postline-critical": 4, "postline-transactional": 3, "postline-marketing": 2},
        "send": {"postline-send-critical": 4, "postline-send-transactional": 3, "postline-send-marketing": 2},
        "ses_events": {"postline-ses-events": 3, "postline-ses-send-events": 3},
        "campaign": {"postline-campaigns": 2},
    }
    assert note == ""


def test_a_config_asking_for_more_than_the_local_ceiling_is_lowered_and_says_so(tmp_path):
    config = tmp_path / "big.json"
    config.write_text(json.dumps({**json.loads(EXAMPLE_CONFIG.read_text()),
                                  "render_concurrency": {"critical": 50, "transactional": 3, "marketing": 2},
                                  "send_concurrency": {"critical": 3, "transactional": 20, "marketing": 2}}))
    pollers, note = deploy_pollers(str(config))
    assert pollers["render"]["postline-critical"] == LOCAL_MAX_POLLERS == 4
    assert pollers["send"] == {"postline-send-critical": 3, "postline-send-transactional": 4,
                               "postline-send-marketing": 2}
    assert note == (f"the local stack runs at most 4 batches at once per queue: render_concurrency.critical 50 and "
                    f"send_concurrency.transactional 20 (in {config}) are lowered to 4 here; a deployment gets the "
                    "config's")


def test_an_explicit_override_sets_every_queue_of_its_function_above_the_config():
    given = {"render": {"postline-critical": 4}, "send": {"postline-send-critical": 3, "postline-send-marketing": 2},
             "campaign": {"postline-campaigns": 2}}
    stack = LocalStack(LocalPaths.default(), queue_pollers=given, send_pollers=7)
    assert stack._pollers() == {**given, "send": {"postline-send-critical": 7, "postline-send-marketing": 7}}


def test_a_missing_or_invalid_config_is_one_line_naming_every_problem(tmp_path):
    with pytest.raises(LocalStackError, match=r"^postline config \S+nope.json does not exist \(start from "):
        deploy_pollers(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"domain": "mail.example.com", "send_concurrency": {"critical": 1}}))
    with pytest.raises(LocalStackError) as raised:
        deploy_pollers(str(bad))
    assert str(raised.value) == (f"postline config {bad} is invalid: from_address: required; "
                                 "send_concurrency.critical: must be a whole number from 2 to 1000 (Lambda's range)")


def test_a_pid_that_is_not_the_named_worker_is_neither_listed_alive_nor_killed():
    state = {"workers": {"send": {"pid": os.getpid(), "restarts": 2}}}  # this test process: alive, not a worker
    assert workers(state) == [{"name": "send", "pid": os.getpid(), "alive": False, "restarts": 2, "pollers": {}}]
    with pytest.raises(LocalStackError, match=r"^the send worker \(pid \d+\) is not running: the stack is starting"):
        kill_worker(state, "send")
    with pytest.raises(LocalStackError, match="runs no render worker"):
        kill_worker(state, "render")
    assert not worker_running(2**22 + 12345, "send")  # no such process
