"""The send queues: what the render stage hands the send stage, with large bodies parked in S3 (claim check)."""
from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

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
    # The recipient's erased form (``suppression.erased_address``), so the send stage's check also finds a
    # suppression kept for an address erased after rendering, without holding the erasure key itself.
    erased_recipient: str | None = None
    # The inbound SQS message this job was rendered from (the record's ``rendered_by``): only a copy of this job
    # may take over its claim once stale; a repeat of the message, rendered from another, may not.
    rendered_by: str | None = None

    @property
    def suppression_names(self) -> list[str]:
        """The names the recipient may be suppressed under (``suppression.suppression_names``)."""
        return [self.recipient] + ([self.erased_recipient] if self.erased_recipient else [])

    def to_entry(self, entry_id: str, s3, bucket: str, threshold: int) -> dict[str, Any]:
        document = {
            "v": FORMAT_VERSION, "message_id": self.message_id, "stream": self.stream, "from": self.sender,
            "to": self.recipient, "template": self.template, "campaign": self.campaign, "tags": self.tags,
        }
        if self.record is not None:
            document["record"] = self.record
        if self.erased_recipient is not None:
            document["erased_to"] = self.erased_recipient
        if self.rendered_by is not None:
            document["by"] = self.rendered_by
        # Deflated, a newsletter's quoted-printable MIME is about a quarter of its size (base64 included): SQS
        # bills each 64 KB of a request, and four times as large an email stays out of the claim-check bucket.
        packed = base64.b64encode(zlib.compress(self.mime)).decode("ascii")
        if len(packed) > threshold:
            key = f"mime/{self.message_id}.eml"
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
            message_id=document["message_id"], stream=document["stream"], sender=document["from"],
            recipient=document["to"], template=document["template"], campaign=document.get("campaign"),
            tags=document.get("tags") or {}, mime=mime, mime_key=document.get("mime_key"),
            record=document.get("record"), erased_recipient=document.get("erased_to"),
            rendered_by=document.get("by"),
        )

    def load_mime(self, s3, bucket: str) -> bytes:
        if self.mime is None:
            self.mime = s3.get_object(Bucket=bucket, Key=self.mime_key)["Body"].read()
        return self.mime


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
            failed.update({f["Id"]: f"could not enqueue: {f.get('Message', f.get('Code'))}" for f in response.get("Failed", [])})
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
