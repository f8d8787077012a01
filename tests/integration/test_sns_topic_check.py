"""ses_events applies SNS messages only from the stack's own SES events topic: a notification or subscription message
from any other topic (another account's topic of the same name included) is refused, moved to the events DLQ with
its reason, and changes nothing: no status, no event row, no suppression, no application event."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from postline.batch import REASON_ATTRIBUTE, QueueRecord
from postline.events import apply_events
from postline.models import EmailEvent, Message, Suppression
from postline_cli.local import resources

from .test_sns_route import bounce, send_one

ROOT = Path(__file__).resolve().parents[2]
OWN = resources.topic_arn(resources.SES_EVENTS_TOPIC)
FOREIGN = "arn:aws:sns:us-east-1:444455556666:postline-ses-events"


def envelope(document: dict, topic: str | None, kind: str = "Notification") -> str:
    wrapped = {"Type": kind, "MessageId": "11111111-2222-3333-4444-555555555555", "Timestamp": "2027-01-15T08:00:02Z",
               "Message": json.dumps(document)}
    if topic is not None:
        wrapped["TopicArn"] = topic
    return json.dumps(wrapped)


def apply(pipeline, *bodies: str):
    records = [QueueRecord(f"r{n}", body, resources.EVENTS_QUEUE, pipeline.clock(), 1) for n, body in enumerate(bodies)]
    return apply_events(records, pipeline.events_context()).outcomes


def dead_letters(pipeline) -> list[tuple[str, str]]:
    url = pipeline.queue_url(resources.EVENTS_QUEUE + "-dlq")
    found = pipeline.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return [(m["Body"], m["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]) for m in found.get("Messages", [])]


@pytest.mark.parametrize("topic", [FOREIGN, "arn:aws:sns:us-east-1:123456789012:someone-elses-topic", "", None])
def test_a_bounce_from_another_topic_is_refused_and_changes_nothing(pipeline, topic):
    message_id = send_one(pipeline, "victim@example.com", "foreign-bounce")
    pipeline.apply_send_events()
    pipeline.app_events()
    body = envelope(bounce(pipeline.ses.sends[0]), topic)

    outcomes = apply(pipeline, body)

    reason = f"refused: SNS Notification from the topic {topic or '(none)'}, not postline's SES events topic"
    assert [(o.result, o.reason) for o in outcomes.values()] == [("refused", reason)]
    assert dead_letters(pipeline) == [(body, reason)]
    assert Message.get(message_id).status == "sent"
    assert [e.type for e in EmailEvent.query(message_id) if e.type == "bounced"] == []
    assert list(Suppression.scan()) == []
    assert pipeline.app_events() == []


def test_the_same_bounce_from_the_stacks_topic_is_applied(pipeline):
    message_id = send_one(pipeline, "victim@example.com", "own-bounce")
    outcomes = apply(pipeline, envelope(bounce(pipeline.ses.sends[0]), OWN))
    assert [o.result for o in outcomes.values()] == ["bounced"]
    assert Message.get(message_id).status == "bounced"
    assert Suppression.get("victim@example.com", "all").reason == "hard_bounce"
    assert dead_letters(pipeline) == []


def test_subscription_messages_are_ignored_from_the_stacks_topic_and_refused_from_any_other(pipeline):
    own = json.dumps({"Type": "SubscriptionConfirmation", "TopicArn": OWN, "Message": "You have chosen to subscribe"})
    foreign = json.dumps({"Type": "SubscriptionConfirmation", "TopicArn": FOREIGN,
                          "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"})
    outcomes = apply(pipeline, own, foreign)
    assert outcomes["r0"].result == "ignored"
    reason = f"refused: SNS SubscriptionConfirmation from the topic {FOREIGN}, not postline's SES events topic"
    assert (outcomes["r1"].result, outcomes["r1"].reason) == ("refused", reason)
    assert dead_letters(pipeline) == [(foreign, reason)]


def test_the_fixtures_foreign_envelope_is_refused(pipeline):
    body = (ROOT / "tests" / "fixtures" / "ses" / "sns-envelope-foreign-topic.json").read_text()
    assert [o.result for o in apply(pipeline, body).values()] == ["refused"]


def test_without_a_topic_the_eventbridge_route_refuses_every_sns_message(pipeline):
    """A stack on the EventBridge route has no SES events topic: any SNS envelope on its queue is not SES's."""
    pipeline.settings = pipeline.settings.model_copy(update={"ses_events_topic_arn": None})
    message_id = send_one(pipeline, "victim@example.com", "eb-bounce")
    outcomes = apply(pipeline, envelope(bounce(pipeline.ses.sends[0]), OWN))
    assert [o.result for o in outcomes.values()] == ["refused"]
    assert Message.get(message_id).status != "bounced"
