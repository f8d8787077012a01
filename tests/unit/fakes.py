"""Plain in-memory fakes of the few AWS client calls the library makes (no moto, no sockets)."""
from __future__ import annotations

import base64
import io
import json
from typing import Any

from botocore.exceptions import ClientError

KEY_OLD = b"o" * 32
KEY_NEW = b"n" * 32


def secret_json(active: str = "k2", keys: dict[str, bytes] | None = None) -> str:
    keys = keys if keys is not None else {"k1": KEY_OLD, "k2": KEY_NEW}
    return json.dumps({"active": active, "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()}})


def client_error(code: str, message: str = "", operation: str = "Operation", **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, **extra}, operation)


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.puts: list[dict[str, Any]] = []

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        self.puts.append(kwargs)
        self.objects[(kwargs["Bucket"], kwargs["Key"])] = kwargs["Body"]
        return {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


def key_of(entry: dict) -> str:
    """The value of a TransactWriteItems entry's first key attribute (for a Put, of its item's first attribute:
    the tests build items key first)."""
    body = next(iter(entry.values()))
    return next(iter((body.get("Key") or body["Item"]).values()))["S"]


class FakeTransactions:
    """TransactWriteItems with DynamoDB's all-or-nothing semantics: one failing item cancels the whole call and
        every item gets a cancellation reason (``None`` for the innocent ones). Items are named by their key's value;
    ``condition_fails`` maps a name to the item its condition found (or None); ``written`` lists what was written
    (ConditionChecks write nothing)."""

    def __init__(self, condition_fails: dict[str, dict | None] | None = None,
                 transient: dict[str, list[str]] | None = None, error: Exception | None = None) -> None:
        self.condition_fails = condition_fails or {}
        self.transient = {k: list(v) for k, v in (transient or {}).items()}
        self.error = error
        self.calls: list[list[str]] = []
        self.written: list[str] = []

    def transact_write_items(self, TransactItems):
        keys = [key_of(e) for e in TransactItems]
        self.calls.append(keys)
        assert len(TransactItems) <= 100, "DynamoDB takes at most 100 items per transaction"
        assert len(set(keys)) == len(keys), "a transaction may touch an item only once"
        if self.error is not None:
            raise self.error
        reasons, cancelled = [], False
        for k in keys:
            if k in self.condition_fails:
                old = self.condition_fails[k]
                reasons.append({"Code": "ConditionalCheckFailed", "Message": "The conditional request failed",
                                **({"Item": old} if old is not None else {})})
                cancelled = True
            elif self.transient.get(k):
                reasons.append({"Code": self.transient[k].pop(0), "Message": "try again"})
                cancelled = True
            else:
                reasons.append({"Code": "None"})
        if cancelled:
            raise client_error("TransactionCanceledException", "Transaction cancelled", "TransactWriteItems",
                               CancellationReasons=reasons)
        self.written.extend(k for e, k in zip(TransactItems, keys, strict=True) if "ConditionCheck" not in e)
        return {}
