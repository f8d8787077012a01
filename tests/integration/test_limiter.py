"""The shared limiter against DynamoDB (moto), with a clock the test moves: several containers (Limiter instances
sharing a table), reserve, quota, warm-up, slow-down."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws

from postline.limiter import (
    QUOTA,
    QUOTA_SHARE,
    RATE,
    RECOVERY_PER_SECOND,
    THROTTLE_FACTOR,
    WARMUP,
    Limiter,
    WarmupPlan,
    Windows,
)
from postline_cli.local.resources import TABLES, create_rate_limits_table
from tests.integration.conftest import Clock
from tests.integration.conftest import SesAccount as Ses

TABLE = TABLES["POSTLINE_RATE_LIMITS_TABLE"]
T0 = 1_800_000_000.0  # a window's start


@pytest.fixture
def dynamodb(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_rate_limits_table(client, set())
        yield client


def limiter(dynamodb, clock, ses=None, **kw) -> Limiter:
    return Limiter(dynamodb, ses or Ses(), TABLE, clock=clock, **kw)


def test_many_containers_taking_slots_at_once_never_get_more_than_the_rate(dynamodb, monkeypatch):
    # moto's DynamoDB is not safe across threads; DynamoDB runs each request in isolation, as the local endpoint
    # makes moto do (aws_endpoint.serialise_dynamodb): the same here, so that the conditions are what is tested.
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    handle = DynamoHandler.call_action

    def isolated(self):
        with lock:
            return handle(self)

    monkeypatch.setattr(DynamoHandler, "call_action", isolated)
    clock = Clock(T0)
    containers = [limiter(dynamodb, clock) for _ in range(8)]
    granted: list[float] = []
    lock = threading.Lock()

    def send_function(container: Limiter) -> None:
        for _ in range(6):
            slots = container.take("critical", 10).slots
            with lock:
                granted.extend(slots)

    threads = [threading.Thread(target=send_function, args=(c,)) for c in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    windows = Windows.for_rate(50)
    per_window = Counter(int(slot) for slot in granted)
    # Every slot went to one sender only, no window holds more than its capacity, and critical mail got every slot
    # within its three-window horizon: all the rate, never more.
    assert len(set(granted)) == len(granted)
    assert max(per_window.values()) == windows.capacity
    assert len(granted) == 3 * windows.capacity + 1  # windows T0..T0+2, and T0+3's first slot (at the horizon)


def test_marketing_holds_only_its_share_of_the_coming_slots_and_critical_gets_the_rest_at_once(dynamodb):
    clock = Clock(T0)
    newsletter, reset = limiter(dynamodb, clock), limiter(dynamodb, clock)
    held = []
    while grant := newsletter.take("marketing", 10).slots:
        held += grant
    assert len(held) == 35 and max(held) < T0 + 0.7  # 70 % of the next second's 49 slots
    assert newsletter.take("marketing", 10).waiting_for == RATE
    critical = reset.take("critical", 10).slots
    assert len(critical) == 10 and max(critical) < T0 + 1  # the reserve, in this very second


def test_a_newsletter_alone_uses_the_whole_rate(dynamodb):
    clock = Clock(T0)
    containers = [limiter(dynamodb, clock) for _ in range(2)]
    sent = []
    for step in range(100):  # ten seconds, each container asking every 0.1 s
        clock.at = T0 + step / 10
        for container in containers:
            sent += container.take("marketing", 10).slots
    in_full_seconds = [slot for slot in sent if slot < T0 + 10]
    assert len(in_full_seconds) == 10 * Windows.for_rate(50).capacity  # 98 % of 50/s: all but the headroom


def test_acquire_waits_for_the_slots_the_rate_holds_back(dynamodb):
    clock = Clock(T0)
    first, second = limiter(dynamodb, clock), limiter(dynamodb, clock)
    while first.take("marketing", 10).slots:
        pass

    def sleep(seconds: float) -> None:
        clock.at += seconds

    grant = second.acquire("marketing", 10, wait_until=T0 + 10, sleep=sleep)
    assert len(grant.slots) == 10 and grant.waiting_for is None
    assert clock.at > T0 and min(grant.slots) >= T0 + 35 / 49  # after the slots the first one holds


def test_as_the_quota_runs_low_marketing_stops_first_then_transactional(dynamodb):
    clock = Clock(T0)
    ses = Ses(quota=1000, sent=895)
    announced = []
    container = limiter(dynamodb, clock, ses, on_quota_low=lambda level, quota: announced.append(level))
    marketing = container.take("marketing", 10)
    assert len(marketing.slots) == 5 and marketing.waiting_for == QUOTA  # 90 % of 1,000, 895 used
    assert container.held_back("marketing").waiting_for == QUOTA
    assert (len(container.take("transactional", 10).slots) == 10
            and container.held_back("transactional").waiting_for is None)
    assert len(container.take("critical", 10).slots) == 10
    # Another container, later, sees the same: the alert for this level was raised once for the deployment.
    clock.at += 1
    other = limiter(dynamodb, clock, Ses(quota=1000, sent=975),
                    on_quota_low=lambda level, quota: announced.append(level))
    assert other.held_back("transactional").waiting_for == QUOTA  # 97 %
    assert len(other.take("critical", 10).slots) == 10
    assert announced == [1, 2]
    assert limiter(dynamodb, clock, Ses(quota=1000, sent=975),
                   on_quota_low=lambda level, quota: announced.append(level)).held_back("marketing").waiting_for
    assert announced == [1, 2]  # level 2 already announced: not again


def test_the_quota_is_counted_between_reads_of_ses(dynamodb):
    clock = Clock(T0)
    container = limiter(dynamodb, clock, Ses(quota=100, sent=80))
    assert len(container.take("marketing", 10).slots) == 10  # going to SES: counted before SES is asked again
    assert container.held_back("marketing").waiting_for == QUOTA
    assert QUOTA_SHARE["marketing"] * 100 == 90


def test_a_warmup_cap_holds_mail_until_the_next_day(dynamodb):
    clock = Clock(datetime(2026, 12, 3, 23, 59, 0, tzinfo=timezone.utc).timestamp())
    plan = WarmupPlan.from_json('{"start": "2026-12-03", "pools": {"marketing": ["marketing"]}, '
                                '"curve": [[1, 25], [2, 50]]}')
    container = limiter(dynamodb, clock, warmup=plan)
    taken = []
    for _ in range(4):
        grant = container.take("marketing", 10)
        taken += grant.slots
        clock.at += 1
    assert len(taken) == 25 and grant.waiting_for == WARMUP
    assert 50 < grant.retry_after <= 60  # until midnight UTC
    assert container.held_back("marketing").waiting_for == WARMUP  # known: no write needed to know it
    clock.at = datetime(2026, 12, 4, 0, 0, 1, tzinfo=timezone.utc).timestamp()  # day 2: 50
    assert container.held_back("marketing").waiting_for is None
    assert len(container.take("marketing", 10).slots) == 10


def test_the_days_first_batch_never_exceeds_the_warmup_cap(dynamodb):
    plan = WarmupPlan.from_json('{"start": "2027-01-15", "pools": {"transactional": ["critical", "transactional"]}, '
                                '"curve": [[1, 10], [2, 20]]}')
    container = limiter(dynamodb, Clock(T0), warmup=plan)  # T0 is on 2027-01-15, day 1: a cap of 10
    grant = container.take("transactional", 12)
    assert len(grant.slots) == 9 and grant.waiting_for == WARMUP  # 97 % of 10, the rest kept for critical mail
    assert len(container.take("critical", 12).slots) == 1


def test_a_throttle_slows_every_container_down_and_the_rate_recovers(dynamodb):
    clock = Clock(T0)
    throttled, other = limiter(dynamodb, clock), limiter(dynamodb, clock)
    assert other.factor() == 1.0
    throttled.throttled(3, for_the_rate=True, for_the_quota=False)
    throttled.throttled(2, for_the_rate=True, for_the_quota=False)  # the same moment: lowered once
    assert throttled.factor() == pytest.approx(THROTTLE_FACTOR)
    clock.at += 2  # the other container reads the shared slow-down every few seconds
    assert other.factor() == pytest.approx(THROTTLE_FACTOR + 2 * RECOVERY_PER_SECOND)
    slots = other.take("critical", 100).slots
    assert len([s for s in slots if int(s) == int(clock.at)]) <= Windows.for_rate(50, other.factor()).capacity
    clock.at += 60
    assert other.factor() == 1.0
