"""The local AWS endpoint: a moto server on loopback, plus what moto's SES leaves out.

moto's SESv2 accepts a send but ignores the configuration set and the message tags, and keeps the email only
in memory. Here every accepted send is also
- written as an RFC 5322 ``.eml`` file to the outbox, named by postline's message id (from the message tag), and
- appended to a JSON-lines send log that the local stack turns into SES events (Send, Delivery, Bounce, ...).

Run as its own process (``python -m postline_cli.local.aws_endpoint``) so the endpoint's request handling does
not compete with the functions for the interpreter lock.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import threading
import time

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_.@-]")


def install_ses_recorder(outbox: str, send_log: str) -> None:
    from moto.sesv2.responses import SESV2Response

    original = SESV2Response.send_email
    lock = threading.Lock()
    os.makedirs(outbox, exist_ok=True)

    def send_email(self) -> str:
        answer = original(self)
        params = json.loads(self.body)
        tags = {t["Name"]: t["Value"] for t in params.get("EmailTags", [])}
        ses_message_id = json.loads(answer)["MessageId"]
        name = _UNSAFE_FILENAME.sub("_", tags.get("postline_message_id") or ses_message_id)
        raw = params.get("Content", {}).get("Raw", {}).get("Data")
        if raw is not None:
            with open(os.path.join(outbox, f"{name}.eml"), "wb") as handle:
                handle.write(base64.b64decode(raw))
        destination = params.get("Destination", {})
        entry = {
            "ses_message_id": ses_message_id,
            "timestamp": time.time(),
            "source": params.get("FromEmailAddress"),
            "destination": destination.get("ToAddresses", []) + destination.get("CcAddresses", []),
            "configuration_set": params.get("ConfigurationSetName"),
            "tags": tags,
        }
        with lock, open(send_log, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
        return answer

    SESV2Response.send_email = send_email


def serialise_dynamodb() -> None:
    """moto's DynamoDB is not safe across request threads, and a transaction deep-copies every table it touches
    (the whole table, each time) to roll back on failure: wrong under concurrent writes, and slower with every
    item stored. Here DynamoDB requests run one at a time (DynamoDB itself isolates them), and a transaction
    snapshots only the items it writes."""
    import copy
    import types

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    handle = DynamoHandler.call_action

    def call_action(self):
        with lock:
            return handle(self)

    DynamoHandler.call_action = call_action
    # The backend's whole-table snapshot becomes a no-op; the item snapshots below replace it.
    models.copy = types.SimpleNamespace(
        deepcopy=lambda value, memo=None: value if isinstance(value, Table) else copy.deepcopy(value, memo))
    transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        snapshots = []
        for entry in transact_items:
            _, operation = next(iter(entry.items()))
            table = self.get_table(operation["TableName"])
            key = operation.get("Item") or operation["Key"]
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            snapshots.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        try:
            return transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(snapshots):
                table.delete_item(hash_key, range_key)
                if item is not None:
                    if range_key is None:
                        table.items[hash_key] = item
                    else:
                        table.items[hash_key][range_key] = item
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--send-log", required=True)
    args = parser.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the functions' logs

    install_ses_recorder(args.outbox, args.send_log)
    serialise_dynamodb()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
