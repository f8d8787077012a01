"""Email addresses: validated and normalised once, at the edge; everything after compares normalised values."""

from __future__ import annotations


class InvalidAddress(ValueError):
    pass


def normalise_address(value: str) -> str:
    """Strip, reject header-injection characters, validate the syntax and lower-case the domain."""
    if not isinstance(value, str):
        raise InvalidAddress("must be a string")
    if any(c in value for c in "\r\n\0"):
        raise InvalidAddress("contains a line break or NUL (header injection)")
    candidate = value.strip()
    if not candidate:
        raise InvalidAddress("is empty")
    if "<" in candidate or ">" in candidate or "," in candidate:
        raise InvalidAddress("must be a single bare address like name@example.com")
    # email_validator compiles its grammar at import (a tenth of a cold start): loaded by the first address checked,
    # not by every function that imports this module (the unsubscribe page only masks; SES events check addresses
    # only for bounces and complaints). The render function loads it at import: it checks every message's.
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidAddress(str(error)) from None
    if not result.local_part.isascii():
        # SES does not support SMTPUTF8: an internationalised local part cannot be delivered through it.
        raise InvalidAddress("the part before the @-sign must be ASCII (SES cannot send to SMTPUTF8 addresses)")
    return f"{result.local_part}@{result.ascii_domain.lower()}"


def mask_address(address: str) -> str:
    """``j***@example.com``: enough for a person to recognise their address, not enough to harvest it."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
