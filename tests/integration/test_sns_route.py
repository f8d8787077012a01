"""SES's events through Amazon SNS (the default route): published on the topic postline-ses-events, delivered by
SNS to the events queue in its envelope, applied by ses_events. Both shapes SES publishes there: a configuration
set's event records (with postline's message tags) and the identity's feedback notifications (no tags: postline's
headers among the original ones)."""
from __future__ import annotations

import json
from pathlib import Path

from postline.contract import message_id_for
from postline.events import apply_events
from postline.models import EmailEvent, Message, Suppression
from postline_cli.local import resources
from postline_cli.local.ses_simulator import identity_notification, publish_to_topic

ROOT = Path(__file__).resolve().parents[2]


def example(template: str) -> dict:
    return json.loads((ROOT / "templates" / template / "example.json").read_text())


def send_one(pipeline, to: str, key: str, template: str = "welcome", stream: str = "transactional") -> str:
    pipeline.enqueue(stream, {"template": template, "to": to, "data": example(template), "id": key})
    pipeline.run_render()
    pipeline.run_send()
    return message_id_for(key)


def record_of(send: dict, kind: str, **detail) -> dict:
    """The configuration set's event record SES publishes for ``send`` (tags included, as SES keeps them)."""
    tags = {name: [value] for name, value in send["tags"].items()}
    tags["ses:configuration-set"] = [send["ConfigurationSetName"]]
    mail = {"timestamp": "2027-01-15T08:00:00.000Z", "messageId": send["MessageId"], "source": send["FromEmailAddress"],
            "destination": send["Destination"]["ToAddresses"], "tags": tags}
    return {"eventType": kind, "mail": mail, **detail}


def headers_of(send: dict) -> list[dict[str, str]]:
    from postline_cli.local.aws_endpoint import header_list

    return header_list(send["Content"]["Raw"]["Data"])


def bounce(send: dict) -> dict:
    return record_of(send, "Bounce", bounce={
        "bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2027-01-15T08:00:01.000Z",
        "feedbackId": f"fb-{send['MessageId']}",
        "bouncedRecipients": [{"emailAddress": send["Destination"]["ToAddresses"][0], "status": "5.1.1"}]})


def through_sns(pipeline, *documents: dict):
    """Publish on the topic as SES does, then apply what SNS delivered to the events queue (with Lambda's
    event source mapping's shapes and deletes)."""
    assert publish_to_topic(pipeline.session.client("sns"), list(documents)) == []
    results = []
    while records := pipeline.receive(resources.EVENTS_QUEUE, visibility=0):
        result = apply_events(records, pipeline.events_context())
        pipeline.settle(resources.EVENTS_QUEUE, records, result)
        results.append(result)
    return results


def test_an_event_published_on_the_topic_reaches_its_message_in_snss_envelope(pipeline):
    message_id = send_one(pipeline, "ada@example.com", "sns-1")
    send = pipeline.ses.sends[0]
    results = through_sns(pipeline, record_of(send, "Delivery", delivery={
        "timestamp": "2027-01-15T08:00:02.000Z", "recipients": ["ada@example.com"], "smtpResponse": "250 ok"}))
    assert [o.result for r in results for o in r.outcomes.values()] == ["delivered"]
    assert Message.get(message_id).status == "delivered"


def test_the_queue_gets_snss_envelope(pipeline):
    send_one(pipeline, "ada@example.com", "sns-envelope")
    publish_to_topic(pipeline.session.client("sns"), [record_of(pipeline.ses.sends[0], "Delivery", delivery={})])
    (record,) = pipeline.receive(resources.EVENTS_QUEUE, visibility=0)
    envelope = json.loads(record.body)
    assert envelope["Type"] == "Notification" and envelope["TopicArn"].endswith(":postline-ses-events")
    assert json.loads(envelope["Message"])["eventType"] == "Delivery"


