"""Campaigns against moto: the fan-out's checkpoints and hand-on, the states it moves through, the backlog bound and
the window, and the send stage's gate (pause holds, cancel drops)."""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from postline.campaigns import store
from postline.campaigns.audience import recipient_id
from postline.campaigns.control import ControlMessage, start_now
from postline.campaigns.fanout import CampaignContext, run, run_batch
from postline.campaigns.gate import CampaignGate
from postline.campaigns.store import Campaign, CampaignExists, CampaignNotFound, CampaignStateError
from postline.campaigns.windows import Window
from postline.contract import message_id_for
from postline.models import CANCELLED, Suppression
from postline.suppression import erased_address
from postline.tokens import load_keyring
from postline_cli.local import resources

from .conftest import ROOT, SesAccount

# The campaign's data: the newsletter's example, but for the name, which each recipient has.
NEWSLETTER = {key: value for key, value in json.loads((ROOT / "templates/newsletter/example.json").read_text()).items()
              if key != "name"}
MARKETING_INBOUND = resources.INBOUND_QUEUES["marketing"]
MARKETING_SEND = resources.SEND_QUEUES["marketing"]
PLENTY_MS = 600_000


def address(n: int) -> str:
    return f"reader{n:05d}@example.com"


class World:
    """A campaign's world: its audience in the bucket, its item, the campaign function's context."""

    def __init__(self, pipeline, rate: float = 1_000):
        self.pipeline, self.settings = pipeline, pipeline.settings
        self.dynamodb = pipeline.session.client("dynamodb")
        self.s3 = pipeline.session.client("s3")
        self.account = SesAccount(rate=rate)
        self.ctx = CampaignContext(self.settings, dynamodb=self.dynamodb, sqs=pipeline.sqs, s3=self.s3,
                                   scheduler=pipeline.session.client("scheduler"),
                                   events=pipeline.session.client("events"), sesv2=self.account,
                                   secrets=pipeline.session.client("secretsmanager"), clock=pipeline.clock)

    def create(self, name: str, recipients: int | list[str], *, window: Window | None = None,
               start_at: float | None = None) -> Campaign:
        emails = [address(n) for n in range(recipients)] if isinstance(recipients, int) else recipients
        audience = b"".join(json.dumps({"email": email, "data": {"name": f"Reader {i}"}}).encode() + b"\n"
                            for i, email in enumerate(emails))
        key = f"campaigns/{name}/audience.jsonl"
        self.s3.put_object(Bucket=self.settings.claim_check_bucket, Key=key, Body=audience)
        now = self.pipeline.clock()
        campaign = Campaign(name, "newsletter", key, start_at=now if start_at is None else start_at,
                            data=NEWSLETTER, audience_bytes=len(audience), audience_rows=len(emails), window=window,
                            created_at=now, state_at=now, updated_at=now)
        store.create(self.dynamodb, self.settings.campaigns_table, campaign)
        return campaign

    def get(self, name: str) -> Campaign:
        return store.get(self.dynamodb, self.settings.campaigns_table, name)

    def move(self, name: str, to: str) -> Campaign:
        return store.move(self.dynamodb, self.settings.campaigns_table, name, to, now=self.pipeline.clock())

    def start(self, name: str) -> None:
        start_now(self.pipeline.sqs, self.settings.campaign_queue_url, self.get(name))

    def control_records(self):
        return self.pipeline.receive(resources.CAMPAIGN_QUEUE, visibility=0)

    def run_one(self, remaining_ms=lambda: PLENTY_MS) -> None:
        """Run the one control message due now."""
        record, = self.control_records()
        self.pipeline.settle(resources.CAMPAIGN_QUEUE, [record], run_batch([record], self.ctx, remaining_ms))

    def run_control(self, remaining_ms=lambda: PLENTY_MS):
        """Run the control messages due now until none is left (as the event source mapping would)."""
        runs = 0
        while records := self.control_records():
            for record in records:
                result = run_batch([record], self.ctx, remaining_ms)
                self.pipeline.settle(resources.CAMPAIGN_QUEUE, [record], result)
                runs += 1
            assert runs < 200, "the fan-out does not come to an end"
        return runs

    def queued(self, queue: str = MARKETING_INBOUND) -> list[dict]:
        """The bodies on a queue, taken off it."""
        sqs, url, bodies = self.pipeline.sqs, self.pipeline.queue_url(queue), []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            bodies += [json.loads(m["Body"]) for m in messages]
            sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                            for i, m in enumerate(messages)])
        return bodies

    def depth(self, queue: str, attribute: str = "ApproximateNumberOfMessages") -> int:
        answer = self.pipeline.sqs.get_queue_attributes(QueueUrl=self.pipeline.queue_url(queue),
                                                        AttributeNames=[attribute])
        return int(answer["Attributes"][attribute])


