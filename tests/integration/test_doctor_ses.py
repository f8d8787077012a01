"""The doctor's SES account and wiring checks against moto with the local endpoint's SES answers (the identity's
DKIM tokens and MAIL FROM, configuration sets' event destinations), on the local stack's resources: a wiring that
passes, a deliberately unconfirmed SNS subscription, a disabled event destination, a DLQ with messages, and the
round trip through postline's events function."""
from __future__ import annotations

import json

import pytest
from moto.sns.models import sns_backends

from postline_cli.doctor.report import FAIL, PASS, WARN
from postline_cli.doctor.ses_checks import (
    Wiring,
    account_checks,
    configuration_set_checks,
    dead_letter_checks,
    identity_checks,
    identity_of,
    round_trip,
    subscription_check,
)
from postline_cli.local import resources
from tests.integration.conftest import MOTO_SQS

DOMAIN = resources.SENDING_DOMAIN


@pytest.fixture
def wiring(pipeline) -> Wiring:
    return Wiring.local(MOTO_SQS)


def by_name(checks):
    return {c.name: c for c in checks}


class Account:
    def __init__(self, **answer):
        self.answer = {"SendQuota": {"MaxSendRate": 14.0, "Max24HourSend": 50_000.0, "SentLast24Hours": 120.0},
                       "SendingEnabled": True, "ProductionAccessEnabled": True, "EnforcementStatus": "HEALTHY",
                       **answer}

    def get_account(self):
        return self.answer


def test_the_account_checks_say_sandbox_paused_sending_and_the_limits():
    checks, warmed_up = account_checks(Account())
    assert warmed_up and all(c.status == PASS for c in checks)
    assert by_name(checks)["rate and quota"].found == "14 emails a second, 50,000 a day, 120 sent in the last 24 hours"
    checks, warmed_up = account_checks(Account(ProductionAccessEnabled=False, SendingEnabled=False))
    assert not warmed_up
    assert by_name(checks)["production access"].status == WARN
    assert by_name(checks)["sending enabled"].status == FAIL
    assert by_name(checks)["sending enabled"].fix.startswith("aws sesv2 put-account-sending-attributes "
                                                             "--sending-enabled")


def test_the_identity_as_the_local_endpoint_answers_it(pipeline):
    identity, answer = identity_of(pipeline.session.client("sesv2"), DOMAIN, "us-east-1")
    assert len(identity.dkim_tokens) == 3 and identity.dkim_status == "SUCCESS"
    assert (identity.mail_from_domain, identity.mail_from_status) == (resources.MAIL_FROM_DOMAIN, "SUCCESS")
    assert [c.status for c in identity_checks(DOMAIN, answer)] == [PASS]
    assert identity_of(pipeline.session.client("sesv2"), "other.example", "us-east-1") == (None, None)
    missing = identity_checks("other.example", None)[0]
    assert (missing.status, missing.found) == (FAIL, "SES holds no identity for other.example in this region")


def test_the_local_stacks_wiring_passes(pipeline, wiring):
    checks = (configuration_set_checks(pipeline.session.client("sesv2"), wiring)
              + subscription_check(pipeline.session.client("sns"), wiring)
              + dead_letter_checks(pipeline.sqs, wiring))
    assert [(c.name, c.status) for c in checks if c.status != PASS] == []
    assert by_name(checks)["marketing event destination"].found == "postline-marketing: Events enabled"


def test_a_disabled_event_destination_fails_with_the_command_that_enables_it(pipeline, wiring):
    sesv2 = pipeline.session.client("sesv2")
    destination = resources.event_destination("sns")
    sesv2.update_configuration_set_event_destination(
        ConfigurationSetName="postline-marketing", EventDestinationName="Events",
        EventDestination={**destination, "Enabled": False})
    checks = by_name(configuration_set_checks(sesv2, wiring))
    check = checks["marketing event destination"]
    assert check.status == FAIL
    assert check.found == ("postline-marketing: the event destination Events is disabled, so no event of marketing "
                           "mail reaches postline (statuses stay at sent)")
    command, _, document = check.fix.partition(" --event-destination '")
    assert command == ("aws sesv2 update-configuration-set-event-destination --configuration-set-name "
                       "postline-marketing --event-destination-name Events")
    assert json.loads(document.rstrip("'"))["Enabled"] is True
    assert checks["critical event destination"].status == PASS

    sesv2.delete_configuration_set_event_destination(ConfigurationSetName="postline-critical",
                                                     EventDestinationName="Events")
    assert by_name(configuration_set_checks(sesv2, wiring))["critical event destination"].found == (
        "postline-critical: no event destination publishes to postline's topic")


