"""Batched DynamoDB writes and reads for the hot paths: one call for a whole SQS batch where AWS allows it."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

_TRANSACT_LIMIT = 100
_BATCH_GET_LIMIT = 100
_BATCH_STATEMENT_LIMIT = 25
DUPLICATE_ITEM = "DuplicateItem"
_ATTEMPTS = 5


class RetryLater(RuntimeError):
    """DynamoDB would not take the write now (throttling, conflicts); the caller retries the record later."""


@dataclass(frozen=True)
class ConditionFailed:
    """The item's condition did not hold; ``old`` is the item as it was (when one existed)."""

    old: dict[str, Any] | None


def condition_failed(error: BaseException) -> bool:
    """Whether a DynamoDB write failed only its condition (the item is not as the write expected)."""
    return isinstance(error, ClientError) and error.response["Error"].get("Code") == "ConditionalCheckFailedException"


def _pause(attempt: int) -> None:
    time.sleep(min(1.0, 0.05 * 2**attempt) * random.random())  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True)
class Withdrawn:
    """Not written because an item it depends on (``because``, its index) failed its condition."""

    because: int


def transact_write(
    dynamodb, items: list[dict[str, Any]], dependents: dict[int, list[int]] | None = None
) -> list[ConditionFailed | Withdrawn | None]:
    """Write ``items`` (TransactWriteItems entries) in as few calls as possible. Items whose condition fails are
    reported, not raised, and the rest are written: a cancelled transaction is retried without them.

    ``dependents`` maps an item (typically a ``ConditionCheck``) to the items that may only be written together
    with it: when its condition fails they are withdrawn too (and their own dependents, in turn), reported as
    ``Withdrawn`` with the index of the item that failed. An item and its dependents always travel in the same
    transaction, so whatever is written was written with its checks holding.
    """
    outcome: list[ConditionFailed | Withdrawn | None] = [None] * len(items)
    dependents = dependents or {}
    for chunk in _chunks(len(items), dependents):
        pending = chunk
        attempt = 0
        while pending:
            try:
                dynamodb.transact_write_items(TransactItems=[items[i] for i in pending])
                pending = []
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = error.response.get("CancellationReasons") or []
                if len(reasons) != len(pending):
                    raise
                retry, contended, failed = [], False, set()
                for index, reason in zip(pending, reasons, strict=True):
                    code = reason.get("Code")
                    if code == "ConditionalCheckFailed":
                        outcome[index] = ConditionFailed(reason.get("Item"))
                        failed.add(index)
                    else:
                        retry.append(index)  # cancelled because of a neighbour, or throttled / conflicting
                        contended = contended or code not in (None, "None")
                for index in failed:  # withdrawn with it: its dependents, theirs, and so on
                    work = [(dependent, index) for dependent in dependents.get(index, ())]
                    while work:
                        dependent, because = work.pop()
                        if outcome[dependent] is None:
                            outcome[dependent] = Withdrawn(because)
                            work += [(further, because) for further in dependents.get(dependent, ())]
                retry = [i for i in retry if outcome[i] is None]
                # A check left with nothing depending on it has nothing left to protect.
                retry = [i for i in retry if i not in dependents or any(outcome[d] is None for d in dependents[i])]
                attempt += contended
                if attempt >= _ATTEMPTS:
                    raise RetryLater(f"DynamoDB transaction kept failing: {reasons}") from error
                if attempt:
                    _pause(attempt)
                pending = retry
    return outcome


def insert_statement(table: str, item: dict[str, Any]) -> dict[str, Any]:
    """A PartiQL ``INSERT`` of ``item`` (attribute values by name), as a ``BatchExecuteStatement`` entry."""
    names = ", ".join(f"'{name}': ?" for name in item)
    return {"Statement": f'INSERT INTO "{table}" VALUE {{{names}}}', "Parameters": list(item.values())}


def insert_new(dynamodb, table: str, items: list[dict[str, Any]]) -> list[str | None]:
    """Write each item only where no item has its key, in one call per 25 (PartiQL ``INSERT`` in a
    ``BatchExecuteStatement``): a write unit per KB each, where a transaction's conditional writes cost two.

    Returns, per item, ``None`` when it was written, else DynamoDB's error code for it (``DuplicateItem`` where an
    item with its key exists, or what stopped it: throttling, access, ...; the whole call failing counts for each
    item). Not atomic, and without the idempotency token a transaction has: callers treat anything but ``None``
    as "not known to be written" and decide with a conditional write.
    """
    outcome: list[str | None] = []
    for start in range(0, len(items), _BATCH_STATEMENT_LIMIT):
        chunk = items[start : start + _BATCH_STATEMENT_LIMIT]
        try:
            responses = dynamodb.batch_execute_statement(Statements=[insert_statement(table, item) for item in chunk])[
                "Responses"
            ]
        except ClientError as error:
            outcome += [error.response["Error"]["Code"]] * len(chunk)
            continue
        outcome += [response["Error"].get("Code", "Error") if "Error" in response else None for response in responses]
    return outcome


def _chunks(count: int, dependents: dict[int, list[int]]) -> list[list[int]]:
    """Indexes in transactions of at most ``_TRANSACT_LIMIT``, each item in the same one as its dependents."""
    group = list(range(count))  # union-find: an item and its dependents form one group

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for index, those in dependents.items():
        for dependent in those:
            group[root(dependent)] = root(index)
    members: dict[int, list[int]] = {}
    for i in range(count):
        members.setdefault(root(i), []).append(i)
    chunks: list[list[int]] = []
    for together in members.values():
        if len(together) > _TRANSACT_LIMIT:
            raise ValueError(f"{len(together)} items must be written together, more than one transaction holds")
        if not chunks or len(chunks[-1]) + len(together) > _TRANSACT_LIMIT:
            chunks.append([])
        chunks[-1].extend(together)
    return [sorted(chunk) for chunk in chunks]


def batch_get(
    dynamodb, keys_by_table: dict[str, list[dict[str, Any]]], consistent: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """BatchGetItem across tables, in chunks of 100 keys, following UnprocessedKeys; ``consistent`` reads
    strongly (a read unit per item instead of half)."""
    found: dict[str, list[dict[str, Any]]] = {table: [] for table in keys_by_table}
    flat = [(table, key) for table, keys in keys_by_table.items() for key in keys]
    for start in range(0, len(flat), _BATCH_GET_LIMIT):
        request: dict[str, Any] = {}
        for table, key in flat[start : start + _BATCH_GET_LIMIT]:
            request.setdefault(table, {"Keys": [], **({"ConsistentRead": True} if consistent else {})})["Keys"].append(
                key
            )
        attempt = 0
        while request:
            response = dynamodb.batch_get_item(RequestItems=request)
            for table, items in response.get("Responses", {}).items():
                found[table].extend(items)
            request = response.get("UnprocessedKeys") or {}
            if request:
                attempt += 1
                if attempt >= _ATTEMPTS:
                    raise RetryLater("DynamoDB left keys unprocessed")
                _pause(attempt)
    return found