@pytest.fixture
def world(pipeline):
    return World(pipeline)


def announced(pipeline) -> list[dict]:
    """The application events published (what postline put in each EventBridge event's detail)."""
    return [event["detail"] for event in pipeline.app_events()]


def ids_of(name: str, count: int) -> list[str]:
    return [recipient_id(name, address(n)) for n in range(count)]


def test_a_run_hands_every_recipient_on_once_with_their_data_and_the_campaign_is_done(world, pipeline):
    world.create("spring", 250)
    world.start("spring")

    world.run_control()

    bodies = world.queued()
    assert sorted(b["id"] for b in bodies) == sorted(ids_of("spring", 250))
    first = next(b for b in bodies if b["to"] == address(0))
    assert first == {"template": "newsletter", "to": address(0), "campaign": "spring",
                     "id": recipient_id("spring", address(0)), "data": {**NEWSLETTER, "name": "Reader 0"}}
    campaign = world.get("spring")
    assert campaign.state == "done" and campaign.position == 250 and campaign.offset == campaign.audience_bytes
    assert campaign.counts["queued"] == 250 and campaign.counts["suppressed"] == 0
    assert [entry["state"] for entry in campaign.history] == ["scheduled", "running", "done"]
    events = [(e["event"], e["detail"]["state"], e["detail"]["counts"]["queued"]) for e in announced(pipeline)]
    assert events == [("campaign.started", "running", 0), ("campaign.done", "done", 250)]
    assert world.control_records() == []  # nothing handed on after the end


def test_a_run_stopped_by_its_time_budget_is_continued_from_its_byte_offset(world):
    world.create("budget", 450)
    world.start("budget")
    left = iter([PLENTY_MS, PLENTY_MS, 1_000])  # two pages, then the invocation is nearly over

    world.run_one(lambda: next(left))

    halfway = world.get("budget")
    assert (halfway.state, halfway.position, halfway.version) == ("running", 200, 2)
    assert len(world.queued()) == 200
    gets = []
    world.s3.meta.events.register("before-call.s3.GetObject", lambda params, **_: gets.append(params["headers"]))
    world.run_control()  # the continuation it handed on

    assert gets[0]["Range"] == f"bytes={halfway.offset}-"  # read from the checkpoint, not from the start
    rest = [body["id"] for body in world.queued()]
    assert len(rest) == 250 and set(rest) == set(ids_of("budget", 450)[200:])
    assert world.get("budget").state == "done"


def test_a_run_that_dies_between_a_page_and_its_checkpoint_repeats_that_page_and_nobody_gets_two(world, pipeline,
                                                                                                monkeypatch):
    world.create("crash", 130)
    world.start("crash")
    checkpoint, calls = store.checkpoint, []

    def dies_at_the_second(*args, **kwargs):
        calls.append(kwargs["offset"])
        if len(calls) == 2:
            raise SystemExit("killed")  # the invocation ends here: nothing in it runs any more
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(store, "checkpoint", dies_at_the_second)
    record, = world.control_records()
    with pytest.raises(SystemExit):
        run_batch([record], world.ctx, lambda: PLENTY_MS)
    monkeypatch.setattr(store, "checkpoint", checkpoint)

    # The same control message comes back (its checkpoint version is behind now, but it wrote that checkpoint).
    again, = world.control_records()
    assert again.record_id == record.record_id and json.loads(again.body)["version"] == 0
    world.pipeline.settle(resources.CAMPAIGN_QUEUE, [again], run_batch([again], world.ctx, lambda: PLENTY_MS))
    world.run_control()

    assert world.get("crash").state == "done" and world.get("crash").counts["queued"] == 130
    assert world.depth(MARKETING_INBOUND) == 130 + 30  # the second page twice, under the same ids
    pipeline.run_render()
    while pipeline.run_send():
        pass
    sends = Counter(send["tags"]["postline_message_id"] for send in pipeline.ses.sends)
    expected = {message_id_for(rid) for rid in ids_of("crash", 130)}
    assert set(sends) == expected and set(sends.values()) == {1}