def test_an_unconfirmed_subscription_fails(pipeline, wiring):
    backend = sns_backends[resources.ACCOUNT][resources.REGION]
    ours = [s for s in backend.subscriptions.values() if s.endpoint == wiring.events_queue_arn]
    assert len(ours) == 1
    ours[0].attributes["PendingConfirmation"] = "true"  # as SNS reports a subscription nobody confirmed
    check = subscription_check(pipeline.session.client("sns"), wiring)[0]
    assert check.status == FAIL
    assert check.found.startswith("the events queue's subscription to the topic is not confirmed")
    assert f"aws sns confirm-subscription --topic-arn {wiring.topic_arn} --token TOKEN" in check.fix

    pipeline.session.client("sns").unsubscribe(SubscriptionArn=ours[0].arn)
    assert subscription_check(pipeline.session.client("sns"), wiring)[0].found == (
        f"the topic {wiring.topic_arn} has no subscription for postline's events queue")


def test_messages_in_a_dead_letter_queue_warn(pipeline, wiring):
    dlq = "postline-transactional-dlq"
    pipeline.sqs.send_message(QueueUrl=wiring.dead_letter_queues[dlq], MessageBody="{}")
    checks = dead_letter_checks(pipeline.sqs, wiring)
    assert [(c.name, c.status, c.found) for c in checks] == [
        (f"dead-letter queue {dlq}", WARN, "1 messages wait there")]


def deliver_events_while_waiting(pipeline, sesv2):
    """The round trip's wait: meanwhile SES publishes the events of each send whose configuration set has an enabled
    destination (as SES does), and postline's events function applies them."""
    published = []

    def sleep(_seconds):
        pipeline.now[0] += 1
        for send in pipeline.ses.sends:
            destinations = sesv2.get_configuration_set_event_destinations(
                ConfigurationSetName=send["ConfigurationSetName"])["EventDestinations"]
            if send not in published and any(d["Enabled"] for d in destinations):
                published.append(send)
                pipeline.publish_ses_events([send], only=("Delivery",))
    return sleep


def test_the_round_trip_sees_the_delivery_event_applied(pipeline, wiring):
    sesv2 = pipeline.session.client("sesv2")
    check = round_trip(pipeline.ses, pipeline.session.client("dynamodb"), wiring, "transactional", 30,
                       clock=pipeline.clock, sleep=deliver_events_while_waiting(pipeline, sesv2))
    assert check.status == PASS, check
    assert check.found.startswith("SES accepted a test email to success@simulator.amazonses.com (")
    [send] = pipeline.ses.sends
    assert send["ConfigurationSetName"] == "postline-transactional"
    assert send["tags"]["postline_message_id"].startswith("doctor-")


def test_the_round_trip_fails_when_no_event_comes_back(pipeline, wiring):
    sesv2 = pipeline.session.client("sesv2")
    sesv2.update_configuration_set_event_destination(
        ConfigurationSetName="postline-transactional", EventDestinationName="Events",
        EventDestination={**resources.event_destination("sns"), "Enabled": False})
    check = round_trip(pipeline.ses, pipeline.session.client("dynamodb"), wiring, "transactional", 5,
                       clock=pipeline.clock, sleep=deliver_events_while_waiting(pipeline, sesv2))
    assert check.status == FAIL
    assert check.found.endswith("but postline saw no Delivery event for it within 5 s")


def test_the_local_ses_publishes_nothing_for_a_disabled_destination_but_identity_notifications(pipeline):
    import threading

    from postline_cli.local.ses_simulator import SesEventPublisher, by_sns

    sesv2 = pipeline.session.client("sesv2")
    publisher = SesEventPublisher("sns", None, None, "unused", threading.Event(), sesv2)
    assert publisher.destination_enabled("postline-marketing")
    sesv2.update_configuration_set_event_destination(
        ConfigurationSetName="postline-marketing", EventDestinationName="Events",
        EventDestination={**resources.event_destination("sns"), "Enabled": False})
    publisher._enabled.clear()  # (read again at most once a second)
    assert not publisher.destination_enabled("postline-marketing")
    entry = {"ses_message_id": "s1", "timestamp": 0, "source": "a@mail.example.com", "configuration_set":
             "postline-marketing", "destination": ["bounce@simulator.amazonses.com"], "tags": {}}
    assert [e.get("eventType") or e["notificationType"] for e in by_sns(entry, False)] == ["Bounce"]
    assert "eventType" not in by_sns(entry, False)[0]  # the identity's notification, which no set can disable
