"""The suppression list: who must not be mailed, and for which streams.

A suppression has a scope: ``all`` (hard bounce, complaint, most manual entries) blocks every stream; a stream
name (``marketing`` for an unsubscribe) blocks only that stream, so a newsletter unsubscribe never stops a
password reset.
"""
from __future__ import annotations

from collections.abc import Iterable

from .dynamo import batch_get
from .models import SUPPRESSION_SCOPE_ALL, Suppression

REASONS = ("hard_bounce", "complaint", "unsubscribe", "manual", "soft_bounce_exhausted")


def scopes_for(stream: str) -> tuple[str, str]:
    return (SUPPRESSION_SCOPE_ALL, stream)


def find_suppressions(dynamodb, table: str, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Suppression]:
    """For each (address, stream) pair, the suppression that blocks it, if any: one batched read for all."""
    wanted = set(wanted)
    keys = {(address, scope) for address, stream in wanted for scope in scopes_for(stream)}
    if not keys:
        return {}
    raw = batch_get(dynamodb, {table: [{"email": {"S": a}, "scope": {"S": s}} for a, s in keys]})[table]
    by_key = {(item.email, item.scope): item for item in map(Suppression.from_raw_data, raw)}
    blocking = {}
    for address, stream in wanted:
        for scope in scopes_for(stream):  # "all" first: it is the stronger reason to report
            if (address, scope) in by_key:
                blocking[(address, stream)] = by_key[(address, scope)]
                break
    return blocking


def describe(suppression: Suppression) -> str:
    return f"suppressed: {suppression.reason} (scope {suppression.scope})"