def test_a_stale_control_message_does_nothing(world):
    world.create("stale", 250)
    world.start("stale")
    left = iter([PLENTY_MS, 1_000])
    world.run_one(lambda: next(left))  # one page, then handed on
    before = world.get("stale")

    # A copy of the first control message (an SQS duplicate, a start sent twice): behind the checkpoint.
    outcome = run(ControlMessage("stale", 0, "another-delivery"), world.ctx, lambda: PLENTY_MS)

    assert outcome.result == "stale"
    assert world.get("stale") == before and world.depth(MARKETING_INBOUND) == 100
    world.run_control()
    assert Counter(body["id"] for body in world.queued()) == Counter(ids_of("stale", 250))


@pytest.mark.parametrize("state, to", [("done", "running"), ("scheduled", "done"), ("cancelled", "scheduled")])
def test_a_move_the_state_does_not_allow_is_refused_and_changes_nothing(world, state, to):
    world.create("moves", 1)
    if state != "scheduled":
        world.move("moves", "running" if state == "done" else state)
        if state == "done":
            world.move("moves", "done")
    before = world.get("moves")

    with pytest.raises(CampaignStateError) as refused:
        world.move("moves", to)

    assert refused.value.state == state and state in str(refused.value)
    assert world.get("moves") == before


def test_a_campaign_is_created_once_and_a_missing_one_cannot_move(world):
    world.create("once", 1)
    with pytest.raises(CampaignExists):
        world.create("once", 1)
    with pytest.raises(CampaignNotFound):
        world.move("nobody", "paused")


def test_suppressed_addresses_are_skipped_and_counted_with_batched_reads(world, pipeline):
    world.create("careful", 120)
    erasure_key = load_keyring(world.settings.signing_keys_secret,
                               pipeline.session.client("secretsmanager")).erasure_key
    now = pipeline.clock()
    Suppression(address(1), "marketing", reason="unsubscribe", suppressed_at=now - 10).save()
    Suppression(address(2), "all", reason="complaint", suppressed_at=now - 10).save()
    Suppression(erased_address(address(3), erasure_key), "all", reason="hard_bounce", suppressed_at=now - 10).save()
    # Erased after the campaign was created: its audience was on its way, and the erasure stops it.
    Suppression(erased_address(address(4), erasure_key), "all", reason="erased", suppressed_at=now + 5).save()
    Suppression(address(5), "transactional", reason="manual", suppressed_at=now - 10).save()  # not marketing's
    reads = []
    world.dynamodb.meta.events.register("before-call.dynamodb.BatchGetItem", lambda **_: reads.append(1))
    world.start("careful")

    world.run_control()

    sent_to = {body["to"] for body in world.queued()}
    assert sent_to == {address(n) for n in range(120)} - {address(n) for n in (1, 2, 3, 4)}
    assert world.get("careful").counts["suppressed"] == 4 and world.get("careful").counts["queued"] == 116
    keys_per_recipient = 2 * 2  # (the address, its erased form) x (marketing, all)
    assert len(reads) == sum(math.ceil(page * keys_per_recipient / 100) for page in (100, 20))


