"""Batched DynamoDB writes and reads for the hot paths: one call for a whole SQS batch where AWS allows it."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

_TRANSACT_LIMIT = 100
_BATCH_GET_LIMIT = 100
_ATTEMPTS = 5


class RetryLater(RuntimeError):
    """DynamoDB would not take the write now (throttling, conflicts); the caller retries the record later."""


@dataclass(frozen=True)
class ConditionFailed:
    """The item's condition did not hold; ``old`` is the item as it was (when one existed)."""

    old: dict[str, Any] | None


def _pause(attempt: int) -> None:
    time.sleep(min(1.0, 0.05 * 2**attempt) * random.random())


def transact_write(dynamodb, items: list[dict[str, Any]]) -> list[ConditionFailed | None]:
    """Write ``items`` (TransactWriteItems entries) in as few calls as possible. Items whose condition fails are
    reported, not raised, and the rest are written: a cancelled transaction is retried without them."""
    outcome: list[ConditionFailed | None] = [None] * len(items)
    for start in range(0, len(items), _TRANSACT_LIMIT):
        pending = list(range(start, min(start + _TRANSACT_LIMIT, len(items))))
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
                retry, contended = [], False
                for index, reason in zip(pending, reasons):
                    code = reason.get("Code")
                    if code == "ConditionalCheckFailed":
                        outcome[index] = ConditionFailed(reason.get("Item"))
                    else:
                        retry.append(index)  # cancelled because of a neighbour, or throttled / conflicting
                        contended = contended or code not in (None, "None")
                attempt += contended
                if attempt >= _ATTEMPTS:
                    raise RetryLater(f"DynamoDB transaction kept failing: {reasons}") from error
                if attempt:
                    _pause(attempt)
                pending = retry
    return outcome


def batch_get(dynamodb, keys_by_table: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """BatchGetItem across tables, in chunks of 100 keys, following UnprocessedKeys."""
    found: dict[str, list[dict[str, Any]]] = {table: [] for table in keys_by_table}
    flat = [(table, key) for table, keys in keys_by_table.items() for key in keys]
    for start in range(0, len(flat), _BATCH_GET_LIMIT):
        request: dict[str, Any] = {}
        for table, key in flat[start:start + _BATCH_GET_LIMIT]:
            request.setdefault(table, {"Keys": []})["Keys"].append(key)
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
