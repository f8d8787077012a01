"""SES transport: one SESv2 SendEmail per message with raw MIME, the stream's configuration set and
postline's message id as a message tag (so SES events can be matched back to the message)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

MESSAGE_ID_TAG = "postline_message_id"
# SES refuses the whole send (InvalidParameterValue) for a tag value with anything else: "only alphanumeric ASCII
# characters, '_', and '-' are allowed" (the SESv2 MessageTag reference). moto accepts anything.
_TAG_VALUE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

# Retried with backoff, holding no claim: SES did not take the message.
TRANSIENT_CODES = {
    "TooManyRequestsException", "ThrottlingException", "Throttling", "LimitExceededException",
    "SendingPausedException", "InternalFailure", "InternalServerError", "ServiceUnavailable",
    "ServiceUnavailableException", "MailFromDomainNotVerifiedException", "AccountSuspendedException",
    "NotFoundException",  # a configuration set that is being created: fix the setup, the message waits
}

SENT, TRANSIENT, PERMANENT, UNKNOWN = "sent", "transient", "permanent", "unknown"


@dataclass(frozen=True)
class SendResult:
    kind: str  # SENT, TRANSIENT (not sent, retry), PERMANENT (will never be sent), UNKNOWN (may have been sent)
    ses_message_id: str | None = None
    reason: str | None = None


def _tag(name: str, value: str) -> dict[str, str]:
    return {"Name": name, "Value": _TAG_VALUE_UNSAFE.sub("_", value)[:256] or "_"}


def send_raw(sesv2, *, message_id: str, sender: str, recipient: str, mime: bytes, configuration_set: str,
             stream: str, template: str, campaign: str | None, tags: dict[str, str]) -> SendResult:
    email_tags = [_tag(MESSAGE_ID_TAG, message_id), _tag("postline_stream", stream), _tag("postline_template", template)]
    if campaign:
        email_tags.append(_tag("postline_campaign", campaign))
    email_tags += [_tag(name, value) for name, value in tags.items()]
    try:
        response = sesv2.send_email(
            FromEmailAddress=sender,
            Destination={"ToAddresses": [recipient]},
            Content={"Raw": {"Data": mime}},
            ConfigurationSetName=configuration_set,
            EmailTags=email_tags,
        )
    except ClientError as error:
        code = error.response["Error"].get("Code", "")
        reason = f"SES {code}: {error.response['Error'].get('Message', '')}".strip()
        return SendResult(TRANSIENT if code in TRANSIENT_CODES else PERMANENT, reason=reason)
    except (EndpointConnectionError, ConnectTimeoutError) as error:  # the request never reached SES
        return SendResult(TRANSIENT, reason=f"SES unreachable: {error}")
    except (ReadTimeoutError, ConnectionClosedError) as error:  # SES may have accepted it: keep the claim
        return SendResult(UNKNOWN, reason=f"no answer from SES: {error}")
    return SendResult(SENT, ses_message_id=response["MessageId"])
