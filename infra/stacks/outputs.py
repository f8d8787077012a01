"""Stack outputs with stable keys: the operator CLI and applications find resources by these, never by hand."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from constructs import Construct


def stack_output(scope: Construct, key: str, value: str, description: str) -> CfnOutput:
    """An output whose key is exactly ``key`` (not a path hash), exported as ``<stack name>-<key>``."""
    stack = Stack.of(scope)
    return CfnOutput(stack, key, value=value, description=description, export_name=f"{stack.stack_name}-{key}")
