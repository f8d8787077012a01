"""The handlers' tracer: Powertools' Tracer where tracing is on, a stand-in that changes nothing where it is off."""
from __future__ import annotations

import sys

from aws_lambda_powertools.tracing import tracer as powertools_tracer

from postline.tracing import lambda_tracer


def handler(event, context):
    return {"ok": event}


def test_off_outside_lambda_the_handler_is_left_as_it_is(monkeypatch):
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    tracer = lambda_tracer()
    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_method(handler) is handler
    assert tracer.capture_lambda_handler()(handler) is handler
    tracer.put_annotation("k", "v")
    tracer.put_metadata("k", {"v": 1})


def test_off_when_disabled_in_lambda_too(monkeypatch):
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert lambda_tracer().capture_lambda_handler(handler) is handler


def test_off_does_not_load_the_xray_sdk(monkeypatch):
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    monkeypatch.delitem(sys.modules, "aws_xray_sdk.core", raising=False)
    lambda_tracer()
    assert "aws_xray_sdk.core" not in sys.modules


def test_on_in_lambda_it_is_powertools_tracer(monkeypatch):
    made = []

    class Recorded:
        def __init__(self):
            made.append(self)

    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    monkeypatch.setattr(powertools_tracer.Tracer, "__new__", lambda cls, *a, **k: Recorded())
    tracer = lambda_tracer()
    assert made and tracer is made[0]
