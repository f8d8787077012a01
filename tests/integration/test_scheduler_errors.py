"""EventBridge Scheduler refusing a soft-bounce retry's schedule (a role it may not pass, a quota, throttling, no
answer) fails that one event of the batch: the others are applied, the event comes back, its bounce is counted once
however often it comes, and its retry is scheduled once Scheduler takes it. Every schedule names the dead-letter
queue Scheduler puts a call it could not make in."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from postline.campaigns import control, store
from postline.contract import message_id_for
from postline.events import apply_events
from postline.models import Message
from postline.retries import SOFT_BOUNCES, due_schedule_action
from postline_cli.local import resources
from tests.integration.test_pipeline import example
from tests.integration.test_soft_bounces import ses_event

SCHEDULES_DLQ = "arn:aws:sqs:us-east-1:123456789012:postline-schedules-dlq"


def _refused(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"refused: {code}"}}, "CreateSchedule")


class RefusingScheduler:
    """Scheduler, refusing the schedules of one message with ``error`` (as long as ``refusing`` holds)."""

    def __init__(self, scheduler, message_id: str, error: Exception):
        self._scheduler, self._message_id, self._error = scheduler, message_id, error
        self.refusing = True
        self.exceptions = scheduler.exceptions

    def create_schedule(self, **kwargs):
        if self.refusing and self._message_id in kwargs["Name"]:
            raise self._error
        return self._scheduler.create_schedule(**kwargs)

    def __getattr__(self, name):
        return getattr(self._scheduler, name)


def _schedules(pipeline) -> dict[str, dict]:
    scheduler = pipeline.session.client("scheduler")
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=resources.SCHEDULE_GROUP)["Schedules"]]
    return {name: scheduler.get_schedule(Name=name, GroupName=resources.SCHEDULE_GROUP) for name in names}


def _soft_bounce_count(pipeline, address: str) -> int:
    """How many soft bounces the address's run holds (postline.events counts them beside its suppressions)."""
    item = pipeline.session.client("dynamodb").get_item(
        TableName=pipeline.settings.suppressions_table,
        Key={"email": {"S": address}, "scope": {"S": SOFT_BOUNCES}}, ConsistentRead=True)["Item"]
    return int(item["bounces"]["N"])


@pytest.mark.parametrize("error", [
    _refused("ValidationException"),  # e.g. a role Scheduler may not assume
    _refused("AccessDeniedException"),  # e.g. iam:PassRole refused
    _refused("ServiceQuotaExceededException"),
    _refused("ThrottlingException"),
    EndpointConnectionError(endpoint_url="https://scheduler.us-east-1.amazonaws.com"),
], ids=lambda error: type(error).__name__ if not isinstance(error, ClientError) else error.response["Error"]["Code"])
def test_a_refused_schedule_fails_only_its_event_which_is_counted_once_and_scheduled_when_it_comes_back(
        pipeline, error):
    pipeline.settings = pipeline.settings.model_copy(update={
        "soft_bounce_first_retry_seconds": 3600,  # past SQS's 15 minutes: a schedule
        "schedule_dlq_arn": SCHEDULES_DLQ})
    for key, address in (("refused", "full@example.com"), ("fine", "busy@example.com")):
        pipeline.enqueue("transactional", {"template": "order-confirmation", "to": address,
                                           "data": example("order-confirmation"), "id": key})
    pipeline.drain()
    refused, fine = message_id_for("refused"), message_id_for("fine")
    bounce = ses_event(pipeline, refused, "Bounce", "full@example.com")
    other = replace(ses_event(pipeline, fine, "Bounce", "busy@example.com"), record_id="the-other-bounce")
    context = pipeline.events_context()
    context.scheduler = RefusingScheduler(context.scheduler, refused, error)

    result = apply_events([bounce, other], context)
    assert result.failed == {bounce.record_id}  # the other event of the batch is applied
    assert result.outcomes[bounce.record_id].retry  # back on the queue, not dead-lettered at once
    assert [name for name in _schedules(pipeline)] == [f"postline-retry-{fine}-1"]
    assert "retry_requested" not in Message.get(refused).attribute_values  # asked again on redelivery
    assert _soft_bounce_count(pipeline, "full@example.com") == 1

    result = apply_events([bounce], context)  # SQS delivers it again: Scheduler still refuses
    assert result.failed == {bounce.record_id} and _soft_bounce_count(pipeline, "full@example.com") == 1

    context.scheduler.refusing = False  # the role fixed, the quota raised, Scheduler answering
    assert not apply_events([bounce], context).failed
    assert _soft_bounce_count(pipeline, "full@example.com") == 1  # one bounce, however often its event came
    assert sorted(_schedules(pipeline)) == sorted([f"postline-retry-{fine}-1", f"postline-retry-{refused}-1"])
    assert Message.get(refused).retry_requested == 1


def test_every_schedule_names_the_dead_letter_queue(pipeline):
    pipeline.settings = pipeline.settings.model_copy(update={
        "soft_bounce_first_retry_seconds": 3600, "schedule_dlq_arn": SCHEDULES_DLQ})
    pipeline.enqueue("critical", {"template": "password-reset", "to": "full@example.com",
                                  "data": example("password-reset"), "id": "reset"})
    pipeline.drain()
    apply_events([ses_event(pipeline, message_id_for("reset"), "Bounce", "full@example.com")],
                 pipeline.events_context())
    # A campaign's start, as the CLI and the campaign function schedule it.
    campaign = store.Campaign("spring", "newsletter", "campaigns/spring/audience.jsonl", start_at=pipeline.clock(),
                              audience_bytes=1, audience_rows=1, created_at=pipeline.clock())
    control.schedule_start(pipeline.session.client("scheduler"), group=resources.SCHEDULE_GROUP,
                           role_arn="arn:aws:iam::123456789012:role/postline-scheduler",
                           queue_url=pipeline.settings.campaign_queue_url, campaign=campaign,
                           at=pipeline.clock() + 86_400, dead_letter_arn=SCHEDULES_DLQ)
    schedules = _schedules(pipeline)
    assert len(schedules) == 2
    for schedule in schedules.values():
        assert schedule["Target"]["DeadLetterConfig"] == {"Arn": SCHEDULES_DLQ}
        assert due_schedule_action(schedule)["QueueUrl"]  # still the SendMessage call the local scheduler makes
    retry = schedules[f"postline-retry-{message_id_for('reset')}-1"]
    assert json.loads(retry["Target"]["Input"])["QueueUrl"] == pipeline.settings.inbound_queue_urls["critical"]
