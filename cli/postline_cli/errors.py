"""Any failure of a CLI command as one line: what is wrong, and what to do about it."""

from __future__ import annotations

import os

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from .target import TargetError, is_loopback

DEBUG_VARIABLE = "POSTLINE_DEBUG"
# Exit codes (docs/cli.md, "Exit codes"): 0 done; 1 a failure, or only part done; 2 input refused, nothing done
# (click's usage errors are 2 as well); 3 `postline status` has no record of the message.
EXIT_NO_RECORD = 3
_CREDENTIAL_CODES = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "RequestExpired",
}
_DENIED_CODES = {"AccessDenied", "AccessDeniedException"}
_MISSING_CODES = {
    "ResourceNotFoundException",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
    "NoSuchBucket",
}
_THROTTLED_CODES = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
}


def explain(error: Exception) -> str:
    """One line for ``error``, or for the AWS error behind it (PynamoDB wraps botocore's errors in its own)."""
    if isinstance(error, TargetError):
        return _one_line(error)
    aws_error = _aws_cause(error)
    if aws_error is not None:
        return _explain_aws(aws_error)
    if isinstance(error, OSError) and error.strerror and error.filename:  # a file or folder: not a bug
        return f"{error.strerror}: {error.filename}"
    what = f"{type(error).__name__}: {_one_line(error)}" if str(error) else type(error).__name__
    return f"unexpected {what} (a bug? {DEBUG_VARIABLE}=1 shows the traceback)"


def _aws_cause(error: BaseException | None) -> BotoCoreError | ClientError | None:
    """The first botocore error along ``error``'s chain (PynamoDB keeps the one it wraps as ``cause``)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (BotoCoreError, ClientError)):
            return error
        seen.add(id(error))
        cause = getattr(error, "cause", None)
        error = cause if isinstance(cause, BaseException) else error.__cause__ or error.__context__
    return None


def _explain_aws(error: BotoCoreError | ClientError) -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or getattr(error, "kwargs", {}).get("endpoint_url", "")
    local = is_loopback(endpoint)
    if isinstance(error, (BotoConnectionError, HTTPClientError)):
        detail = "" if isinstance(error, EndpointConnectionError) else f" ({_one_line(error)})"
        advice = "is the local stack up? `postline local up`" if local else "check the network and any proxy settings"
        where = f"the AWS endpoint {endpoint.rstrip('/')}" if endpoint else "AWS"
        return f"cannot reach {where}{detail}: {advice}"
    if isinstance(error, NoCredentialsError):
        return (
            "no AWS credentials found: configure them (`aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY), or start the local stack with `postline local up`"
        )
    if isinstance(error, PartialCredentialsError):
        return f"incomplete AWS credentials ({_one_line(error)}): set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(error, NoRegionError):
        return (
            "no AWS region is set: set AWS_DEFAULT_REGION or a region in the AWS profile (`aws configure`), "
            "or start the local stack with `postline local up`"
        )
    if isinstance(error, ClientError):
        return _explain_refusal(error, local)
    return f"AWS SDK error: {_one_line(error)}: check the AWS credentials and settings (AWS_PROFILE, ~/.aws/config)"


def _explain_refusal(error: ClientError, local: bool) -> str:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    refused = f"AWS refused {error.operation_name}: {code}: {_one_line(message)}"
    if code in _CREDENTIAL_CODES:
        return f"{refused}: check the AWS credentials (expired? `aws sso login` renews an SSO session)"
    if code in _DENIED_CODES:
        return f"{refused}: the credentials lack this permission; use a role that has it"
    if code in _MISSING_CODES:
        return f"{refused}: " + (
            "is the local stack up here? `postline local up` creates its resources"
            if local
            else "is postline deployed to this account and region? (docs/deploy.md)"
        )
    if code in _THROTTLED_CODES:
        return f"{refused}: AWS is throttling requests; try again in a moment"
    return f"{refused} ({DEBUG_VARIABLE}=1 shows the traceback)"


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
