"""X-Ray tracing for the handlers, loaded only where it traces something.

Powertools' ``Tracer`` loads the X-Ray SDK when it is created, and the SDK makes botocore clients of its own at
import (about a fifth of a second of cold start) even when tracing is off. ``lambda_tracer`` decides the way
Powertools does (``POWERTOOLS_TRACE_DISABLED``, or not running in Lambda): where tracing is on it returns
Powertools' ``Tracer``; where it is off, a stand-in whose decorators return the function unchanged, which is
what a disabled ``Tracer`` amounts to.
"""

from __future__ import annotations

from typing import Any


class _Untraced:
    """A disabled Tracer: decorators that change nothing, annotations and metadata that go nowhere."""

    disabled = True

    @staticmethod
    def capture_lambda_handler(handler=None, **_: Any):
        return handler if handler is not None else (lambda function: function)

    @staticmethod
    def capture_method(method=None, **_: Any):
        return method if method is not None else (lambda function: function)

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        pass


def lambda_tracer():
    """Powertools' Tracer when tracing is on, an untraced stand-in when it is off."""
    from aws_lambda_powertools.tracing.tracer import Tracer

    if Tracer._is_tracer_disabled():  # the rule Powertools applies itself
        return _Untraced()
    return Tracer()
