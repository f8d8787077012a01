"""The suppression list: who must not be mailed, and for which streams.

A suppression has a scope: ``all`` (hard bounce, complaint, most manual entries) blocks every stream; a stream
name (``marketing`` for an unsubscribe) blocks only that stream, so a newsletter unsubscribe never stops a
password reset.

Addresses are matched without regard to case (``suppression_key``): a complaint from ``Bob@example.com`` blocks
``bob@example.com``, while mail still goes to the address as the application wrote it. An erased address is kept
as a keyed hash (``erased_address``); erasure also leaves a mark (reason ``erased``, scope ``all``) that blocks
only the messages queued before it (``blocks``), so nothing already on its way brings the address back.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence

from .dynamo import batch_get
from .models import SUPPRESSION_SCOPE_ALL, Suppression

REASONS = ("hard_bounce", "complaint", "unsubscribe", "manual", "soft_bounce_exhausted")
ERASED = "erased"  # the reason of the mark erasure leaves under the erased name
_ERASED_NAME = re.compile(r"erased:[0-9a-f]{64}")


def scopes_for(stream: str) -> tuple[str, str]:
    return (SUPPRESSION_SCOPE_ALL, stream)


def suppression_key(address: str) -> str:
    """The name an address's suppressions are kept under: a (normalised) address, lower-cased. Local parts are
    case-sensitive in theory, never in practice: no mail provider gives Bob and bob two mailboxes."""
    return address.lower()


def erased_address(address: str, erasure_key: bytes) -> str:
    """What stands for an erased address in the suppression list: a keyed hash, so the address stays
    suppressed without being kept (and cannot be recovered by hashing a list of guesses)."""
    return "erased:" + hmac.new(erasure_key, address.encode(), hashlib.sha256).hexdigest()


def is_erased_name(name: str) -> bool:
    """Whether ``name`` is an address's erased form (``erased_address``), not an address."""
    return bool(_ERASED_NAME.fullmatch(name))


def suppression_names(address: str, erasure_key: bytes | None) -> list[str]:
    """The names an address may be suppressed under: its key and, where erasure applies, its key's erased form.
    An address with capitals also has the names it had before suppressions ignored case (kept as they were)."""
    forms = list(dict.fromkeys([suppression_key(address), address]))
    return forms + ([erased_address(form, erasure_key) for form in forms] if erasure_key else [])


def blocks(suppression: Suppression, queued_at: float | None) -> bool:
    """Whether ``suppression`` stops a message queued at ``queued_at``: all do, but an erasure's mark, which
    stops only what was queued before the erasure (unknown: before)."""
    if suppression.reason != ERASED:
        return True
    return queued_at is None or queued_at < suppression.suppressed_at


def find_suppressions(
    dynamodb,
    table: str,
    wanted: Iterable[tuple[str, str]],
    names_of: Callable[[str], Sequence[str]] = lambda address: [suppression_key(address)],
) -> dict[tuple[str, str], list[Suppression]]:
    """For each (address, stream) pair, the suppressions that may block it, strongest first: one batched,
    strongly consistent read for all (a suppression written a moment ago is seen). ``names_of`` gives the
    names each address may be suppressed under (``suppression_names``). ``first_blocking`` picks the one that
    stops a given message."""
    wanted = set(wanted)
    names = {address: names_of(address) for address, _ in wanted}
    keys = {(name, scope) for address, stream in wanted for name in names[address] for scope in scopes_for(stream)}
    if not keys:
        return {}
    raw = batch_get(dynamodb, {table: [{"email": {"S": a}, "scope": {"S": s}} for a, s in keys]}, consistent=True)[
        table
    ]
    by_key = {(item.email, item.scope): item for item in map(Suppression.from_raw_data, raw)}
    found = {}
    for address, stream in wanted:
        matches = [
            by_key[(name, scope)] for scope in scopes_for(stream) for name in names[address] if (name, scope) in by_key
        ]
        if matches:  # "all" first: it is the stronger reason to report
            found[(address, stream)] = matches
    return found


def first_blocking(suppressions: Sequence[Suppression], queued_at: float | None) -> Suppression | None:
    return next((item for item in suppressions if blocks(item, queued_at)), None)


def describe(suppression: Suppression) -> str:
    return f"suppressed: {suppression.reason} (scope {suppression.scope})"
