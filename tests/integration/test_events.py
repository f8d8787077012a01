"""SES events applied to messages: forward-only status, idempotent repeats, suppressions."""
from __future__ import annotations

import json
from pathlib import Path

from botocore.exceptions import ClientError

from postline.batch import QueueRecord
from postline.contract import message_id_for
from postline.events import EventsContext, apply_events
from postline.models import EmailEvent, Message, Suppression

ROOT = Path(__file__).resolve().parents[2]


def send_one(pipeline, address: str, key: str) -> str:
    data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
    pipeline.enqueue("transactional", {"template": "welcome", "to": address, "data": data, "id": key})
    pipeline.drain()
    return message_id_for(key)


def send_before_any_event(pipeline, address: str, key: str, crash_before_sent: bool = False) -> str:
    """Render and send one email, leaving every SES event (its Send event too) to the test. With
    ``crash_before_sent`` the send stage dies after SES took the email and before it recorded `sent`: the window
    only SES's Send event settles."""
    data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
    pipeline.enqueue("transactional", {"template": "welcome", "to": address, "data": data, "id": key})
    pipeline.run_render()
    ctx = pipeline.send_context()
    if crash_before_sent:
        real = ctx.dynamodb

        class LosesTheSentWrite:
            def __getattr__(self, name):
                if name == "update_item":
                    def lost(**kwargs):
                        if {"S": "sent"} in kwargs.get("ExpressionAttributeValues", {}).values():
                            raise ClientError({"Error": {"Code": "RequestTimeout", "Message": "simulated"}}, name)
                        return real.update_item(**kwargs)
                    return lost
                return getattr(real, name)

        ctx.dynamodb = LosesTheSentWrite()
    assert not any(result.failed for result in pipeline.run_send(ctx))
    return message_id_for(key)


def test_a_delivery_after_a_bounce_never_unbounces(pipeline):
    message_id = send_one(pipeline, "bounce@simulator.amazonses.com", "b1")
    pipeline.publish_ses_events(only=("Send", "Bounce"))
    assert Message.get(message_id).status == "bounced"
    send = pipeline.ses.sends[0]
    late = {"eventType": "Delivery", "mail": {"messageId": send["MessageId"], "timestamp": "2026-01-01T00:00:00Z",
                                              "tags": {"postline_message_id": [message_id]}},
            "delivery": {"timestamp": "2026-01-01T00:00:09.000Z",
                         "recipients": [send["Destination"]["ToAddresses"][0]]}}
    for event in ({"eventType": "Send", "mail": late["mail"], "send": {}}, late):
        apply_events([QueueRecord("late", json.dumps(event), "postline-ses-events", 0, 1)],
                     pipeline.events_context())
    assert Message.get(message_id).status == "bounced"
    suppression = Suppression.get("bounce@simulator.amazonses.com", "all")
    assert suppression.reason == "hard_bounce" and "550" in suppression.detail


def test_repeated_events_change_nothing(pipeline):
    message_id = send_one(pipeline, "complaint@simulator.amazonses.com", "c1")
    for _ in range(3):
        result = pipeline.publish_ses_events()
        assert not result.failed
    assert Message.get(message_id).status == "complained"
    types = sorted(e.type for e in EmailEvent.query(message_id) if e.type != "request")
    assert types == ["complained", "delivered"]
    assert Suppression.get("complaint@simulator.amazonses.com", "all").reason == "complaint"


def test_a_malformed_event_is_left_for_the_dlq_and_does_not_block_its_batch(pipeline):
    message_id = send_one(pipeline, "fine@example.com", "ok1")
    send = pipeline.ses.sends[0]
    good = {"eventType": "Delivery", "mail": {"messageId": send["MessageId"], "timestamp": "2026-01-01T00:00:00Z",
                                              "tags": {"postline_message_id": [message_id]}},
            "delivery": {"timestamp": "2026-01-01T00:00:01.000Z", "recipients": ["fine@example.com"]}}
    sns_wrapped = json.dumps({"Type": "Notification", "TopicArn": pipeline.settings.ses_events_topic_arn,
                              "Message": json.dumps(good)})
    records = [QueueRecord("bad", "{garbage", "postline-ses-events", 0, 1),
               QueueRecord("good", sns_wrapped, "postline-ses-events", 0, 1)]
    result = apply_events(records, pipeline.events_context())
    assert result.failed == set()  # nothing to retry: it went to the DLQ at once, with the reason
    assert Message.get(message_id).status == "delivered"
    dlq = pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url("postline-ses-events-dlq"),
                                       MessageAttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in dlq] == ["{garbage"]
    assert "malformed SES event" in dlq[0]["MessageAttributes"]["postline_reason"]["StringValue"]


