"""boto3 clients created once per container and shared by the adapters (which also accept their own)."""

from __future__ import annotations

from functools import lru_cache

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, max_pool_connections=32)
# SES sends are never retried by botocore: a retried SendEmail after a read timeout could send the email twice.
# postline decides itself what to retry, holding its idempotency claim. The timeouts are well below the send
# function's (60 s): a hung call becomes an unknown outcome the function records, not a timed-out invocation that
# fails its whole batch (SendEmail answers in well under a second).
SES_CONNECT_TIMEOUT_SECONDS = 5
SES_READ_TIMEOUT_SECONDS = 15
SES_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    max_pool_connections=32,
    connect_timeout=SES_CONNECT_TIMEOUT_SECONDS,
    read_timeout=SES_READ_TIMEOUT_SECONDS,
)


@lru_cache(maxsize=1)
def _session() -> boto3.session.Session:
    """One session for all of the container's clients: they share its loaded endpoint and service data, which
    each new session would read and parse again (tens of milliseconds per client at cold start)."""
    return boto3.session.Session()


@lru_cache(maxsize=None)
def client(service: str):
    """The container's client for ``service`` (endpoint and region come from the standard AWS settings,
    so ``AWS_ENDPOINT_URL`` points everything at the local stack)."""
    config = SES_CONFIG if service == "sesv2" else _CONFIG
    return _session().client(service, config=config)
