"""The unsubscribe subdomain's MX, locally: a real SMTP server (aiosmtpd) on loopback that does what SES's receipt
rule does in AWS. It accepts mail only for the unsubscribe address's domain (SES answers 550 for a recipient no rule
covers), stores each message raw in the bucket under ``incoming/<SES message id>``, and publishes SES's ``Received``
notification to the topic, whose SQS subscription feeds the real ``unsubscribe_mail`` function. SES's spam and virus
scans are not simulated: their verdicts are always PASS locally."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from postline.inbound_mail import INCOMING_PREFIX

DEFAULT_SMTP_PORT = 2526
# SES's notifications list at most this many headers' worth; locally every header is listed.
_COMMON_HEADERS = ("from", "to", "subject", "date", "message-id", "return-path")


def ses_mail_id() -> str:
    """An id shaped like SES's (40 lower-case letters and digits)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(40))


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def receipt_notification(
    mail_id: str,
    raw: bytes,
    envelope_sender: str,
    recipients: list[str],
    bucket: str,
    key: str,
    topic_arn: str,
    at: float,
) -> dict:
    """SES's ``Received`` notification for an S3 action with a topic, as AWS documents and sends it."""
    headers = BytesHeaderParser().parsebytes(raw)
    listed = [{"name": name, "value": str(value)} for name, value in headers.items()]
    common = {name: str(headers[name]) for name in _COMMON_HEADERS if headers[name] is not None}
    stamp = _iso(at)
    return {
        "notificationType": "Received",
        "mail": {
            "timestamp": stamp,
            "source": envelope_sender,
            "messageId": mail_id,
            "destination": recipients,
            "headersTruncated": False,
            "headers": listed,
            "commonHeaders": {
                "returnPath": common.get("return-path", envelope_sender),
                "from": [address for _, address in getaddresses([common.get("from", "")]) if address],
                "to": [address for _, address in getaddresses([common.get("to", "")]) if address],
                "messageId": common.get("message-id", ""),
                "subject": common.get("subject", ""),
                "date": common.get("date", ""),
            },
        },
        "receipt": {
            "timestamp": stamp,
            "processingTimeMillis": 1,
            "recipients": recipients,
            "spamVerdict": {"status": "PASS"},
            "virusVerdict": {"status": "PASS"},
            "spfVerdict": {"status": "GRAY"},
            "dkimVerdict": {"status": "GRAY"},
            "dmarcVerdict": {"status": "GRAY"},
            "action": {
                "type": "S3",
                "topicArn": topic_arn,
                "bucketName": bucket,
                "objectKeyPrefix": INCOMING_PREFIX,
                "objectKey": key,
            },
        },
    }


def store_and_notify(
    s3, sns, bucket: str, topic_arn: str, raw: bytes, envelope_sender: str, recipients: list[str], at: float
) -> str:
    """What the receipt rule does with one email: the raw message in S3, then the notification; SES's id."""
    mail_id = ses_mail_id()
    key = INCOMING_PREFIX + mail_id
    s3.put_object(Bucket=bucket, Key=key, Body=raw)
    notification = receipt_notification(mail_id, raw, envelope_sender, recipients, bucket, key, topic_arn, at)
    sns.publish(TopicArn=topic_arn, Subject="Amazon SES Email Receipt Notification", Message=json.dumps(notification))
    return mail_id


class _ReceiptRule:
    """aiosmtpd's handler: recipients checked as SES's rule would, each message stored and announced."""

    def __init__(self, domain: str, deliver: Callable[[bytes, str, list[str]], str]):
        self.domain, self.deliver = domain.lower(), deliver

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options) -> str:
        if address.rpartition("@")[2].lower() != self.domain:
            return "550 5.1.1 Mailbox does not exist"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self.deliver, raw, envelope.mail_from or "", list(envelope.rcpt_tos)
            )
        except Exception as error:  # noqa: BLE001 - the sender is told to try later, as SES would on its trouble
            return f"451 4.3.0 could not store the message ({type(error).__name__})"
        return "250 OK"


class LocalMailReceiver:
    """The SMTP server, in its own thread, until ``stop``."""

    def __init__(
        self,
        host: str,
        port: int,
        domain: str,
        s3,
        sns,
        bucket: str,
        topic_arn: str,
        clock: Callable[[], float] = time.time,
    ):
        from aiosmtpd.controller import Controller

        def deliver(raw: bytes, envelope_sender: str, recipients: list[str]) -> str:
            return store_and_notify(s3, sns, bucket, topic_arn, raw, envelope_sender, recipients, clock())

        # 10 MB, SES's own limit for a message it stores through an S3 action with notification; 8-bit bodies kept.
        self.controller = Controller(
            _ReceiptRule(domain, deliver),
            hostname=host,
            port=port,
            data_size_limit=10 * 1024 * 1024,
            decode_data=False,
            server_hostname=f"inbound-smtp.local.{domain}",
        )

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def start_unsubscribe_mail(
    session, endpoint: str, host: str, port: int, clock, stop, on_batch=None
) -> LocalMailReceiver:
    """The local receiving path, as the stack wires it in AWS: the SMTP server (for SES's receipt rule), and the
    unsubscribe_mail function fed by its queue. Returns the receiver, which the stack stops."""
    from . import resources
    from .runner import QueuePoller, load_handler_module

    module = load_handler_module("unsubscribe_mail")
    module.mail_context.clock = module.mail_context.engagement.clock = clock  # ``postline local clock``
    QueuePoller(
        session.client("sqs"),
        resources.queue_url(endpoint, resources.UNSUBSCRIBE_MAIL_QUEUE),
        resources.UNSUBSCRIBE_MAIL_QUEUE,
        "unsubscribe_mail",
        module.handler,
        stop,
        on_batch,
    ).start()
    receiver = LocalMailReceiver(
        host,
        port,
        resources.UNSUBSCRIBE_DOMAIN,
        session.client("s3"),
        session.client("sns"),
        resources.UNSUBSCRIBE_MAIL_BUCKET,
        resources.topic_arn(resources.UNSUBSCRIBE_MAIL_TOPIC),
        clock,
    )
    receiver.start()
    return receiver
