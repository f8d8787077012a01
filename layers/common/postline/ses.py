"""SES transport: one SESv2 SendEmail per message with raw MIME, the stream's configuration set and
postline's message id as a message tag (so SES events can be matched back to the message)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ParamValidationError

MESSAGE_ID_TAG = "postline_message_id"
# Which attempt of the message the email is (0, then each soft-bounce retry's number): an SES event settles only
# the attempt that produced it.
RETRY_TAG = "postline_retry"
# The same two, as headers of the email itself: SES's identity notifications carry no message tags, only the
# email's headers, and these find the message from them.
MESSAGE_ID_HEADER = "X-Postline-Message-Id"
RETRY_HEADER = "X-Postline-Retry"
# SES refuses the whole send (InvalidParameterValue) for a tag value with anything else: "only alphanumeric ASCII
# characters, '_', and '-' are allowed" (the SESv2 MessageTag reference). moto accepts anything.
_TAG_VALUE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

# Refusals that say SES did not take the message and may take it later: it waits, holding no claim.
TRANSIENT_CODES = {
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "LimitExceededException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "AccountSuspendedException",
    "NotFoundException",  # a configuration set that is being created: fix the setup, the message waits
}
# A server error (5xx) does not say whether SES took the email before it failed (AWS documents no such
# guarantee), so it is an unknown outcome: the claim is kept for SES's Send event or an operator to settle.
SERVER_ERROR_CODES = {"InternalFailure", "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException"}

SENT, TRANSIENT, PERMANENT, UNKNOWN = "sent", "transient", "permanent", "unknown"

# SES refuses an email while an identity it uses is not verified: the sending domain (DKIM verification can take up
# to 72 hours after a deploy) or, while the account is in the SES sandbox, the recipient. Both are the same
# MessageRejected, in SES's words (docs.aws.amazon.com/ses/latest/dg/troubleshoot-error-messages.html; over SMTP
# after "554 Message rejected: "): "Email address is not verified. The following identities failed the check in
# region US-EAST-1: Lumen <hello@mail.example.com>, hello@mail.example.com", the list cut with an ellipsis when long.
# Such an email waits for the identity instead of failing; any other MessageRejected is for good.
_NOT_VERIFIED = re.compile(r"\bemail\s+address\s+is\s+not\s+verified\b", re.IGNORECASE)
_FAILED_IDENTITIES = re.compile(
    r"failed\s+the\s+check\s+in\s+region\s+[^:]*:(?P<identities>.*)", re.IGNORECASE | re.DOTALL
)
UNVERIFIED_SENDER, UNVERIFIED_RECIPIENT, UNVERIFIED_IDENTITY = "sender", "recipient", "identity"
_SANDBOX_RECIPIENT = (
    "the recipient is not verified and the account is in the SES sandbox (verify the recipient, "
    "or request production access)"
)


# SES's refusals for its sending limits (docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html):
# "Maximum sending rate exceeded" or "Daily message quota exceeded".
THROTTLE_CODES = {"ThrottlingException", "Throttling", "TooManyRequestsException"}
RATE_THROTTLE, QUOTA_THROTTLE = "rate", "quota"


@dataclass(frozen=True)
class SendResult:
    kind: str  # SENT, TRANSIENT (not sent, retry), PERMANENT (will never be sent), UNKNOWN (may have been sent)
    ses_message_id: str | None = None  # the provider's message id: SES's, or an SMTP relay's queue id
    reason: str | None = None
    throttle: str | None = None  # RATE_THROTTLE or QUOTA_THROTTLE: which SES limit refused it
    unverified: str | None = None  # UNVERIFIED_*: whose identity SES has not verified yet (a TRANSIENT answer)
    # A PERMANENT answer that says the address does not exist (an SMTP relay's 5.1.1): suppressed as a hard bounce.
    hard_bounce: bool = False


def message_tags(
    *, message_id: str, retry: int, stream: str, template: str, campaign: str | None, tags: dict[str, str]
) -> list[dict[str, str]]:
    """The SES message tags of an email (as SendEmail's EmailTags; SES's SMTP interface takes the same in a
    header): postline's own, by which its events find the message, then the application's."""
    named = [
        (MESSAGE_ID_TAG, message_id),
        (RETRY_TAG, str(retry)),
        ("postline_stream", stream),
        ("postline_template", template),
    ]
    if campaign:
        named.append(("postline_campaign", campaign))
    named += tags.items()
    return [{"Name": name, "Value": _TAG_VALUE_UNSAFE.sub("_", value)[:256] or "_"} for name, value in named]


def send_raw(
    sesv2,
    *,
    message_id: str,
    sender: str,
    recipient: str,
    mime: bytes,
    configuration_set: str,
    stream: str,
    template: str,
    campaign: str | None,
    tags: dict[str, str],
    retry: int = 0,
) -> SendResult:
    email_tags = message_tags(
        message_id=message_id, retry=retry, stream=stream, template=template, campaign=campaign, tags=tags
    )
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
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in SERVER_ERROR_CODES or status >= 500:
            return SendResult(UNKNOWN, reason=f"{reason} (a server error: SES may have taken the email)")
        if code in THROTTLE_CODES:
            quota = "quota" in error.response["Error"].get("Message", "").lower()
            return SendResult(TRANSIENT, reason=reason, throttle=QUOTA_THROTTLE if quota else RATE_THROTTLE)
        if code == "MessageRejected" and (
            waiting := unverified(error.response["Error"].get("Message", ""), sender, recipient)
        ):
            return waiting
        return SendResult(TRANSIENT if code in TRANSIENT_CODES else PERMANENT, reason=reason)
    except (EndpointConnectionError, ConnectTimeoutError) as error:  # the request never reached SES
        return SendResult(TRANSIENT, reason=f"SES unreachable: {error}")
    except ParamValidationError as error:  # refused by botocore before any request was made
        return SendResult(PERMANENT, reason=f"not a valid SES request: {error}")
    except Exception as error:  # noqa: BLE001 - a timeout, a dropped connection, anything after the request left:
        # SES may have accepted the email, so the claim is kept
        return SendResult(UNKNOWN, reason=f"no answer from SES: {type(error).__name__}: {error}")
    return SendResult(SENT, ses_message_id=response["MessageId"])


def unverified(message: str, sender: str, recipient: str) -> SendResult | None:
    """SES's refusal for an identity it has not verified (through its API or its SMTP interface), as a wait with a
    reason that says whose; None for any other refusal. The reason names the sending domain but never an address
    (it is logged); SES's own message names them all."""
    if not _NOT_VERIFIED.search(message):
        return None
    listed = _FAILED_IDENTITIES.search(message)
    named = (
        {address.lower() for _, address in getaddresses([listed.group("identities").strip().rstrip(".…")])}
        if listed
        else set()
    )
    sender_address = parseaddr(sender)[1].lower()
    domain = sender_address.rpartition("@")[2]
    if sender_address in named or domain in named:
        also = f"; and {_SANDBOX_RECIPIENT}" if recipient.lower() in named else ""
        return SendResult(
            TRANSIENT,
            reason=f"SES has not verified the sending identity {domain} yet{also}",
            unverified=UNVERIFIED_SENDER,
        )
    if recipient.lower() in named:
        return SendResult(TRANSIENT, reason=_SANDBOX_RECIPIENT, unverified=UNVERIFIED_RECIPIENT)
    return SendResult(
        TRANSIENT,
        unverified=UNVERIFIED_IDENTITY,
        reason=(
            "SES has not verified an identity this email uses yet (its From, Sender or Return-Path address, or in the "
            "SES sandbox its recipient)"
        ),
    )
