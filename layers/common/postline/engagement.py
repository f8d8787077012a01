"""Opens, clicks and unsubscribes: what the public endpoints do with a signed token.

Every request first verifies the token (constant-time HMAC); an invalid token is answered exactly like a valid
one for opens (the pixel), and with the same 404 for clicks and unsubscribes, so nothing reveals which tokens
are valid. Opens and clicks cost one read (the message, for its campaign and sending time) and one write (the
event); a failure to record never breaks the pixel or the redirect.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DeleteError

from . import records
from .analytics import Analytics, Fact
from .analytics.counters import link_digest, public_link
from .app_events import AppEvent, publish
from .batch import describe_for_log
from .clients import client
from .models import EmailEvent, Message, Suppression
from .settings import Settings
from .suppression import suppression_key
from .tokens import CLICK, OPEN, UNSUBSCRIBE, Claims, RefreshingKeyRing, load_keyring
from .tracking import UNSAFE_IN_URL

logger = Logger(child=True)

# Fetchers that open images or follow links without a person: mail privacy proxies, security scanners,
# link previewers. Apple Mail Privacy Protection fetches with the bare user agent "Mozilla/5.0".
_MACHINE_AGENTS = re.compile(
    r"GoogleImageProxy|YahooMailProxy|ggpht\.com|Barracuda|Mimecast|Proofpoint|Symantec|MessageLabs|Trend ?Micro|"
    r"Forcepoint|Cisco|Microsoft Office Protocol Discovery|bot\b|crawler|spider|preview|scanner|python-requests|"
    r"curl/|Go-http-client|HeadlessChrome",
    re.IGNORECASE,
)
# An open this soon after sending is a prefetch (or a scanner), not a person reading.
MACHINE_OPEN_SECONDS = 10
UNSUBSCRIBE_SCOPE = "marketing"


def is_machine(user_agent: str | None) -> bool:
    agent = (user_agent or "").strip()
    return agent in ("", "Mozilla/5.0") or bool(_MACHINE_AGENTS.search(agent))


@dataclass
class EngagementContext:
    settings: Settings
    dynamodb: Any = field(default_factory=lambda: client("dynamodb"))
    secrets: Any = field(default_factory=lambda: client("secretsmanager"))
    events: Any = field(default_factory=lambda: client("events"))
    clock: Callable[[], float] = time.time

    @cached_property
    def analytics(self) -> Analytics:
        return Analytics(self.settings, dynamodb=self.dynamodb, events=self.events, clock=self.clock)

    @cached_property
    def keys(self) -> RefreshingKeyRing:
        return RefreshingKeyRing(lambda: load_keyring(self.settings.signing_keys_secret, self.secrets))

    def verify(self, token: str, kind: str) -> Claims | None:
        claims = self.keys.verify(token or "")
        return claims if claims is not None and claims.kind == kind else None


def _message(message_id: str) -> Message | None:
    try:
        return Message.get(
            message_id,
            attributes_to_get=[
                "message_id",
                "campaign",
                "claimed_at",
                "sent_at",
                "recipient",
                "stream",
                "template",
                "tags",
                "counted",
            ],
        )
    except Message.DoesNotExist:
        return None


_COUNTED = ("opened", "machine_opened", "clicked", "machine_clicked", "unsubscribed")
# Recorded event type -> the user's application's event (machine opens and clicks are announced too, flagged).
_ANNOUNCED = {
    "opened": "email.opened",
    "machine_opened": "email.opened",
    "clicked": "email.clicked",
    "machine_clicked": "email.clicked",
    "unsubscribed": "email.unsubscribed",
}


def _record(ctx: EngagementContext, message: Message, event_type: str, detail: dict[str, Any]) -> None:
    """The event on the message (with its campaign), its count, then the announcement to the user's
    application."""
    now = ctx.clock()
    if message.campaign:
        detail = {**detail, "campaign": message.campaign}
    EmailEvent(
        message.message_id,
        f"{now:.3f}#{event_type}",
        type=event_type,
        at=now,
        detail=detail,
        expires_at=int(now + ctx.settings.event_ttl_days * 86400),
    ).save()
    if event_type in _COUNTED and message.stream:  # (a record that expired before an unsubscribe has no stream)
        try:
            _count(ctx, message, event_type, now, detail.get("url"))
        except Exception as error:  # noqa: BLE001 - the event is recorded and announced; only its count is lost
            logger.error(
                "could not count an engagement",
                extra={"message_id": message.message_id, "error": describe_for_log(error)},
            )
    if event_type in _ANNOUNCED:
        publish(
            ctx.events,
            ctx.settings.event_bus,
            [
                AppEvent(
                    _ANNOUNCED[event_type],
                    message.message_id,
                    now,
                    to=message.recipient,
                    template=message.template,
                    campaign=message.campaign,
                    tags=message.tags.as_dict() if message.tags else {},
                    detail=detail,
                )
            ],
            ctx.settings.app_events,
        )


def _count(ctx: EngagementContext, message: Message, event_type: str, now: float, url: str | None) -> None:
    """Count the open, click or unsubscribe (postline.analytics). A message's first open or click of a kind, and
    first click on a link, are marked in its record (``counted``) and count as unique too."""

    def first(marker: str) -> bool:
        return (
            marker not in (message.counted or ())
            and records.mark_counted(ctx.dynamodb, ctx.settings.messages_table, message.message_id, marker) is not None
        )

    unique = event_type != "unsubscribed" and first(event_type)
    on_link = (
        event_type == "clicked"
        and url is not None
        and message.stream == "marketing"  # links: marketing only
        and first(f"clicked#{link_digest(public_link(url))}")
    )
    ctx.analytics.record(
        [
            Fact(
                event_type,
                message.message_id,
                now,
                message.stream,
                message.template,
                message.campaign,
                first=unique,
                link=url,
                first_on_link=on_link,
            )
        ]
    )


def record_open(ctx: EngagementContext, token: str, user_agent: str | None) -> None:
    """Record an open for a valid token (a machine open when a proxy or scanner fetched it); never raises."""
    claims = ctx.verify(token, OPEN)
    if claims is None:
        return
    try:
        message = _message(claims.message_id)
        if message is None:
            return
        # Before SES's Send event has settled the message, the claim's time is when it went.
        sent_at = message.sent_at if message.sent_at is not None else message.claimed_at
        prefetch = sent_at is not None and ctx.clock() - float(sent_at) < MACHINE_OPEN_SECONDS
        machine = is_machine(user_agent) or prefetch
        _record(ctx, message, "machine_opened" if machine else "opened", {"machine": machine})
    except Exception as error:  # noqa: BLE001 - the pixel is served whatever happens to the tracking write
        logger.error(
            "could not record an open", extra={"message_id": claims.message_id, "error": describe_for_log(error)}
        )


def is_safe_target(target: str | None) -> bool:
    """An http(s) URL a ``Location`` header can carry: no control characters or spaces (tokens signed before
    ``tracking`` encoded them may still hold some)."""
    return bool(target) and target.lower().startswith(("https://", "http://")) and not UNSAFE_IN_URL.search(target)


def follow_click(ctx: EngagementContext, token: str, user_agent: str | None) -> str | None:
    """The signed target to redirect to (only http(s)), recording the click; None for an invalid token."""
    claims = ctx.verify(token, CLICK)
    if claims is None or not is_safe_target(claims.target):
        return None
    try:
        message = _message(claims.message_id)
        if message is not None:
            machine = is_machine(user_agent)
            _record(
                ctx,
                message,
                "machine_clicked" if machine else "clicked",
                {"url": claims.target[:1000], "machine": machine},
            )
    except Exception as error:  # noqa: BLE001 - the redirect works even when the click cannot be recorded
        logger.error(
            "could not record a click", extra={"message_id": claims.message_id, "error": describe_for_log(error)}
        )
    return claims.target


@dataclass(frozen=True)
class Subscription:
    """Who an unsubscribe link speaks for. ``message`` is the message's record, or only its id once the record
    has expired (then ``address`` is None and the recipient is known by its erased name alone)."""

    message: Message
    names: tuple[str, ...]  # what the recipient is suppressed under: its key first while known, its erased name
    unsubscribes: tuple[Suppression, ...]  # the recipient's marketing suppressions under any of its names

    @property
    def address(self) -> str | None:
        return self.message.recipient

    @property
    def suppressed(self) -> bool:
        return bool(self.unsubscribes)


def subscription(ctx: EngagementContext, token: str) -> Subscription | None:
    """The recipient behind an unsubscribe token and its marketing suppressions, or None for an invalid token
    (or an old link, without the recipient's erased name, whose message record has expired)."""
    claims = ctx.verify(token, UNSUBSCRIBE)
    if claims is None:
        return None
    message = _message(claims.message_id) or Message(claims.message_id)
    recipient = message.recipient
    names = tuple(
        dict.fromkeys(filter(None, [suppression_key(recipient) if recipient else None, recipient, claims.subscriber]))
    )
    if not names:
        return None
    found = Suppression.batch_get([(name, UNSUBSCRIBE_SCOPE) for name in names])
    return Subscription(message, names, tuple(sorted(found, key=lambda s: names.index(s.email))))


def unsubscribe(ctx: EngagementContext, token: str, how: str) -> Subscription | None:
    """Suppress the recipient for marketing mail (idempotent) and record it on the message and campaign. The
    suppression is kept under the address while the message's record knows it, under its erased name after."""
    found = subscription(ctx, token)
    if found is None:
        return None
    if found.suppressed:
        return found
    message = found.message
    detail = f"message {message.message_id}" + (f", campaign {message.campaign}" if message.campaign else "")
    if found.address is None:
        detail += " (the message's record had expired: the address is kept only as its keyed hash)"
    suppression = Suppression(
        found.names[0], UNSUBSCRIBE_SCOPE, reason="unsubscribe", suppressed_at=ctx.clock(), source=how, detail=detail
    )
    suppression.save()
    _record(ctx, message, "unsubscribed", {"how": how})
    return replace(found, unsubscribes=(suppression,))


def resubscribe(ctx: EngagementContext, token: str) -> Subscription | None:
    """Undo unsubscribes of this link's recipient, under any of its names (other suppressions, such as bounces or
    an operator's, stay)."""
    found = subscription(ctx, token)
    if found is None:
        return None
    kept = []
    for suppression in found.unsubscribes:
        try:
            suppression.delete(condition=Suppression.reason == "unsubscribe")
        except DeleteError:  # suppressed for another reason (a bounce, an operator): that stays
            kept.append(suppression)
    if found.suppressed and not kept:
        _record(ctx, found.message, "resubscribed", {})
    return replace(found, unsubscribes=tuple(kept))


def requested_action(body: str, content_type: str) -> str:
    """What a POST to an unsubscribe URL asks for: ``one-click`` (RFC 8058, form-encoded or multipart),
    ``resubscribe`` or ``unsubscribe`` (the page's buttons). Any other POST unsubscribes, as RFC 8058 expects."""
    from urllib.parse import parse_qs

    if "multipart/form-data" in content_type.lower():
        fields = dict(re.findall(r'name="([^"]+)"\r?\n(?:[^\r\n]+\r?\n)*\r?\n([^\r\n]*)', body))
    else:
        fields = {k: v[0] for k, v in parse_qs(body).items()}
    if fields.get("List-Unsubscribe") == "One-Click":
        return "one-click"
    return "resubscribe" if fields.get("action") == "resubscribe" else "unsubscribe"
