"""The application client: enqueue a validated send message in one call.

    from postline.client import PostlineClient
    mail = PostlineClient({"critical": "https://sqs.../postline-critical", ...})
    message_id = mail.send("password-reset", "ada@example.com", {"name": "Ada", ...}, stream="critical")

Each template belongs to one stream, and its messages must go on that stream's inbound queue: a password reset put
on the marketing queue would wait behind a newsletter. So the client never picks a queue on its own: either the
application says the stream (``stream=``), or the client is given the templates table (``templates_table=``) and
reads each template's stream from its record, once per template and version, refusing a ``stream=`` that differs.

The message is validated here with the same contract the render function applies, so a malformed message
fails in the application, at once, instead of in the DLQ later. Every message gets an ``id`` (the caller's, or
a new one), so retrying ``send`` after a network error never sends twice, and the returned message id is
the one ``postline status`` and the events use.

This module, the contract and boto3 are all ``pip install postline`` installs (the rest is the ``cli`` extra):
keep its imports to those.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .contract import TEMPLATE_REF, message_id_for, validate_send_message
from .settings import STREAMS

ACTIVE_POINTER_VERSION = 0  # postline.models: the templates table's item naming a template's active version


class WrongStream(ValueError):
    """The stream the application named is not the template's, or no queue is configured for the template's."""


class UnknownTemplate(ValueError):
    """The templates table holds no such template (or version): render would reject the message."""


class PostlineClient:
    def __init__(self, queue_urls: dict[str, str], sqs=None, *, templates_table: str | None = None, dynamodb=None):
        unknown = set(queue_urls) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; streams are {', '.join(STREAMS)}")
        self._queue_urls = dict(queue_urls)
        self._sqs = sqs if sqs is not None else _default_client("sqs")
        self._templates_table = templates_table
        self._dynamodb = dynamodb if dynamodb is not None or not templates_table else _default_client("dynamodb")
        self._streams: dict[tuple[str, int], str] = {}  # (template, version or 0) -> stream, read once each

    @classmethod
    def from_queue_urls(cls, queue_urls: dict[str, str], sqs=None, **options) -> PostlineClient:
        return cls(queue_urls, sqs, **options)

    def send(
        self,
        template: str,
        to: str,
        data: dict[str, Any] | None = None,
        *,
        stream: str | None = None,
        id: str | None = None,
        campaign: str | None = None,
        tags: dict[str, str] | None = None,
        reply_to: str | None = None,
        locale: str | None = None,
    ) -> str:
        """Validate and enqueue one message on its template's stream's inbound queue; returns postline's message
        id. Raises ``postline.contract.Rejected`` for an invalid message, ``WrongStream`` when the stream is not
        the template's or has no queue here, ``UnknownTemplate`` when the templates table has no such template."""
        document = {
            "template": template,
            "to": to,
            "data": data or {},
            "id": id or str(uuid.uuid4()),
            "campaign": campaign,
            "tags": tags,
            "reply_to": reply_to,
            "locale": locale,
        }
        document = {k: v for k, v in document.items() if v is not None}
        message = validate_send_message(document)  # raises Rejected, naming every problem
        stream = self._stream(message.template, stream)
        self._sqs.send_message(
            QueueUrl=self._queue_urls[stream], MessageBody=json.dumps(message.as_document(), separators=(",", ":"))
        )
        return message_id_for(message.id)

    def stream_of(self, template: str) -> str:
        """The template's stream (``name`` or ``name@3``) as its record in the templates table says; read once."""
        if not self._templates_table:
            raise ValueError("the client has no templates table to read streams from (templates_table=)")
        match = TEMPLATE_REF.match(template)
        if not match:
            raise UnknownTemplate(f"{template!r} is not a template name")
        key = (match["name"], int(match["version"] or ACTIVE_POINTER_VERSION))
        if key not in self._streams:
            item = self._dynamodb.get_item(
                TableName=self._templates_table,
                Key={"name": {"S": key[0]}, "version": {"N": str(key[1])}},
                ProjectionExpression="#stream",
                ExpressionAttributeNames={"#stream": "stream"},
            ).get("Item")
            if not item or "stream" not in item:
                raise UnknownTemplate(f"template {template!r} is not published")
            self._streams[key] = item["stream"]["S"]
        return self._streams[key]

    def _stream(self, template: str, named: str | None) -> str:
        if named is not None and named not in STREAMS:
            raise WrongStream(f"unknown stream {named!r}; streams are {', '.join(STREAMS)}")
        if self._templates_table:
            stream = self.stream_of(template)
            if named is not None and named != stream:
                raise WrongStream(
                    f"template {template!r} is in the {stream} stream, not {named}: it goes on the {stream} queue"
                )
        elif named is None:
            raise WrongStream(
                f"which stream is template {template!r} in? Pass stream=, or give the client "
                "templates_table= to read it from the template"
            )
        else:
            stream = named
        if stream not in self._queue_urls:
            raise WrongStream(f"no queue configured for stream {stream!r} (template {template!r})")
        return stream


def _default_client(service: str):
    from .clients import client

    return client(service)
