"""An SES event keeps the topic of the SNS envelope it came in, which ses_events checks (postline.events)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from postline.events import SesEvent, SnsControlMessage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ses"
OWN = "arn:aws:sns:us-east-1:123456789012:postline-ses-events"


def load(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_the_envelopes_topic_is_kept_and_the_event_is_the_same():
    own, foreign = SesEvent.from_body(load("sns-envelope-delivery.json")), SesEvent.from_body(
        load("sns-envelope-foreign-topic.json"))
    assert own.sns_topic == OWN
    assert foreign.sns_topic == "arn:aws:sns:us-east-1:444455556666:postline-ses-events"  # same name, another account
    assert SesEvent.from_body(load("delivery.json")).sns_topic is None  # no envelope, no topic


def test_an_envelope_without_a_topic_has_an_empty_one_not_none():
    """None means "no envelope": an envelope that names no topic must not pass for one."""
    envelope = json.loads(load("sns-envelope-delivery.json"))
    del envelope["TopicArn"]
    assert SesEvent.from_body(json.dumps(envelope)).sns_topic == ""


def test_a_subscription_message_names_its_topic():
    with pytest.raises(SnsControlMessage) as raised:
        SesEvent.from_body(json.dumps({"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:eu-west-1:1:x"}))
    assert (raised.value.kind, raised.value.topic) == ("SubscriptionConfirmation", "arn:aws:sns:eu-west-1:1:x")
