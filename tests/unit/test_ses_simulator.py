"""The local SES simulator publishes what SES would, and postline's event parser understands every one of them."""
from __future__ import annotations

import json

import pytest

from postline.events import SesEvent
from postline.ses import MESSAGE_ID_TAG
from postline_cli.local.ses_simulator import DETAIL_TYPES, bus_entry, events_for

SENT_AT = 1_718_000_000.25
SES_ID = "0100018f-local-0000-0000-000000000001"


def entry(recipient: str, **overrides) -> dict:
    """One line of the local endpoint's send log."""
    value = {
        "timestamp": SENT_AT,
        "ses_message_id": SES_ID,
        "source": "Lumen <hello@mail.example.com>",
        "destination": [recipient],
        "configuration_set": "postline-transactional",
        "tags": {MESSAGE_ID_TAG: "mabc123", "postline_stream": "transactional", "postline_template": "welcome"},
    }
    value.update(overrides)
    return value


def types(events: list[dict]) -> list[str]:
    return [e["eventType"] for e in events]


def sns_envelope(event: dict) -> str:
    return json.dumps({"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
                       "TopicArn": "arn:aws:sns:us-east-1:123456789012:postline-ses-events",
                       "Message": json.dumps(event), "Timestamp": "2024-06-10T06:13:20.500Z",
                       "SignatureVersion": "1"})


def test_normal_address_is_sent_and_delivered():
    events = events_for(entry("ada@example.com"))
    assert types(events) == ["Send", "Delivery"]
    assert events[1]["delivery"]["recipients"] == ["ada@example.com"]


@pytest.mark.parametrize("recipient", ["bounce@simulator.amazonses.com", "bounce+label@simulator.amazonses.com",
                                       "Bounce@Simulator.AmazonSES.com"])
def test_bounce_simulator_gives_a_permanent_bounce_for_the_recipient(recipient):
    events = events_for(entry(recipient))
    assert types(events) == ["Send", "Bounce"]
    bounce = events[1]["bounce"]
    assert bounce["bounceType"] == "Permanent"
    assert [r["emailAddress"] for r in bounce["bouncedRecipients"]] == [recipient]


def test_suppression_list_simulator_bounces_as_on_the_account_suppression_list():
    events = events_for(entry("suppressionlist@simulator.amazonses.com"))
    assert types(events) == ["Send", "Bounce"]
    assert events[1]["bounce"]["bounceSubType"] == "OnAccountSuppressionList"


def test_complaint_simulator_is_delivered_then_complained_about():
    events = events_for(entry("complaint@simulator.amazonses.com"))
    assert types(events) == ["Send", "Delivery", "Complaint"]
    complaint = events[2]["complaint"]
    assert [r["emailAddress"] for r in complaint["complainedRecipients"]] == ["complaint@simulator.amazonses.com"]


def test_other_simulator_addresses_are_delivered():
    assert types(events_for(entry("success@simulator.amazonses.com"))) == ["Send", "Delivery"]
    assert types(events_for(entry("ooto@simulator.amazonses.com"))) == ["Send", "Delivery"]


def test_bounce_lookalike_outside_the_simulator_is_delivered():
    assert types(events_for(entry("bounce@example.com"))) == ["Send", "Delivery"]


def test_each_recipient_gets_its_own_outcome():
    events = events_for(entry("", destination=["ada@example.com", "bounce@simulator.amazonses.com"]))
    assert types(events) == ["Send", "Delivery", "Bounce"]


def test_mail_carries_tags_as_lists_and_the_configuration_set():
    events = events_for(entry("ada@example.com"))
    tags = events[0]["mail"]["tags"]
    assert tags[MESSAGE_ID_TAG] == ["mabc123"]
    assert tags["postline_template"] == ["welcome"]
    assert tags["ses:configuration-set"] == ["postline-transactional"]
    for event in events:
        assert event["mail"]["messageId"] == SES_ID
        assert event["mail"]["destination"] == ["ada@example.com"]


def test_timestamps_are_iso_utc_and_outcomes_follow_the_send():
    events = events_for(entry("complaint@simulator.amazonses.com"))
    assert events[0]["mail"]["timestamp"] == "2024-06-10T06:13:20.250Z"
    assert events[1]["delivery"]["timestamp"] == "2024-06-10T06:13:20.750Z"
    assert events[2]["complaint"]["timestamp"] == "2024-06-10T06:13:21.250Z"


def test_events_go_to_the_default_bus_as_ses_puts_them_there():
    for event in events_for(entry("complaint@simulator.amazonses.com")):
        put = bus_entry(event)
        assert (put["EventBusName"], put["Source"]) == ("default", "aws.ses")
        assert put["DetailType"] == {"Send": "Email Sent", "Delivery": "Email Delivered",
                                     "Complaint": "Email Complaint Received"}[event["eventType"]]
        assert put["Resources"] == ["arn:aws:ses:us-east-1:123456789012:configuration-set/postline-transactional"]
        assert json.loads(put["Detail"]) == event


