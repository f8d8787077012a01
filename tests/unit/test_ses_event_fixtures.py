"""Every SES event type, in both formats SES uses, read from fixtures shaped as SES documents them."""
import json
from pathlib import Path

import pytest

from postline.events import SesEvent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ses"
SES_ID = "010001877ad7b42d-example-ses-message-id-000000"


def load(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize("name, kind, detail_key", [
    ("send.json", "Send", None),
    ("delivery.json", "Delivery", "smtpResponse"),
    ("bounce-permanent-two-recipients.json", "Bounce", "bouncedRecipients"),
    ("bounce-transient.json", "Bounce", "bouncedRecipients"),
    ("complaint-two-recipients.json", "Complaint", "complainedRecipients"),
    ("reject.json", "Reject", "reason"),
    ("delivery-delay.json", "DeliveryDelay", "delayedRecipients"),
    ("rendering-failure.json", "Rendering Failure", "errorMessage"),
    ("open.json", "Open", "userAgent"),
    ("click.json", "Click", "link"),
    ("subscription.json", "Subscription", "contactList"),
])
def test_event_publishing_records(name, kind, detail_key):
    event = SesEvent.from_body(load(name))
    assert (event.type, event.ses_message_id, event.message_id) == (kind, SES_ID, "mexamplemessageidexample0")
    if detail_key:
        assert detail_key in event.detail
    assert event.tags["postline_template"] == "welcome" and "ses:configuration-set" not in event.tags


@pytest.mark.parametrize("name, kind", [("notification-bounce.json", "Bounce"),
                                        ("notification-complaint.json", "Complaint"),
                                        ("notification-delivery.json", "Delivery")])
def test_identity_notifications_have_no_tags_and_are_matched_later(name, kind):
    event = SesEvent.from_body(load(name))
    assert (event.type, event.ses_message_id, event.message_id) == (kind, SES_ID, None)


def test_the_sns_envelope_is_unwrapped():
    assert SesEvent.from_body(load("sns-envelope-delivery.json")) == SesEvent.from_body(load("delivery.json"))


def test_the_eventbridge_event_is_unwrapped():
    """What the queue holds in AWS: SES publishes to the default bus, the rule sends the whole event."""
    assert SesEvent.from_body(load("eventbridge-delivery.json")) == SesEvent.from_body(load("delivery.json"))


def test_unknown_fields_are_ignored():
    document = json.loads(load("delivery.json")) | {"somethingNew": {"x": 1}}
    document["delivery"]["newField"] = True
    assert SesEvent.from_body(json.dumps(document)).type == "Delivery"


def test_app_events_carry_the_outcome_and_the_callers_tags():
    bounced = SesEvent.from_body(load("bounce-permanent-two-recipients.json")).app_event("m1")
    assert (bounced.name, bounced.template, bounced.campaign, bounced.tags) == (
        "email.bounced", "welcome", "spring", {"plan": "pro"})
    assert SesEvent.from_body(load("bounce-transient.json")).app_event("m1") is None
    assert SesEvent.from_body(load("rendering-failure.json")).app_event("m1").name == "email.failed"
