"""Open, click and unsubscribe at the library level, against moto: what is recorded and what is refused."""
from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest

from postline.contract import message_id_for
from postline.engagement import (
    EngagementContext,
    follow_click,
    is_machine,
    record_open,
    requested_action,
    resubscribe,
    subscription,
    unsubscribe,
)
from postline.models import EmailEvent, Message, Suppression
from postline.tokens import CLICK, OPEN, UNSUBSCRIBE

ROOT = Path(__file__).resolve().parents[2]
HUMAN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def engagement_context(pipeline) -> EngagementContext:
    """What the endpoint functions build at cold start, on the pipeline's clients and clock."""
    return EngagementContext(pipeline.settings, dynamodb=pipeline.session.client("dynamodb"),
                             events=pipeline.session.client("events"),
                             secrets=pipeline.session.client("secretsmanager"), clock=pipeline.clock)


@pytest.fixture
def sent(pipeline):
    data = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
    pipeline.enqueue("marketing", {"template": "newsletter", "to": "reader@example.com", "data": data, "id": "n1",
                                   "campaign": "june"})
    pipeline.drain()
    pipeline.app_events()  # what sending announced (email.sent): the tests look at what follows
    ctx = engagement_context(pipeline)
    return ctx, message_id_for("n1")


def events(message_id):
    return [(e.type, e.detail) for e in EmailEvent.query(message_id)]


def newsletter(pipeline, to: str, message_id: str) -> None:
    data = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
    pipeline.enqueue("marketing", {"template": "newsletter", "to": to, "data": data, "id": message_id,
                                   "campaign": "june"})
    pipeline.drain()


def unsubscribe_token(pipeline, message_id: str) -> str:
    """The token of the one-click unsubscribe link in the email postline sent."""
    send = next(s for s in pipeline.ses.sends if s["tags"]["postline_message_id"] == message_id)
    mime = email.message_from_bytes(send["Content"]["Raw"]["Data"], policy=email.policy.default)
    return mime["List-Unsubscribe"].split(",")[0].strip(" <>").rsplit("/", 1)[1]


def test_opens_are_recorded_with_the_campaign_and_classified(pipeline, sent):
    ctx, message_id = sent
    token = ctx.keys.sign(OPEN, message_id)
    record_open(ctx, token, HUMAN)  # within seconds of sending: a prefetch
    pipeline.now[0] += 3600
    record_open(ctx, token, HUMAN)
    record_open(ctx, token, "Mozilla/5.0")  # Apple Mail Privacy Protection
    record_open(ctx, "garbage", HUMAN)
    record_open(ctx, ctx.keys.sign(CLICK, message_id, "https://x.example"), HUMAN)  # a click token is no open
    assert sorted(t for t, _ in events(message_id)) == ["machine_opened", "machine_opened", "opened"]
    assert all(detail["campaign"] == "june" for _, detail in events(message_id))


def test_an_open_seconds_after_sending_counts_as_a_prefetch(pipeline):
    """The send stage records when SES took the email; an open within seconds of it is a machine's."""
    data = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
    pipeline.enqueue("marketing", {"template": "newsletter", "to": "quick@example.com", "data": data, "id": "n-q"})
    pipeline.run_render()
    pipeline.run_send()
    message_id = message_id_for("n-q")
    assert Message.get(message_id).sent_at == pipeline.clock()
    ctx = engagement_context(pipeline)
    record_open(ctx, ctx.keys.sign(OPEN, message_id), HUMAN)
    assert [t for t, _ in events(message_id)] == ["machine_opened"]


def test_a_failing_tracking_write_still_serves_the_pixel(pipeline, sent, monkeypatch):
    ctx, message_id = sent

    def unavailable(self, *args, **kwargs):
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(EmailEvent, "save", unavailable)
    record_open(ctx, ctx.keys.sign(OPEN, message_id), HUMAN)  # does not raise
    assert follow_click(ctx, ctx.keys.sign(CLICK, message_id, "https://a.example/x?y=1#z"), HUMAN) == \
        "https://a.example/x?y=1#z"


def test_after_the_record_expires_opens_and_clicks_still_answer_but_are_not_recorded(pipeline, sent):
    ctx, message_id = sent
    Message(message_id).delete()  # what DynamoDB's TTL does after message_ttl_days
    pipeline.now[0] += 3600
    record_open(ctx, ctx.keys.sign(OPEN, message_id), HUMAN)  # does not raise: the pixel is served
    target = "https://shop.example/sale"
    assert follow_click(ctx, ctx.keys.sign(CLICK, message_id, target), HUMAN) == target
    assert events(message_id) == []
    assert pipeline.app_events() == []


def test_clicks_return_only_signed_http_targets(pipeline, sent):
    ctx, message_id = sent
    target = "https://shop.example/π/ünïcode?q=a%20b&x=1#section-2"
    assert follow_click(ctx, ctx.keys.sign(CLICK, message_id, target), HUMAN) == target
    assert follow_click(ctx, ctx.keys.sign(CLICK, message_id, "javascript:alert(1)"), HUMAN) is None
    assert follow_click(ctx, ctx.keys.sign(CLICK, message_id, "//evil.example"), HUMAN) is None
    assert follow_click(ctx, ctx.keys.sign(OPEN, message_id), HUMAN) is None
    recorded = events(message_id)
    assert recorded == [("clicked", {"url": target, "machine": False, "campaign": "june"})]