def test_an_event_without_postlines_tag_is_ignored_and_changes_nothing(pipeline):
    message_id = send_one(pipeline, "untagged@example.com", "u1")
    send = pipeline.ses.sends[0]
    notification = {"notificationType": "Bounce", "mail": {"messageId": send["MessageId"],
                                                           "timestamp": "2026-01-01T00:00:00Z"},
                    "bounce": {"bounceType": "Permanent", "timestamp": "2026-01-01T00:00:01.000Z",
                               "bouncedRecipients": [{"emailAddress": "untagged@example.com"}]}}
    records = [QueueRecord("n", json.dumps(notification), "postline-ses-events", 0, 1)]
    result = apply_events(records, pipeline.events_context())
    assert result.failed == set()
    assert result.outcomes["n"].result == "ignored" and "not sent by postline" in result.outcomes["n"].reason
    assert Message.get(message_id).status == "sent"
    assert list(Suppression.query("untagged@example.com")) == []


def test_the_application_receives_normalised_events_once_per_outcome(pipeline):
    data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
    pipeline.enqueue("transactional", {"template": "welcome", "to": "bounce@simulator.amazonses.com", "data": data,
                                       "id": "app-1", "campaign": "spring", "tags": {"plan": "pro"}})
    pipeline.enqueue("transactional", {"template": "welcome", "to": "fine@example.com", "data": data, "id": "app-2"})
    pipeline.drain()
    pipeline.publish_ses_events()
    pipeline.publish_ses_events()  # SES/SNS delivered everything twice: the batch dedupes within itself only
    received = pipeline.app_events()
    assert {e["source"] for e in received} == {"postline"}
    by_message = {}
    for event in received:
        by_message.setdefault(event["detail"]["message_id"], set()).add(event["detail-type"])
    assert by_message[message_id_for("app-1")] == {"email.sent", "email.bounced"}
    assert by_message[message_id_for("app-2")] == {"email.sent", "email.delivered"}
    bounced = next(e["detail"] for e in received if e["detail-type"] == "email.bounced")
    assert bounced["to"] == "bounce@simulator.amazonses.com"
    assert (bounced["template"], bounced["campaign"], bounced["tags"]) == ("welcome", "spring", {"plan": "pro"})
    assert bounced["detail"]["bounceType"] == "Permanent" and bounced["time"].endswith("Z")


def test_the_application_gets_its_own_campaign_and_tags_back_not_the_copies_ses_could_take(pipeline):
    data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
    pipeline.enqueue("transactional", {"template": "welcome", "to": "bounce@simulator.amazonses.com", "data": data,
                                       "id": "app-3", "campaign": "2026.12", "tags": {"ref": "a.b@c"}})
    pipeline.drain()
    assert (pipeline.ses.sends[0]["tags"]["postline_campaign"], pipeline.ses.sends[0]["tags"]["ref"]) == (
        "2026_12", "a_b_c")  # what SES accepts in a tag
    pipeline.publish_ses_events()
    announced = {e["detail-type"]: e["detail"] for e in pipeline.app_events()}
    assert set(announced) == {"email.sent", "email.bounced"}
    for detail in announced.values():
        assert (detail["template"], detail["campaign"], detail["tags"]) == ("welcome", "2026.12", {"ref": "a.b@c"})


class RecordingSes:
    def __init__(self):
        self.suppressed = []

    def put_suppressed_destination(self, EmailAddress, Reason):
        self.suppressed.append((EmailAddress, Reason))


def test_hard_bounces_and_complaints_are_mirrored_to_ses_only_when_configured(pipeline):
    from dataclasses import replace

    from postline_cli.local.ses_simulator import events_for

    send_one(pipeline, "bounce@simulator.amazonses.com", "m1")
    send_one(pipeline, "complaint@simulator.amazonses.com", "m2")
    records = []
    for send in pipeline.ses.sends:
        entry = {"ses_message_id": send["MessageId"], "timestamp": pipeline.clock(), "source": "x@mail.example.com",
                 "tags": send["tags"], "destination": send["Destination"]["ToAddresses"]}
        records += [QueueRecord(f"{send['MessageId']}-{n}", json.dumps(event), "postline-ses-events", 0, 1)
                    for n, event in enumerate(events_for(entry))]
    ses = RecordingSes()
    apply_events(records, replace(pipeline.events_context(), sesv2=ses))  # mirroring off: the default
    assert ses.suppressed == []
    mirroring = pipeline.settings.model_copy(update={"mirror_ses_suppressions": True})
    apply_events(records, replace(pipeline.events_context(), sesv2=ses, settings=mirroring))
    assert sorted(ses.suppressed) == [("bounce@simulator.amazonses.com", "BOUNCE"),
                                      ("complaint@simulator.amazonses.com", "COMPLAINT")]


