"""The local stack's campaign wiring: the campaigns table and the control queue as the CDK stack has them, the
campaign function fed one control message per invocation with its timeout, and a campaign's start schedule fired at
its time on the local clock (``postline local clock``), then deleted, as ``ActionAfterCompletion=DELETE`` does."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from types import SimpleNamespace

from postline.campaigns import store
from postline.campaigns.control import ControlMessage, schedule_start
from postline.campaigns.store import RUNNING, Campaign
from postline.campaigns.windows import Window
from postline.settings import get_settings
from postline_cli.local import resources, stack, worker
from postline_cli.local.clock import LocalClock, write_offset
from postline_cli.local.runner import QueuePoller, load_handler_module, use_clock
from postline_cli.local.scheduler import run_due_schedules
from tests.integration.conftest import MOTO_SQS, TRACKING

HOUR = 3_600


def _control_queue(pipeline) -> str:
    return pipeline.queue_url(resources.CAMPAIGN_QUEUE)


def _campaign(name: str, start_at: float) -> Campaign:
    return Campaign(name, "newsletter", f"campaigns/{name}/audience.jsonl", start_at=start_at)


def _schedules(pipeline) -> list[str]:
    listed = pipeline.session.client("scheduler").list_schedules(GroupName=resources.SCHEDULE_GROUP)
    return [schedule["Name"] for schedule in listed["Schedules"]]


def test_the_campaigns_table_and_the_control_queue_with_its_dlq_exist_and_every_function_is_told(pipeline):
    table = pipeline.session.client("dynamodb").describe_table(TableName="postline-campaigns")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "campaign_id", "KeyType": "HASH"}]  # as constants.TABLES
    assert resources.function_environment("http://x", "http://y")["POSTLINE_CAMPAIGNS_TABLE"] == "postline-campaigns"
    assert pipeline.settings.campaign_queue_url == _control_queue(pipeline)  # derived from the one prefix

    attributes = pipeline.sqs.get_queue_attributes(QueueUrl=_control_queue(pipeline),
                                                   AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == resources.queue_arn("postline-campaigns-dlq")
    assert int(redrive["maxReceiveCount"]) == resources.MAX_RECEIVE_COUNT
    # A run may last the function's whole timeout: its control message stays hidden that long, not 10 s.
    assert int(attributes["VisibilityTimeout"]) == resources.CAMPAIGN_TIMEOUT_SECONDS == 120


def test_a_start_schedule_fires_when_the_local_clock_reaches_it_and_is_deleted(pipeline, tmp_path):
    clock = LocalClock(tmp_path / "clock.json")
    campaign = _campaign("spring-sale", time.time() + 2 * HOUR)
    name = schedule_start(pipeline.session.client("scheduler"), group=pipeline.settings.schedule_group,
                          role_arn=pipeline.settings.scheduler_role_arn, queue_url=pipeline.settings.campaign_queue_url,
                          campaign=campaign, at=campaign.start_at)
    scheduler, sqs = pipeline.session.client("scheduler"), pipeline.sqs

    assert run_due_schedules(scheduler, sqs, resources.SCHEDULE_GROUP, clock()) == 0  # two hours early
    assert _schedules(pipeline) == [name]

    write_offset(tmp_path / "clock.json", 2 * HOUR + 5)  # postline local clock --advance 2h5s
    assert run_due_schedules(scheduler, sqs, resources.SCHEDULE_GROUP, clock()) == 1
    (message,) = sqs.receive_message(QueueUrl=_control_queue(pipeline)).get("Messages", [])
    assert ControlMessage.from_body(message["Body"]) == ControlMessage("spring-sale", 0)
    assert _schedules(pipeline) == []  # run once, then gone
    assert run_due_schedules(scheduler, sqs, resources.SCHEDULE_GROUP, clock()) == 0


def test_the_campaign_function_gets_one_control_message_per_invocation_with_its_timeout(pipeline, monkeypatch):
    for version in range(3):
        pipeline.sqs.send_message(QueueUrl=_control_queue(pipeline),
                                  MessageBody=ControlMessage("spring-sale", version).body())
    invocations: list[tuple[list[int], int]] = []

    def handler(event, context):
        versions = [json.loads(record["body"])["version"] for record in event["Records"]]
        invocations.append((versions, context.get_remaining_time_in_millis()))
        return {"batchItemFailures": []}

    pollers = _pollers_of_the_local_stack(pipeline, handler, monkeypatch)
    assert [p.function_name for p in pollers] == ["campaign", "campaign"]  # two runs at once at most, as in AWS
    while pollers[0].poll_once():
        pass
    assert sorted(versions for versions, _ in invocations) == [[0], [1], [2]]
    # The context says how long the run has: the function's 120 s (the fan-out stops itself after 60).
    assert all(60_000 < remaining <= 120_000 for _, remaining in invocations)


def _pollers_of_the_local_stack(pipeline, handler, monkeypatch) -> list[QueuePoller]:
    """The pollers ``postline local up`` starts on the control queue (in the campaign function's worker), built but
    not started."""
    created: list[QueuePoller] = []

    class Unstarted(QueuePoller):
        def start(self) -> None:
            created.append(self)

    monkeypatch.setattr(worker, "QueuePoller", Unstarted)
    modules = {name: SimpleNamespace(handler=handler) for name in ("render", "send", "ses_events", "campaign")}
    stack.LocalStack(stack.LocalPaths.default(), log_batches=False)._start_pollers(pipeline.session, modules)
    control = [poller for poller in created if poller.queue_name == resources.CAMPAIGN_QUEUE]
    for poller in control:  # moto's SQS stands in for the local endpoint, under its own URLs
        poller.queue_url = _control_queue(pipeline)
    return control


def test_the_send_functions_campaign_gate_and_the_campaign_function_tell_the_local_clocks_time(
        pipeline, monkeypatch, tmp_path):
    # A running campaign whose window opens eleven hours from now (UTC) and closes two hours later.
    def time_of_day(at: float) -> str:
        return datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M")

    now = time.time()
    window = Window.parse(f"{time_of_day(now + 11 * HOUR)}-{time_of_day(now + 13 * HOUR)}", "UTC")
    store.create(pipeline.session.client("dynamodb"), pipeline.settings.campaigns_table,
                 Campaign("night-owls", "newsletter", "campaigns/night-owls/audience.jsonl", start_at=now,
                          state=RUNNING, window=window))
    # The functions as ``postline local up`` loads them, with the local stack's environment.
    environment = resources.function_environment(MOTO_SQS, TRACKING)
    environment.pop("AWS_ENDPOINT_URL")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        modules = {name: load_handler_module(name) for name in ("send", "campaign")}
    finally:
        get_settings.cache_clear()
    clock_file = tmp_path / "clock.json"
    use_clock(modules, LocalClock(clock_file))
    gate = modules["send"].send_context.campaigns

    assert gate.verdict("night-owls") == "hold"  # outside its window: its emails wait on their queue
    write_offset(clock_file, 12 * HOUR)  # postline local clock --advance 12h
    assert gate.verdict("night-owls") == "send"
    campaign = modules["campaign"].campaign_context
    for reader in (campaign.clock, campaign.limiter.clock):  # the fan-out's window and its rate, on the same clock
        assert reader() >= now + 12 * HOUR
