"""The send queues: what the render stage hands the send stage, with large bodies parked in S3 (claim check)."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from .suppression import suppression_key

# 2: the MIME travels deflated (``mime_z``). 1 (plain ``mime``) is still read: jobs queued before an upgrade.
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_BATCH_LIMIT = 10
_BATCH_BYTES = 1_000_000  # SendMessageBatch payload limit (1 MiB), with room for attributes


@dataclass
class SendJob:
    message_id: str
    stream: str
    sender: str
    recipient: str
    template: str
    campaign: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    mime: bytes | None = None
    mime_key: str | None = None  # set when the body waits in the claim-check bucket
    # The message record's fields, for a message render did not record: the send stage's claim creates the
    # record with them (``records.recorded_at_claim``).
    record: dict[str, Any] | None = None
    # The recipient's erased forms (``suppression.suppression_names``), so the send stage's check also finds a
    # suppression kept for an address erased after rendering, without holding the erasure key itself.
    erased_recipients: tuple[str, ...] = ()
    # The inbound SQS message this job was rendered from (the record's ``rendered_by``): a copy of this job that
    # finds the claim open waits for it to settle (or parks it); a repeat of the message, rendered from another,
    # is a duplicate at once.
    rendered_by: str | None = None
    retry: int = 0  # which attempt of the message this is: 0, then each soft-bounce retry's number
    queued_at: float | None = None  # when the application queued the message (an erasure blocks what came before)

    @property
    def suppression_names(self) -> list[str]:
        """The names the recipient may be suppressed under (``suppression.suppression_names``)."""
        return list(dict.fromkeys([suppression_key(self.recipient), self.recipient, *self.erased_recipients]))

    def to_entry(self, entry_id: str, s3, bucket: str, threshold: int) -> dict[str, Any]:
        document = {
            "v": FORMAT_VERSION,
            "message_id": self.message_id,
            "stream": self.stream,
            "from": self.sender,
            "to": self.recipient,
            "template": self.template,
            "campaign": self.campaign,
            "tags": self.tags,
        }
        if self.record is not None:  # (JSON has no sets: a set of the record's, such as ``repeats``, as a list)
            document["record"] = {name: sorted(v) if isinstance(v, set) else v for name, v in self.record.items()}
        if self.erased_recipients:
            document["erased_to"] = list(self.erased_recipients)
        if self.rendered_by is not None:
            document["by"] = self.rendered_by
        if self.retry:
            document["retry"] = self.retry
        if self.queued_at is not None:
            document["queued_at"] = self.queued_at
        # Deflated, a newsletter's quoted-printable MIME is about a quarter of its size (base64 included): SQS
        # bills each 64 KB of a request, and four times as large an email stays out of the claim-check bucket.
        packed = base64.b64encode(zlib.compress(self.mime)).decode("ascii")
        if len(packed) > threshold:
            # Named by its content too: a repeat of the message rendered while this job waits can never change
            # what this job sends.
            key = f"{mime_prefix(self.message_id)}{hashlib.sha256(self.mime).hexdigest()[:32]}.eml"
            s3.put_object(Bucket=bucket, Key=key, Body=self.mime, ContentType="message/rfc822")
            document["mime_key"] = key
        else:
            document["mime_z"] = packed
        return {"Id": entry_id, "MessageBody": json.dumps(document, separators=(",", ":"))}

    @classmethod
    def from_body(cls, body: str) -> SendJob:
        document = json.loads(body)
        if document.get("v") not in _READABLE_VERSIONS:
            raise ValueError(f"unknown send job format {document.get('v')!r}")
        if "mime_z" in document:
            try:
                mime = zlib.decompress(base64.b64decode(document["mime_z"], validate=True))
            except zlib.error as error:
                raise ValueError(f"mime_z is not deflated data: {error}") from error
        elif "mime" in document:
            mime = document["mime"].encode("ascii")
        elif "mime_key" in document:
            mime = None
        else:
            raise ValueError("send job without a body: needs mime_z, mime or mime_key")
        return cls(
            message_id=document["message_id"],
            stream=document["stream"],
            sender=document["from"],
            recipient=document["to"],
            template=document["template"],
            campaign=document.get("campaign"),
            tags=document.get("tags") or {},
            mime=mime,
            mime_key=document.get("mime_key"),
            record=_record_fields(document.get("record")),
            erased_recipients=_names(document.get("erased_to")),
            rendered_by=document.get("by"),
            retry=int(document.get("retry", 0)),
            queued_at=document.get("queued_at"),
        )

    def load_mime(self, s3, bucket: str) -> bytes:
        if self.mime is None:
            self.mime = s3.get_object(Bucket=bucket, Key=self.mime_key)["Body"].read()
        return self.mime


def _names(value: str | list[str] | None) -> tuple[str, ...]:
    """``erased_to``: a list, or one name in jobs queued before it was a list."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def mime_prefix(message_id: str) -> str:
    """Where a message's large bodies wait in the claim-check bucket (``mime/<message id>.eml`` before)."""
    return f"mime/{message_id}/"


def enqueue(sqs, queue_url: str, entries: list[dict[str, Any]]) -> dict[str, str]:
    """SendMessageBatch in as few calls as the limits allow; returns the entry ids that failed, with why."""
    failed: dict[str, str] = {}
    chunk: list[dict[str, Any]] = []
    size = 0

    def flush() -> None:
        if not chunk:
            return
        try:
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=list(chunk))
        except Exception as error:  # the whole call failed: every entry in it is retried
            failed.update({e["Id"]: f"could not enqueue: {error}" for e in chunk})
        else:
            failed.update(
                {f["Id"]: f"could not enqueue: {f.get('Message', f.get('Code'))}" for f in response.get("Failed", [])}
            )
        chunk.clear()

    for entry in entries:
        entry_size = len(entry["MessageBody"].encode()) + 1024
        if len(chunk) == _BATCH_LIMIT or size + entry_size > _BATCH_BYTES:
            flush()
            size = 0
        chunk.append(entry)
        size += entry_size
    flush()
    return failed


def _record_fields(fields: dict[str, Any] | None) -> dict[str, Any] | None:
    """A job's record fields as the claim writes them: ``repeats`` (the repeats' SQS message ids) a set again."""
    if fields and "repeats" in fields:
        return {**fields, "repeats": set(fields["repeats"])}
    return fields
