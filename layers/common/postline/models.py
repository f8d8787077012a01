"""The DynamoDB tables as PynamoDB models.

Table names are bound once from the settings (``bind_tables``); the hot paths serialise these models and write
them with batched low-level calls, the operator tools use the models directly. Times are epoch seconds (numbers
are smaller than ISO strings and write units are per KB).
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.models import Model

from .settings import Settings

# Message statuses. The pipeline moves a message QUEUED -> RENDERED -> SENDING (claimed) -> SENT, or ends it
# as SUPPRESSED / REJECTED / FAILED / CANCELLED (its campaign was cancelled before it was sent); SES events then
# move a sent message on to DELIVERED, BOUNCED or COMPLAINED (``events._REPLACES`` says which status may replace
# which). UNKNOWN: parked, nobody knows whether SES took it; a later SES event or an operator (``postline
# resolve``) settles it.
QUEUED = "queued"
RENDERED = "rendered"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
BOUNCED = "bounced"
COMPLAINED = "complained"
SUPPRESSED = "suppressed"
REJECTED = "rejected"
FAILED = "failed"
CANCELLED = "cancelled"
UNKNOWN = "unknown"

SUPPRESSION_SCOPE_ALL = "all"


class Message(Model):
    class Meta:
        table_name = "postline-messages"
        billing_mode = "PAY_PER_REQUEST"

    message_id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    recipient = UnicodeAttribute(null=True)
    template = UnicodeAttribute(null=True)
    template_version = NumberAttribute(null=True)
    stream = UnicodeAttribute(null=True)
    campaign = UnicodeAttribute(null=True)
    tags: MapAttribute = MapAttribute(null=True)
    ses_message_id = UnicodeAttribute(null=True)  # shown by `postline status`; SES events find the record by tag
    transport = UnicodeAttribute(null=True)  # "smtp" when a relay sent it (ses_message_id is then its queue id)
    queued_at = NumberAttribute(null=True)
    rendered_at = NumberAttribute(null=True)
    claimed_at = NumberAttribute(null=True)
    sent_at = NumberAttribute(null=True)
    delivered_at = NumberAttribute(null=True)
    delivery: MapAttribute = MapAttribute(null=True)  # the Delivery event's details (SMTP response, processing time)
    finished_at = NumberAttribute(null=True)  # when it became suppressed / rejected / failed
    updated_at = NumberAttribute(null=True)
    attempts = NumberAttribute(null=True)
    retry = NumberAttribute(null=True)  # which soft-bounce retry this attempt is (none for the first)
    # The repeats of this message the application sent that were ignored: the SQS message ids they came in (a set,
    # so that SQS delivering one repeat twice counts it once). Records written before it hold a count instead.
    repeats = UnicodeSetAttribute(null=True)
    duplicates = NumberAttribute(null=True)  # (the count of repeats, as records kept it before ``repeats``)
    last_duplicate_at = NumberAttribute(null=True)
    rendered_by = UnicodeAttribute(null=True)  # the SQS message render recorded it from: only its redelivery may again
    claim = UnicodeAttribute(null=True)  # the open claim's token: only the attempt holding it records its outcome
    awaiting_handoff = BooleanAttribute(null=True)  # set by a claim until its email goes to SES (postline.send)
    retry_requested = NumberAttribute(null=True)  # the soft-bounce retry queued for it: each is queued once
    # What of it the counters have counted (postline.analytics): "delivered", "opened", "clicked#<link>", ...
    counted = UnicodeSetAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # the table's TTL attribute (settings.message_ttl_days after queueing)

    @property
    def repeats_ignored(self) -> int:
        """How many times the application sent this message again and postline ignored it. The SQS message the
        record was rendered from is the message itself, never a repeat of it (SQS can hand one message out twice in
        one batch)."""
        return len(self.repeats - {self.rendered_by}) if self.repeats else int(self.duplicates or 0)


class EmailEvent(Model):
    """One thing that happened to a message after it was accepted: sort key ``<time>#<type>``."""

    class Meta:
        table_name = "postline-email-events"
        billing_mode = "PAY_PER_REQUEST"

    message_id = UnicodeAttribute(hash_key=True)
    time_type = UnicodeAttribute(range_key=True)
    type = UnicodeAttribute()
    at = NumberAttribute()
    detail = JSONAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # the table's TTL attribute


class Suppression(Model):
    class Meta:
        table_name = "postline-email-suppressions"
        billing_mode = "PAY_PER_REQUEST"

    email = UnicodeAttribute(hash_key=True)
    scope = UnicodeAttribute(range_key=True)  # "all" or a stream name
    reason = UnicodeAttribute()
    suppressed_at = NumberAttribute()
    source = UnicodeAttribute(null=True)
    detail = UnicodeAttribute(null=True)


ACTIVE_POINTER_VERSION = 0


class Template(Model):
    """An immutable template version (version >= 1), or the ``active`` pointer (version 0)."""

    class Meta:
        table_name = "postline-templates"
        billing_mode = "PAY_PER_REQUEST"

    name = UnicodeAttribute(hash_key=True)
    version = NumberAttribute(range_key=True)
    active_version = NumberAttribute(null=True)  # only on the pointer
    latest_version = NumberAttribute(null=True)  # only on the pointer
    stream = UnicodeAttribute(null=True)
    subject = UnicodeAttribute(null=True)
    html = UnicodeAttribute(null=True)
    text = UnicodeAttribute(null=True)
    from_address = UnicodeAttribute(null=True)
    locale = UnicodeAttribute(null=True)  # the default variant's (subject, html, text above); none: "en"
    # The other variants by locale tag: {"de": {"subject": ..., "html": ..., "text": ...}, "de-AT": {...}}
    locales = JSONAttribute(null=True)
    description = UnicodeAttribute(null=True)
    required = ListAttribute(of=UnicodeAttribute, null=True)
    example_data = JSONAttribute(null=True)
    author = UnicodeAttribute(null=True)
    created_at = NumberAttribute(null=True)
    content_hash = UnicodeAttribute(null=True)


ALL_MODELS = (Message, EmailEvent, Suppression, Template)


def bind_table_names(messages: str, events: str, suppressions: str, templates: str) -> None:
    """Point the models at the named tables."""
    for model, name in ((Message, messages), (EmailEvent, events), (Suppression, suppressions), (Template, templates)):
        if model.Meta.table_name != name:
            model.Meta.table_name = name
            model._connection = None


def bind_tables(settings: Settings) -> None:
    """Point the models at the tables named in the settings (once per container)."""
    bind_table_names(
        settings.messages_table, settings.events_table, settings.suppressions_table, settings.templates_table
    )