FIXTURES = ROOT / "tests" / "fixtures" / "ses"


def fixture_for(pipeline, name: str, message_id: str, tagged: bool = True) -> QueueRecord:
    """A documented SES event, pointed at a message postline really sent."""
    document = json.loads((FIXTURES / name).read_text())
    send = next(s for s in pipeline.ses.sends if s["tags"]["postline_message_id"] == message_id)
    document["mail"]["messageId"] = send["MessageId"]
    if tagged:
        document["mail"]["tags"]["postline_message_id"] = [message_id]
    return QueueRecord(name, json.dumps(document), "postline-ses-events", 0, 1)


def test_documented_events_have_their_effects(pipeline):
    ids = {name: send_one(pipeline, "recipient@example.com", name) for name in (
        "bounce", "complaint", "reject", "delay", "render", "open", "notification")}
    records = [fixture_for(pipeline, "bounce-permanent-two-recipients.json", ids["bounce"]),
               fixture_for(pipeline, "complaint-two-recipients.json", ids["complaint"]),
               fixture_for(pipeline, "reject.json", ids["reject"]),
               fixture_for(pipeline, "delivery-delay.json", ids["delay"]),
               fixture_for(pipeline, "rendering-failure.json", ids["render"]),
               fixture_for(pipeline, "open.json", ids["open"]),
               fixture_for(pipeline, "notification-bounce.json", ids["notification"], tagged=False)]
    result = apply_events(records, pipeline.events_context())
    assert not result.failed
    status = {name: Message.get(message_id).status for name, message_id in ids.items()}
    assert status == {"bounce": "bounced", "complaint": "complained", "reject": "failed", "delay": "sent",
                      "render": "failed", "open": "sent",
                      "notification": "sent"}  # an identity notification has no tags: not postline's to apply
    # Every recipient of a multi-recipient bounce or complaint is suppressed, normalised.
    assert Suppression.get("second@example.org", "all").reason in ("hard_bounce", "complaint")
    assert Suppression.get("recipient@example.com", "all").reason in ("hard_bounce", "complaint")
    delayed = [e for e in EmailEvent.query(ids["delay"]) if e.type == "delayed"]
    assert delayed and delayed[0].detail["delayType"] == "TransientCommunicationFailure"


def test_by_default_only_the_events_an_application_must_act_on_are_published(pipeline):
    from postline.settings import settings_from_environ
    from postline_cli.local import resources

    from .conftest import MOTO_SQS, TRACKING

    environment = resources.function_environment(MOTO_SQS, TRACKING)
    del environment["POSTLINE_APP_EVENTS"]  # the local stack publishes all; a deployment's default is narrower
    pipeline.settings = settings_from_environ(environment)
    data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
    pipeline.enqueue("transactional", {"template": "welcome", "to": "bounce@simulator.amazonses.com", "data": data,
                                       "id": "quiet-1"})
    pipeline.enqueue("transactional", {"template": "welcome", "to": "fine@example.com", "data": data, "id": "quiet-2"})
    pipeline.drain()
    pipeline.publish_ses_events()
    announced = {(e["detail"]["message_id"], e["detail-type"]) for e in pipeline.app_events()}
    assert announced == {(message_id_for("quiet-1"), "email.bounced")}  # no sent or delivered for either
    assert Message.get(message_id_for("quiet-2")).status == "delivered"  # recorded all the same


def test_app_events_setting_accepts_all_and_refuses_unknown_names():
    import pytest

    from postline.settings import APP_EVENT_NAMES, ConfigurationError, settings_from_environ
    from postline_cli.local import resources

    environment = resources.function_environment("http://unused", "https://t.example.com")
    assert settings_from_environ(environment).app_events == APP_EVENT_NAMES
    with pytest.raises(ConfigurationError, match="POSTLINE_APP_EVENTS"):
        settings_from_environ({**environment, "POSTLINE_APP_EVENTS": "email.sent,email.deliverd"})


def test_a_send_event_for_an_email_the_send_stage_recorded_only_reads(pipeline, monkeypatch):
    message_id = send_before_any_event(pipeline, "fine@example.com", "w-recorded")
    sent = Message.get(message_id)
    assert (sent.status, sent.ses_message_id) == ("sent", pipeline.ses.sends[0]["MessageId"])
    calls = counting_dynamodb_calls(pipeline, monkeypatch)
    pipeline.apply_send_events()
    assert calls == ["batch_get_item"]
    assert Message.get(message_id).updated_at == sent.updated_at