def eventbridge_event(event: dict) -> str:
    """The queue's message body: the whole event, as an EventBridge rule's SQS target delivers it."""
    put = bus_entry(event)
    return json.dumps({"version": "0", "id": "e1", "detail-type": put["DetailType"], "source": put["Source"],
                       "account": "123456789012", "time": "2024-06-10T06:13:20Z", "region": "us-east-1",
                       "resources": put["Resources"], "detail": json.loads(put["Detail"])})


def test_every_event_type_has_its_eventbridge_detail_type():
    assert set(DETAIL_TYPES) >= {"Send", "Delivery", "Bounce", "Complaint", "Reject", "DeliveryDelay",
                                 "Rendering Failure", "Subscription"}


# --- parsed by postline ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("recipient, expected", [
    ("ada@example.com", ["Send", "Delivery"]),
    ("bounce@simulator.amazonses.com", ["Send", "Bounce"]),
    ("complaint@simulator.amazonses.com", ["Send", "Delivery", "Complaint"]),
])
@pytest.mark.parametrize("wrap", [json.dumps, sns_envelope, eventbridge_event], ids=["raw", "sns", "eventbridge"])
def test_postline_parses_every_simulated_event(recipient, expected, wrap):
    parsed = [SesEvent.from_body(wrap(event)) for event in events_for(entry(recipient))]
    assert [e.type for e in parsed] == expected
    assert all(e.message_id == "mabc123" for e in parsed)
    assert all(e.ses_message_id == SES_ID for e in parsed)
    assert parsed[0].at == pytest.approx(SENT_AT)
    assert all(later.at >= parsed[0].at for later in parsed[1:])


def test_parsed_bounce_keeps_type_and_recipients():
    bounce = SesEvent.from_body(json.dumps(events_for(entry("bounce@simulator.amazonses.com"))[1]))
    assert bounce.detail["bounceType"] == "Permanent"
    assert bounce.detail["bouncedRecipients"][0]["emailAddress"] == "bounce@simulator.amazonses.com"
    assert bounce.at == pytest.approx(SENT_AT + 0.5)


def test_parsed_complaint_keeps_the_feedback_type():
    complaint = SesEvent.from_body(sns_envelope(events_for(entry("complaint@simulator.amazonses.com"))[2]))
    assert complaint.type == "Complaint"
    assert complaint.detail["complaintFeedbackType"] == "abuse"


def test_event_without_postlines_tag_has_no_message_id():
    event = events_for(entry("ada@example.com", tags={}))[1]
    parsed = SesEvent.from_body(json.dumps(event))
    assert parsed.message_id is None and parsed.ses_message_id == SES_ID


def test_identity_notification_format_is_understood():
    notification = {"notificationType": "Bounce",
                    "mail": {"messageId": SES_ID, "timestamp": "2024-06-10T06:13:20.250Z"},
                    "bounce": {"bounceType": "Transient", "bouncedRecipients": [{"emailAddress": "ada@example.com"}],
                               "timestamp": "2024-06-10T06:13:22.000Z"}}
    parsed = SesEvent.from_body(sns_envelope(notification))
    assert (parsed.type, parsed.ses_message_id, parsed.message_id) == ("Bounce", SES_ID, None)
    assert parsed.detail["bounceType"] == "Transient"


@pytest.mark.parametrize("body", ['{"eventType": "Send"}', '{"mail": {"messageId": "x"}}',
                                  '{"eventType": "Send", "mail": "x"}'])
def test_non_ses_bodies_are_refused(body):
    with pytest.raises(ValueError, match="not an SES event"):
        SesEvent.from_body(body)


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_snss_own_subscription_messages_are_told_apart_from_ses_events(kind):
    from postline.events import SnsControlMessage

    with pytest.raises(SnsControlMessage) as caught:
        SesEvent.from_body(json.dumps({"Type": kind, "TopicArn": "arn:aws:sns:us-east-1:1:postline-ses-events"}))
    assert caught.value.kind == kind and caught.value.topic.endswith(":postline-ses-events")


def test_an_identity_notification_names_postlines_message_by_its_headers():
    notification = {"notificationType": "Complaint", "complaint": {"complainedRecipients": [
        {"emailAddress": "ada@example.com"}], "timestamp": "2024-06-10T06:13:22.000Z"},
        "mail": {"messageId": SES_ID, "timestamp": "2024-06-10T06:13:20.000Z", "destination": ["ada@example.com"],
                 "headers": [{"name": "From", "value": "a@b.c"}, {"name": "x-postline-message-id", "value": "mabc"},
                             {"name": "X-Postline-Retry", "value": "2"}]}}
    parsed = SesEvent.from_body(sns_envelope(notification))
    assert (parsed.type, parsed.message_id, parsed.retry) == ("Complaint", "mabc", 2)
