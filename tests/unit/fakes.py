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