def test_the_backlog_bound_comes_from_the_marketing_rate(world):
    world.account.answer["MaxSendRate"] = 50
    assert world.ctx.backlog_bound() == int(50 * 0.7 * 120)  # SES's rate x marketing's share x 120 s
    configured = replace(world.ctx, settings=replace(world.settings, max_send_rate=100.0), limiter=None)
    assert configured.backlog_bound() == int(100 * 0.7 * 120)  # the deploy config's rate, where it sets one
    world.account.answer["MaxSendRate"] = 5
    assert replace(world.ctx, limiter=None).backlog_bound() == 1_000  # at least a thousand


def test_at_the_backlog_bound_the_run_stops_and_hands_on_later(world, pipeline):
    world.account.answer["MaxSendRate"] = 1  # the bound: 1,000 messages
    sqs, url = pipeline.sqs, pipeline.queue_url(MARKETING_SEND)
    for _ in range(0, 700, 10):  # already waiting to be sent
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "{}"} for i in range(10)])
    world.create("paced", 1_000)
    world.start("paced")

    world.run_one()

    assert world.depth(MARKETING_INBOUND) == 300  # up to the bound, not past it
    assert world.get("paced").position == 300 and world.get("paced").state == "running"
    assert world.control_records() == []
    assert world.depth(resources.CAMPAIGN_QUEUE, "ApproximateNumberOfMessagesDelayed") == 1  # back in 30 s


def test_outside_its_window_the_campaign_waits_for_the_next_one(world, pipeline):
    now = pipeline.clock()
    window = Window.parse("02:00-04:00", "UTC")
    if window.contains(now):
        pipeline.now[0] = now = window.end_after(now) + 60
    world.create("nightly", 150, window=window)
    world.start("nightly")

    world.run_control()

    assert world.get("nightly").state == "waiting" and world.depth(MARKETING_INBOUND) == 0
    scheduler = pipeline.session.client("scheduler")
    name, = [schedule["Name"] for schedule in scheduler.list_schedules(GroupName=world.settings.schedule_group)[
        "Schedules"] if schedule["Name"].startswith("campaign-nightly-")]
    detail = scheduler.get_schedule(GroupName=world.settings.schedule_group, Name=name)
    assert detail["ScheduleExpression"] == f"at({_utc(window.next_start(now))})"
    target = json.loads(detail["Target"]["Input"])
    assert target["QueueUrl"] == world.settings.campaign_queue_url
    assert [e["event"] for e in announced(pipeline)] == ["campaign.waiting"]

    # The schedule fires at the window's start; the window closes after the first page of the run.
    pipeline.now[0] = window.next_start(now)
    pipeline.sqs.send_message(QueueUrl=target["QueueUrl"], MessageBody=target["MessageBody"])
    closes = window.end_after(pipeline.now[0])

    def budget():
        if world.get("nightly").position:  # after the first page: the window has closed
            pipeline.now[0] = closes + 1
        return PLENTY_MS

    world.run_control(budget)

    assert world.get("nightly").state == "waiting" and world.depth(MARKETING_INBOUND) == 100
    assert [e["event"] for e in announced(pipeline)] == ["campaign.started", "campaign.waiting"]