def counting_dynamodb_calls(pipeline, monkeypatch) -> list[str]:
    """The DynamoDB reads and writes the events stage makes from now on, by operation."""
    calls: list[str] = []
    real = pipeline.session.client("dynamodb")

    class CountingCalls:
        def __getattr__(self, name):
            if name in ("update_item", "put_item", "transact_write_items", "batch_write_item", "batch_get_item",
                        "get_item"):
                calls.append(name)
            return getattr(real, name)

    monkeypatch.setattr(pipeline, "events_context",
                        lambda: EventsContext(pipeline.settings, dynamodb=CountingCalls(),
                                              events=pipeline.session.client("events"), sqs=pipeline.sqs,
                                              scheduler=pipeline.session.client("scheduler"), clock=pipeline.clock))
    return calls


def test_a_send_event_settles_its_claim_with_one_single_item_write_and_a_repeat_changes_nothing(pipeline,
                                                                                                 monkeypatch):
    message_id = send_before_any_event(pipeline, "fine@example.com", "w-settled", crash_before_sent=True)
    assert Message.get(message_id).status == "sending"  # SES has it; `sent` was never written
    calls = counting_dynamodb_calls(pipeline, monkeypatch)
    pipeline.apply_send_events()  # no Delivery yet (a slow or greylisting mail server): the Send settles the claim
    assert calls == ["batch_get_item", "update_item"]  # is it settled already? no: one single-item write
    settled = Message.get(message_id)
    assert (settled.status, settled.ses_message_id) == ("sent", pipeline.ses.sends[0]["MessageId"])
    assert settled.sent_at == pipeline.clock()

    pipeline.now[0] += 60
    pipeline.publish_ses_events(only=("Send",))  # SES events can come twice
    assert Message.get(message_id).sent_at == settled.sent_at and Message.get(message_id).status == "sent"
    pipeline.publish_ses_events(only=("Delivery",))
    assert Message.get(message_id).status == "delivered"
    pipeline.publish_ses_events(only=("Send",))  # a Send after the Delivery never moves it back
    assert Message.get(message_id).status == "delivered"


def test_a_delivery_that_overtakes_its_send_event_still_leaves_the_send_time(pipeline, monkeypatch):
    message_id = send_before_any_event(pipeline, "fast@example.com", "w-overtaken")
    pipeline.publish_ses_events(only=("Delivery",))  # the usual order: Send events are held back a minute
    stored = Message.get(message_id)
    # The Delivery event's mail.timestamp is when SES took the email; the delivery came half a second later.
    assert stored.status == "delivered" and stored.delivered_at == stored.sent_at + 0.5
    assert stored.ses_message_id == pipeline.ses.sends[0]["MessageId"]
    calls = counting_dynamodb_calls(pipeline, monkeypatch)
    pipeline.publish_ses_events(only=("Send",))
    assert calls == ["batch_get_item"]  # the Delivery settled the claim: the Send event reads, and writes nothing
    assert Message.get(message_id).status == "delivered"


def test_a_delivery_is_kept_on_the_record_once_however_often_it_comes(pipeline):
    from postline_cli.views import message_view

    message_id = send_one(pipeline, "fine@example.com", "d1")
    for _ in range(2):  # SES and the queue may each deliver an event more than once
        assert not pipeline.publish_ses_events().failed
    record = Message.get(message_id)
    assert record.status == "delivered" and record.delivered_at is not None
    assert "250" in record.delivery.as_dict()["smtpResponse"]
    assert [e.type for e in EmailEvent.query(message_id) if e.type != "request"] == []  # no row: one write
    delivered = [e for e in message_view(message_id)["events"] if e["type"] == "delivered"]
    assert len(delivered) == 1 and "250" in delivered[0]["detail"]["smtpResponse"]


def test_a_delivery_that_arrives_after_the_complaint_still_shows_in_the_history(pipeline):
    from postline_cli.views import message_view

    message_id = send_one(pipeline, "complaint@simulator.amazonses.com", "d2")
    pipeline.publish_ses_events(only=("Send", "Complaint"))
    pipeline.publish_ses_events(only=("Delivery",))
    assert Message.get(message_id).status == "complained"
    types = [e["type"] for e in message_view(message_id)["events"]]
    assert types.count("delivered") == 1 and "complained" in types


def test_a_repeated_delivery_beside_a_complaint_shows_once(pipeline):
    from postline_cli.views import message_view

    message_id = send_one(pipeline, "complaint@simulator.amazonses.com", "d3")
    pipeline.publish_ses_events(only=("Send", "Delivery"))
    pipeline.publish_ses_events(only=("Delivery", "Complaint"))  # the Delivery again, in the complaint's batch
    assert Message.get(message_id).status == "complained"
    types = [e["type"] for e in message_view(message_id)["events"]]
    assert types.count("delivered") == 1 and "complained" in types