def test_an_identity_notification_finds_its_message_by_postlines_headers(pipeline):
    """Identity notifications carry no message tags: the email's own headers (the identity includes them) name
    postline's message id and attempt."""
    message_id = send_one(pipeline, "gone@example.com", "sns-identity")
    notification = identity_notification(bounce(pipeline.ses.sends[0]), headers_of(pipeline.ses.sends[0]))
    assert "tags" not in notification["mail"] and notification["notificationType"] == "Bounce"
    through_sns(pipeline, notification)
    assert Message.get(message_id).status == "bounced"
    assert Suppression.get("gone@example.com", "all").reason == "hard_bounce"


def test_the_same_bounce_by_both_routes_is_applied_once(pipeline):
    pipeline.settings = pipeline.settings.model_copy(update={"app_events": ("email.bounced",)})
    message_id = send_one(pipeline, "twice@example.com", "sns-twice")
    send = pipeline.ses.sends[0]
    record = bounce(send)
    through_sns(pipeline, record, identity_notification(record, headers_of(send)))
    assert Message.get(message_id).status == "bounced"
    assert [e.type for e in EmailEvent.query(message_id) if e.type == "bounced"] == ["bounced"]
    assert [e["detail-type"] for e in pipeline.app_events()] == ["email.bounced"]
    assert len([s for s in Suppression.query("twice@example.com") if s.scope == "all"]) == 1


def test_a_notification_about_mail_postline_did_not_send_is_ignored(pipeline):
    """Another application sending from the same identity: its bounce comes with no postline header."""
    send_one(pipeline, "ours@example.com", "sns-ours")
    send = {**pipeline.ses.sends[0], "MessageId": "someone-elses", "Destination": {"ToAddresses": ["x@example.com"]}}
    foreign = identity_notification(bounce(send), [{"name": "From", "value": "other@example.com"}])
    results = through_sns(pipeline, foreign)
    assert [o.result for r in results for o in r.outcomes.values()] == ["ignored"]
    assert list(Suppression.query("x@example.com")) == []


def test_snss_subscription_messages_are_noted_not_dead_lettered(pipeline):
    for kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        body = json.dumps({"Type": kind, "MessageId": "x", "Token": "secret-token", "SubscribeURL": "https://sns",
                           "TopicArn": resources.topic_arn(resources.SES_EVENTS_TOPIC), "Message": "You have chosen"})
        pipeline.sqs.send_message(QueueUrl=pipeline.queue_url(resources.EVENTS_QUEUE), MessageBody=body)
    records = pipeline.receive(resources.EVENTS_QUEUE, visibility=0)
    result = apply_events(records, pipeline.events_context())
    assert {o.result for o in result.outcomes.values()} == {"ignored"} and not result.failed
    dlq = pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url(f"{resources.EVENTS_QUEUE}-dlq"))
    assert dlq.get("Messages", []) == []


def test_a_delivery_delay_settles_a_claim_left_open(pipeline):
    """The SNS route publishes no Send events: when an attempt died after SES took the email, any later event
    settles its claim, a delivery delay too (SES has the email)."""
    from postline.send import send_batch

    pipeline.enqueue("transactional", {"template": "welcome", "to": "slow@example.com", "data": example("welcome"),
                                       "id": "sns-delay"})
    pipeline.run_render()
    jobs = pipeline.receive("postline-send-transactional", visibility=0)
    pipeline.crash_after_ses(jobs)
    message_id = message_id_for("sns-delay")
    assert Message.get(message_id).status == "sending"
    through_sns(pipeline, record_of(pipeline.ses.sends[0], "DeliveryDelay", deliveryDelay={
        "delayType": "TransientCommunicationFailure", "timestamp": "2027-01-15T08:05:00.000Z",
        "delayedRecipients": [{"emailAddress": "slow@example.com"}]}))
    assert Message.get(message_id).status == "sent"
    assert not send_batch(jobs, pipeline.send_context()).failed and pipeline.ses.count(message_id) == 1
