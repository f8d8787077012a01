"""Managing the suppression list from the operator's side: add and remove with a recorded reason, show an
address with its history, list with filters, import and export CSV.

History entries live beside the suppressions, under the same address, with the sort key
``history#<time>#<action>``; the send path reads suppressions by exact scope and never sees them.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from postline.addresses import InvalidAddress, normalise_address
from postline.models import Suppression
from postline.retries import SOFT_BOUNCES
from postline.settings import STREAMS
from postline.suppression import REASONS, is_erased_name, suppression_key

HISTORY = "history#"
SCOPES = ("all",) + STREAMS
CSV_FIELDS = ("email", "scope", "reason", "suppressed_at", "source", "detail")


def _history(address: str, action: str, scope: str, reason: str, note: str | None, now: float) -> Suppression:
    return Suppression(
        address, f"{HISTORY}{now:.3f}#{action}", reason=reason, suppressed_at=now, source=scope, detail=note
    )


def add(address: str, scope: str, reason: str, note: str | None, source: str = "cli") -> Suppression:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    now = time.time()
    key = suppression_key(address)  # matched without regard to case (postline.suppression)
    item = Suppression(key, scope, reason=reason, suppressed_at=now, source=source, detail=note)
    item.save()
    _history(key, "added", scope, reason, note, now).save()
    return item


def remove(names: Sequence[str], scope: str, note: str) -> list[Suppression]:
    """Delete the scope's suppression under each of an address's names (``suppression_names``) and record
    who-knows-why in the history; returns what was removed (empty when there was none)."""
    removed = []
    for name in names:
        try:
            item = Suppression.get(name, scope)
        except Suppression.DoesNotExist:
            continue
        item.delete()
        _history(name, "removed", scope, item.reason, note, time.time()).save()
        removed.append(item)
    return removed


def _in_force(item: Suppression) -> bool:
    return item.scope in SCOPES


def show(names: Sequence[str]) -> tuple[list[Suppression], list[Suppression], Suppression | None]:
    """An address's suppressions in force under any of its names (``suppression_names``: an unsubscribe made
    after its message's record expired, or an erased address, is kept under the erased form), its history
    (oldest first), and its soft-bounce run if one is open."""
    items = [item for name in names for item in Suppression.query(name)]
    soft = next((i for i in items if i.scope == SOFT_BOUNCES and i.suppressed_at is not None), None)
    history = sorted((i for i in items if i.scope.startswith(HISTORY)), key=lambda i: i.suppressed_at)
    return [i for i in items if _in_force(i)], history, soft


def iterate(
    reason: str | None = None, scope: str | None = None, source: str | None = None, since: float | None = None
) -> Iterator[Suppression]:
    """Every suppression in force matching the filters (a scan: an operator's tool, not a hot path)."""
    for item in Suppression.scan():
        if not _in_force(item):
            continue
        if (reason and item.reason != reason) or (scope and item.scope != scope):
            continue
        if (source and not (item.source or "").startswith(source)) or (since and item.suppressed_at < since):
            continue
        yield item


@dataclass
class ImportResult:
    added: int = 0
    invalid: list[tuple[int, str, str]] = field(default_factory=list)  # (line, value, why)


def import_csv(
    handle: IO[str],
    default_scope: str,
    default_reason: str,
    source: str,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ImportResult:
    """Suppress every address in a CSV (a header with ``email`` and optionally ``scope``, ``reason``,
    ``detail``; or one address per line). Invalid rows are reported with their line and skipped."""
    result = ImportResult()
    rows = list(csv.reader(handle))
    if not rows:
        return result
    header = [h.strip().lower() for h in rows[0]]
    has_header = "email" in header
    column: dict[str, int] = {
        name: header.index(name) for name in ("email", "scope", "reason", "detail") if name in header
    }
    now = time.time()
    batch: dict[tuple[str, str], Suppression] = {}
    for line, row in enumerate(rows[1:] if has_header else rows, start=2 if has_header else 1):
        if not any(cell.strip() for cell in row):
            continue

        def cell(name: str, default: str | None = None) -> str | None:
            index = column.get(name, 0 if name == "email" and not has_header else None)
            value = row[index].strip() if index is not None and index < len(row) else ""  # noqa: B023 - used in this iteration only
            return value or default

        raw = cell("email") or ""
        scope, reason = cell("scope", default_scope), cell("reason", default_reason)
        try:
            # An address kept as its keyed hash (erased, or unsubscribed after its record expired) stays one.
            address = raw if is_erased_name(raw) else suppression_key(normalise_address(raw))
            if scope not in SCOPES:
                raise ValueError(f"unknown scope {scope!r}")
            if reason not in REASONS:
                raise ValueError(f"unknown reason {reason!r}")
        except (InvalidAddress, ValueError) as error:
            result.invalid.append((line, raw, str(error)))
            continue
        batch[(address, scope)] = Suppression(
            address, scope, reason=reason, suppressed_at=now, source=source, detail=cell("detail")
        )
    items = list(batch.values())
    for start in range(0, len(items), 25):
        chunk = items[start : start + 25]
        with Suppression.batch_write() as writer:
            for item in chunk:
                writer.save(item)
        result.added += len(chunk)
        progress(result.added, len(items))
    return result


def export_csv(handle: IO[str], items: Iterable[Suppression]) -> int:
    from .views import iso

    writer = csv.writer(handle)
    writer.writerow(CSV_FIELDS)
    count = 0
    for item in items:
        writer.writerow(
            [item.email, item.scope, item.reason, iso(item.suppressed_at), item.source or "", item.detail or ""]
        )
        count += 1
    return count