def test_unsubscribe_is_idempotent_scoped_to_marketing_and_undone_by_resubscribe(pipeline, sent):
    ctx, message_id = sent
    token = ctx.keys.sign(UNSUBSCRIBE, message_id)
    assert subscription(ctx, token).suppressed is False
    for _ in range(2):
        assert unsubscribe(ctx, token, "one-click").suppressed is True
    assert [(s.scope, s.reason) for s in Suppression.query("reader@example.com")] == [("marketing", "unsubscribe")]
    assert [t for t, _ in events(message_id)] == ["unsubscribed"]
    assert resubscribe(ctx, token).suppressed is False
    assert list(Suppression.query("reader@example.com")) == []
    announced = [e for e in pipeline.app_events() if e["detail"]["message_id"] == message_id]
    assert [e["detail-type"] for e in announced] == ["email.unsubscribed"]
    assert announced[0]["detail"]["campaign"] == "june" and announced[0]["detail"]["to"] == "reader@example.com"


def test_resubscribe_never_lifts_a_bounce(pipeline, sent):
    ctx, message_id = sent
    Suppression("reader@example.com", "marketing", reason="hard_bounce", suppressed_at=1.0).save()
    assert resubscribe(ctx, ctx.keys.sign(UNSUBSCRIBE, message_id)).suppressed is True
    assert Suppression.get("reader@example.com", "marketing").reason == "hard_bounce"


def test_invalid_unsubscribe_tokens_change_nothing(pipeline, sent):
    ctx, message_id = sent
    for token in ("", "x.y", ctx.keys.sign(OPEN, message_id), ctx.keys.sign(UNSUBSCRIBE, "m" + "a" * 24)):
        assert unsubscribe(ctx, token, "one-click") is None
    assert list(Suppression.query("reader@example.com")) == []


def test_an_unsubscribe_link_works_after_its_message_record_has_expired(pipeline, sent):
    ctx, message_id = sent
    token = unsubscribe_token(pipeline, message_id)
    Message(message_id).delete()  # what DynamoDB's TTL does after message_ttl_days
    found = subscription(ctx, token)
    assert (found.address, found.suppressed) == (None, False)

    assert unsubscribe(ctx, token, "one-click").suppressed is True
    (kept,) = Suppression.scan()
    assert kept.email.startswith("erased:") and (kept.scope, kept.reason) == ("marketing", "unsubscribe")
    assert "record had expired" in kept.detail
    assert [t for t, _ in events(message_id)] == ["unsubscribed"]
    (announced,) = [e for e in pipeline.app_events() if e["detail"]["message_id"] == message_id]
    assert announced["detail-type"] == "email.unsubscribed" and announced["detail"]["to"] is None

    newsletter(pipeline, "reader@example.com", "n2")  # the next newsletter is not sent to the address
    assert Message.get(message_id_for("n2")).status == "suppressed"
    assert [s["tags"]["postline_message_id"] for s in pipeline.ses.sends] == [message_id]

    assert resubscribe(ctx, token).suppressed is False
    assert list(Suppression.scan()) == []


def test_a_live_link_sees_and_lifts_an_unsubscribe_made_from_an_expired_one(pipeline, sent):
    ctx, old_id = sent
    newsletter(pipeline, "reader@example.com", "n2")
    old_token, new_token = unsubscribe_token(pipeline, old_id), unsubscribe_token(pipeline, message_id_for("n2"))
    Message(old_id).delete()
    unsubscribe(ctx, old_token, "one-click")

    found = subscription(ctx, new_token)  # the newer email's record still knows the address
    assert found.address == "reader@example.com" and found.suppressed is True
    assert unsubscribe(ctx, new_token, "unsubscribe").suppressed is True  # already: nothing written twice
    assert len(list(Suppression.scan())) == 1
    assert resubscribe(ctx, new_token).suppressed is False
    assert list(Suppression.scan()) == []


def test_an_old_link_without_its_subscriber_stops_working_when_the_record_expires(pipeline, sent):
    ctx, message_id = sent
    token = ctx.keys.sign(UNSUBSCRIBE, message_id)  # as postline signed unsubscribe links before they carried it
    assert subscription(ctx, token).address == "reader@example.com"
    Message(message_id).delete()
    assert subscription(ctx, token) is None and unsubscribe(ctx, token, "one-click") is None
    assert list(Suppression.scan()) == []


@pytest.mark.parametrize("body, content_type, action", [
    ("List-Unsubscribe=One-Click", "application/x-www-form-urlencoded", "one-click"),
    ("--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b--\r\n",
     "multipart/form-data; boundary=b", "one-click"),
    ("action=resubscribe", "application/x-www-form-urlencoded", "resubscribe"),
    ("action=unsubscribe", "application/x-www-form-urlencoded", "unsubscribe"),
    ("", "", "unsubscribe"),
])
def test_requested_action(body, content_type, action):
    assert requested_action(body, content_type) == action


@pytest.mark.parametrize("agent, machine", [
    ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", True),
    ("Mozilla/5.0", True), ("", True), ("Barracuda Sentinel (EE)", True), (HUMAN, False),
])
def test_machine_user_agents(agent, machine):
    assert is_machine(agent) is machine
