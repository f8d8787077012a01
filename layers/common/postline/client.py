"""The application client: enqueue a validated send message in one call.

    from postline.client import PostlineClient
    mail = PostlineClient.from_queue_urls({"critical": "https://sqs.../postline-critical", ...})
    message_id = mail.send("password-reset", "ada@example.com", {"name": "Ada", ...}, stream="critical")

The message is validated here with the same contract the render function applies, so a malformed message
fails in the application, at once, instead of in the DLQ later. Every message gets an ``id`` (the caller's, or
a new one), so retrying ``send`` after a network error never sends twice, and the returned message id is
the one ``postline status`` and the events use.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from .contract import message_id_for, validate_send_message
from .settings import STREAMS


class PostlineClient:
    def __init__(self, queue_urls: dict[str, str], sqs=None):
        unknown = set(queue_urls) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; streams are {', '.join(STREAMS)}")
        self._queue_urls = dict(queue_urls)
        if sqs is None:
            import boto3

            sqs = boto3.client("sqs")
        self._sqs = sqs

    @classmethod
    def from_queue_urls(cls, queue_urls: dict[str, str], sqs=None) -> PostlineClient:
        return cls(queue_urls, sqs)

    def send(self, template: str, to: str, data: dict[str, Any] | None = None, *, stream: str = "transactional",
             id: str | None = None, campaign: str | None = None, tags: dict[str, str] | None = None,
             reply_to: str | None = None, locale: str | None = None) -> str:
        """Validate and enqueue one message on the stream's inbound queue; returns postline's message id."""
        if stream not in self._queue_urls:
            raise ValueError(f"no queue configured for stream {stream!r}")
        document = {"template": template, "to": to, "data": data or {}, "id": id or str(uuid.uuid4()),
                    "campaign": campaign, "tags": tags, "reply_to": reply_to, "locale": locale}
        document = {k: v for k, v in document.items() if v is not None}
        message = validate_send_message(document)  # raises Rejected, naming every problem
        self._sqs.send_message(QueueUrl=self._queue_urls[stream],
                               MessageBody=json.dumps(message.as_document(), separators=(",", ":")))
        return message_id_for(message.id)