def _utc(at: float) -> str:
    return datetime.fromtimestamp(math.ceil(at), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def test_a_pause_stops_the_run_at_the_next_page_and_the_send_stage_holds_what_is_queued(world, pipeline):
    world.create("paused", 300)
    world.start("paused")

    def pause_after_the_first_page():
        if world.get("paused").position == 100 and world.get("paused").state == "running":
            world.move("paused", "paused")
        return PLENTY_MS

    world.run_control(pause_after_the_first_page)

    campaign = world.get("paused")
    assert campaign.state == "paused" and campaign.position == 100
    assert world.control_records() == []  # no hand-on: resuming starts it again
    assert [e["event"] for e in announced(pipeline)] == ["campaign.started"]  # (the pause is the CLI's to announce)
    assert world.depth(MARKETING_INBOUND) == 200  # and the page handed on as the pause came

    pipeline.run_render()
    pipeline.run_send()

    assert pipeline.ses.sends == []
    assert world.depth(MARKETING_SEND, "ApproximateNumberOfMessagesDelayed") > 0  # waiting on their queue


def test_the_send_stage_sees_a_pause_within_its_cache_time(world, pipeline):
    world.create("cached", 1)
    world.move("cached", "running")
    gate = CampaignGate(world.dynamodb, world.settings.campaigns_table, pipeline.clock)
    assert gate.verdict("cached") == "send" and gate.verdict("not-postlines") == "send"

    world.move("cached", "paused")
    pipeline.now[0] += 10
    assert gate.verdict("cached") == "send"  # as read 10 s ago
    pipeline.now[0] += 21
    assert gate.verdict("cached") == "hold"
    world.move("cached", "cancelled")
    pipeline.now[0] += 31
    assert gate.verdict("cached") == "drop"


def test_the_send_stage_holds_a_running_campaigns_emails_outside_its_window_until_it_opens(world, pipeline):
    window = Window.parse("02:00-04:00", "UTC")
    pipeline.now[0] = window.next_start(pipeline.clock()) - 600  # ten minutes before it opens
    world.create("windowed", 1, window=window)
    world.move("windowed", "running")
    gate = CampaignGate(world.dynamodb, world.settings.campaigns_table, pipeline.clock)

    assert gate.verdict("windowed") == "hold" and gate.hold_seconds("windowed") == 600  # back as it opens
    pipeline.now[0] += 600
    assert gate.verdict("windowed") == "send"
    pipeline.now[0] = window.end_after(pipeline.clock())
    assert gate.verdict("windowed") == "hold" and gate.hold_seconds("windowed") == 900  # SQS's longest delay


def test_a_cancelled_campaigns_queued_emails_are_dropped_and_counted_once(world, pipeline):
    world.create("dropped", 150)
    world.start("dropped")
    left = iter([PLENTY_MS, 1_000])  # one page, then handed on
    world.run_one(lambda: next(left))
    pipeline.run_render()
    world.move("dropped", "cancelled")
    sqs, url = pipeline.sqs, pipeline.queue_url(MARKETING_SEND)
    copies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages"):
        copies += [m["Body"] for m in batch]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(batch)])
    for body in copies + copies[:10]:  # and ten of them delivered twice
        sqs.send_message(QueueUrl=url, MessageBody=body)
    updates = []
    world.dynamodb.meta.events.register("before-parameter-build.dynamodb.UpdateItem",
                                        lambda params, **_: updates.append(params["TableName"]))
    send = pipeline.send_context(dynamodb=world.dynamodb)
    batches = []
    while results := pipeline.run_send(send):
        batches += results

    assert pipeline.ses.sends == []
    statuses = [world.dynamodb.get_item(TableName=world.settings.messages_table, Key={
        "message_id": {"S": message_id_for(rid)}})["Item"]["status"]["S"] for rid in ids_of("dropped", 100)]
    assert set(statuses) == {CANCELLED}
    assert world.get("dropped").counts["cancelled"] == 100  # the copies are not counted again
    with_cancelled = [b for b in batches if any(o.result == CANCELLED for o in b.outcomes.values())]
    assert updates.count(world.settings.campaigns_table) == len(with_cancelled)  # once per batch
    assert world.run_control() == 1 and world.depth(MARKETING_INBOUND) == 0  # its hand-on does nothing now


def test_calls_per_recipient_stay_within_a_quarter(world, pipeline):
    world.create("frugal", 1_000)
    calls = Counter()
    ctx = world.ctx
    for service in (ctx.dynamodb, ctx.sqs, ctx.s3, ctx.scheduler, ctx.events, ctx.secrets):
        service.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
    world.start("frugal")

    world.run_control()

    assert world.get("frugal").counts["queued"] == 1_000
    assert calls["SendMessageBatch"] == 100 and calls["UpdateItem"] == 10 + 2  # checkpoints, and two moves
    assert sum(calls.values()) / 1_000 <= 0.25, calls
    assert calls["GetQueueAttributes"] <= 2 * 10  # the two marketing queues, at most once a page
