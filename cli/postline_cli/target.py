"""Where the CLI's commands go: the local stack or an AWS account.

``AWS_ENDPOINT_URL`` set: that endpoint. Otherwise, a local stack that is up (started from this folder): its
endpoint. Otherwise AWS, with the normal AWS credentials. Resource names are the documented fixed names unless
the ``POSTLINE_*`` variables the functions use say otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from postline.models import bind_table_names
from postline.settings import STREAMS

from .local import resources
from .local.stack import LocalPaths, running_state


@dataclass(frozen=True)
class Target:
    endpoint: str | None
    tables: dict[str, str]

    def inbound_queue_url(self, stream: str) -> str:
        explicit = os.environ.get(f"POSTLINE_INBOUND_QUEUE_URL_{stream.upper()}")
        if explicit:
            return explicit
        from postline.clients import client

        return client("sqs").get_queue_url(QueueName=resources.INBOUND_QUEUES[stream])["QueueUrl"]

    def inbound_queue_urls(self) -> dict[str, str]:
        return {stream: self.inbound_queue_url(stream) for stream in STREAMS}


@lru_cache(maxsize=1)
def target() -> Target:
    if not os.environ.get("AWS_ENDPOINT_URL"):
        state = running_state(LocalPaths.default())
        if state:
            os.environ.update({
                "AWS_ENDPOINT_URL": state["endpoint"], "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
            })
    if os.environ.get("AWS_ENDPOINT_URL"):
        os.environ.setdefault("AWS_DEFAULT_REGION", resources.REGION)
    tables = {variable: os.environ.get(variable, name) for variable, name in resources.TABLES.items()}
    bind_table_names(*(tables[v] for v in ("POSTLINE_MESSAGES_TABLE", "POSTLINE_EVENTS_TABLE",
                                           "POSTLINE_SUPPRESSIONS_TABLE", "POSTLINE_TEMPLATES_TABLE")))
    return Target(os.environ.get("AWS_ENDPOINT_URL"), tables)
