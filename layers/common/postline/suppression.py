"""The suppression list: who must not be mailed, and for which streams.

A suppression has a scope: ``all`` (hard bounce, complaint, most manual entries) blocks every stream; a stream
name (``marketing`` for an unsubscribe) blocks only that stream, so a newsletter unsubscribe never stops a
password reset.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence

from .dynamo import batch_get
from .models import SUPPRESSION_SCOPE_ALL, Suppression

REASONS = ("hard_bounce", "complaint", "unsubscribe", "manual", "soft_bounce_exhausted")
_ERASED_NAME = re.compile(r"erased:[0-9a-f]{64}")


def scopes_for(stream: str) -> tuple[str, str]:
    return (SUPPRESSION_SCOPE_ALL, stream)


def erased_address(address: str, erasure_key: bytes) -> str:
    """What stands for an erased address in the suppression list: a keyed hash, so the address stays
    suppressed without being kept (and cannot be recovered by hashing a list of guesses)."""
    return "erased:" + hmac.new(erasure_key, address.encode(), hashlib.sha256).hexdigest()


def is_erased_name(name: str) -> bool:
    """Whether ``name`` is an address's erased form (``erased_address``), not an address."""
    return bool(_ERASED_NAME.fullmatch(name))


def suppression_names(address: str, erasure_key: bytes | None) -> list[str]:
    """The names an address may be suppressed under: itself and, where erasure applies, its erased form."""
    return [address] + ([erased_address(address, erasure_key)] if erasure_key else [])


def find_suppressions(dynamodb, table: str, wanted: Iterable[tuple[str, str]],
                      names_of: Callable[[str], Sequence[str]] = lambda address: [address],
                      ) -> dict[tuple[str, str], Suppression]:
    """For each (address, stream) pair, the suppression that blocks it, if any: one batched read for all.
    ``names_of`` gives the names each address may be suppressed under (``suppression_names``: with erasure on,
    its erased form too, as erased addresses are kept as keyed hashes)."""
    wanted = set(wanted)
    names = {address: names_of(address) for address, _ in wanted}
    keys = {(name, scope) for address, stream in wanted for name in names[address] for scope in scopes_for(stream)}
    if not keys:
        return {}
    raw = batch_get(dynamodb, {table: [{"email": {"S": a}, "scope": {"S": s}} for a, s in keys]})[table]
    by_key = {(item.email, item.scope): item for item in map(Suppression.from_raw_data, raw)}
    blocking = {}
    for address, stream in wanted:
        found = [by_key[(name, scope)] for scope in scopes_for(stream) for name in names[address]
                 if (name, scope) in by_key]
        if found:  # "all" first: it is the stronger reason to report
            blocking[(address, stream)] = found[0]
    return blocking


def describe(suppression: Suppression) -> str:
    return f"suppressed: {suppression.reason} (scope {suppression.scope})"
