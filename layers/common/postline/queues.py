"""The send queues: what the render stage hands the send stage, with large bodies parked in S3 (claim check)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 1
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

    def to_entry(self, entry_id: str, s3, bucket: str, threshold: int) -> dict[str, Any]:
        document = {
            "v": FORMAT_VERSION, "message_id": self.message_id, "stream": self.stream, "from": self.sender,
            "to": self.recipient, "template": self.template, "campaign": self.campaign, "tags": self.tags,
        }
        # The MIME produced by render is 7-bit ASCII (the SMTP policy encodes every part), so it travels as text.
        mime = self.mime.decode("ascii")
        if len(mime) > threshold:
            key = f"mime/{self.message_id}.eml"
            s3.put_object(Bucket=bucket, Key=key, Body=self.mime, ContentType="message/rfc822")
            document["mime_key"] = key
        else:
            document["mime"] = mime
        return {"Id": entry_id, "MessageBody": json.dumps(document, separators=(",", ":"))}

    @classmethod
    def from_body(cls, body: str) -> SendJob:
        document = json.loads(body)
        if document.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown send job format {document.get('v')!r}")
        mime = document.get("mime")
        return cls(
            message_id=document["message_id"], stream=document["stream"], sender=document["from"],
            recipient=document["to"], template=document["template"], campaign=document.get("campaign"),
            tags=document.get("tags") or {}, mime=mime.encode("ascii") if mime is not None else None,
            mime_key=document.get("mime_key"),
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
