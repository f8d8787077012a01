"""How a rendered email leaves postline, chosen per stream: SES's API (the default) or an SMTP relay (postline.smtp).

A transport sends one email and answers with a ``SendResult`` (postline.ses): sent, with the provider's message
id, or a classified refusal (transient, permanent, unknown). Everything around it is the send stage's and the same
for every transport: the suppression check, the claim, the limiter's slots, and recording the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from .ses import SendResult, send_raw

SES_API, SMTP = "ses_api", "smtp"


@dataclass(frozen=True)
class Email:
    """One rendered email and what every transport needs to send and label it."""

    message_id: str
    sender: str
    recipient: str
    mime: bytes
    stream: str
    configuration_set: str  # the stream's SES configuration set (the SES API, and SES's SMTP interface)
    template: str
    campaign: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    retry: int = 0


class Transport(Protocol):
    name: str  # SES_API or SMTP: recorded on the message when it is not SES_API

    def send(self, email: Email) -> SendResult:
        """Send ``email`` once; never retry a send that may have reached the provider."""


class SesApiTransport:
    """SESv2 SendEmail with the raw MIME (postline.ses.send_raw)."""

    name = SES_API

    def __init__(self, sesv2) -> None:
        self.sesv2 = sesv2

    def send(self, email: Email) -> SendResult:
        return send_raw(
            self.sesv2,
            message_id=email.message_id,
            sender=email.sender,
            recipient=email.recipient,
            mime=email.mime,
            configuration_set=email.configuration_set,
            stream=email.stream,
            template=email.template,
            campaign=email.campaign,
            tags=email.tags,
            retry=email.retry,
        )
