"""Counters (postline.analytics): each event counted once, per campaign, template and stream, one write per row per
batch; rates; alerts that fire once per crossing and pause the campaign (moto)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from postline.analytics import alerts as alerting
from postline.analytics.counters import Fact, count
from postline.analytics.stats import names, rates, read
from postline.batch import QueueRecord
from postline.campaigns import store
from postline.campaigns.gate import HOLD, SEND, CampaignGate
from postline.contract import message_id_for
from postline.engagement import EngagementContext, follow_click, record_open
from postline.events import apply_events
from postline.tokens import CLICK, OPEN

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "ses"
DAY = 86400
HUMAN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def stats(pipeline, kind: str, name: str, *, hours: int = 48) -> dict:
    now = pipeline.clock()
    return read(pipeline.session.client("dynamodb"), pipeline.settings.stats_table, kind, name,
                since=now - hours * 3600, until=now + 3 * 3600).as_dict()


def fact(kind: str, message: str, at: float, **names) -> Fact:
    return Fact(kind, message, at, names.pop("stream", "marketing"), names.pop("template", "newsletter"),
                names.pop("campaign", "june"), **names)


def newsletters(pipeline, *addresses: str, campaign: str = "june") -> list[str]:
    """Send a newsletter to each address (rendered and sent, no SES event applied yet); their message ids."""
    data = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
    for address in addresses:
        pipeline.enqueue("marketing", {"template": "newsletter", "to": address, "data": data, "id": address,
                                       "campaign": campaign})
    pipeline.run_render()
    pipeline.run_send()
    return [message_id_for(address) for address in addresses]


def ses_event(pipeline, name: str, message_id: str, at: float) -> str:
    """A fixture event (tests/fixtures/ses) about the email postline sent as ``message_id``, at ``at``."""
    send = next(s for s in pipeline.ses.sends if s["tags"]["postline_message_id"] == message_id)
    event = json.loads((FIXTURES / name).read_text())
    event["mail"]["tags"] = {name: [value] for name, value in send["tags"].items()}
    event["mail"]["messageId"] = send["MessageId"]
    detail = {"Bounce": "bounce", "Delivery": "delivery", "Complaint": "complaint"}[event["eventType"]]
    event[detail]["timestamp"] = datetime.fromtimestamp(at, timezone.utc).isoformat().replace("+00:00", "Z")
    return json.dumps(event)


def apply(pipeline, *bodies: str):
    records = [QueueRecord(f"r{i}", body, "postline-ses-events", pipeline.clock(), 1) for i, body in enumerate(bodies)]
    result = apply_events(records, pipeline.events_context())
    assert not result.failed
    return result


def test_an_event_delivered_three_times_and_out_of_order_counts_once(pipeline):
    first, second = newsletters(pipeline, "ada@example.com", "grace@example.com")
    at = pipeline.clock() + 60
    deliver = ses_event(pipeline, "delivery.json", first, at)
    bounce = ses_event(pipeline, "bounce-permanent-two-recipients.json", second, at)
    complain = ses_event(pipeline, "complaint-two-recipients.json", first, at + 3600)
    apply(pipeline, complain, deliver)  # the complaint first, as SES may deliver them: the delivery still counts
    apply(pipeline, deliver, bounce, deliver)  # the delivery again, twice in one batch
    apply(pipeline, bounce, complain, deliver)  # and everything a third time
    june = stats(pipeline, "campaign", "june")
    totals = june["totals"]
    assert (totals["sent"], totals["delivered"], totals["hard_bounced"], totals["complained"]) == (2, 1, 1, 1)
    assert june["reasons"]["hard_bounced"] == {"General": 1} and sum(june["reasons"]["complained"].values()) == 1
    # per template and per stream too, on the events' own hours
    assert stats(pipeline, "template", "newsletter")["totals"]["delivered"] == 1
    complained_hour = datetime.fromtimestamp(at + 3600, timezone.utc).strftime("%Y-%m-%dT%H")
    assert stats(pipeline, "stream", "marketing")["hours"][complained_hour]["complained"] == 1


def test_soft_bounces_count_each_bounce_once(pipeline):
    (message_id,) = newsletters(pipeline, "ada@example.com")
    first = ses_event(pipeline, "bounce-transient.json", message_id, pipeline.clock() + 10)
    second = json.loads(ses_event(pipeline, "bounce-transient.json", message_id, pipeline.clock() + 60))
    second["bounce"]["feedbackId"] = "another-bounce"
    apply(pipeline, first, first, json.dumps(second))
    apply(pipeline, json.dumps(second))
    assert stats(pipeline, "campaign", "june")["totals"]["soft_bounced"] == 2


def test_a_batch_adds_to_its_cell_in_one_write(pipeline):
    dynamodb = pipeline.session.client("dynamodb")
    calls = []

    class Recording:
        def update_item(self, **request):
            calls.append(request["Key"])
            return dynamodb.update_item(**request)

    now = pipeline.clock()
    count(Recording(), pipeline.settings.stats_table, [fact("sent", f"m{i}", now) for i in range(10)], now)
    assert len(calls) == 1  # ten emails of one campaign, template and stream in one hour: one cell
    assert stats(pipeline, "campaign", "june")["totals"]["sent"] == 10
    assert stats(pipeline, "template", "newsletter")["totals"]["sent"] == 10
    assert stats(pipeline, "stream", "marketing")["totals"]["sent"] == 10


def engagement_context(pipeline) -> EngagementContext:
    return EngagementContext(pipeline.settings, dynamodb=pipeline.session.client("dynamodb"),
                             events=pipeline.session.client("events"),
                             secrets=pipeline.session.client("secretsmanager"), clock=pipeline.clock)


def test_opens_and_clicks_count_totals_and_unique_apart_from_machines(pipeline):
    first, second = newsletters(pipeline, "ada@example.com", "grace@example.com")
    pipeline.now[0] += 3600  # an hour after sending: opens by people, not prefetches
    ctx = engagement_context(pipeline)
    for message_id, agents in ((first, [HUMAN, HUMAN, HUMAN, "Mozilla/5.0"]), (second, [HUMAN])):
        for agent in agents:
            record_open(ctx, ctx.keys.sign(OPEN, message_id), agent)
    link = "https://example.com/spring?utm_source=june&email=ada@example.com"
    for message_id, target in ((first, link), (second, link), (first, "https://example.com/other"), (first, link)):
        assert follow_click(ctx, ctx.keys.sign(CLICK, message_id, target), HUMAN) == target
    june = stats(pipeline, "campaign", "june")
    totals = june["totals"]
    assert (totals["opened"], totals["opened_unique"]) == (4, 2)
    assert (totals["machine_opened"], totals["machine_opened_unique"]) == (1, 1)
    assert (totals["clicked"], totals["clicked_unique"]) == (4, 2)
    # per link, without the query string (which may carry a person's data); unique per recipient and link
    assert june["links"] == [{"url": "https://example.com/spring", "clicked": 3, "clicked_unique": 2},
                             {"url": "https://example.com/other", "clicked": 1, "clicked_unique": 1}]
    assert "ada@example.com" not in json.dumps(june)


def test_a_transactional_emails_links_are_counted_but_never_listed(pipeline):
    now = pipeline.clock()
    count(pipeline.session.client("dynamodb"), pipeline.settings.stats_table, [
        fact("clicked", "r1", now, stream="critical", template="reset", campaign=None, first=True,
             link="https://example.com/reset/secret-token", first_on_link=True)], now)
    reset = stats(pipeline, "template", "reset")
    assert reset["totals"]["clicked_unique"] == 1 and reset["links"] == []


def test_rates_at_the_edges():
    nothing = rates({})
    assert all(value is None for value in nothing.values())
    all_bounced = rates({"sent": 10, "hard_bounced": 10})
    assert all_bounced["bounce"] == 1.0 and all_bounced["delivery"] == 0.0 and all_bounced["human_open"] is None
    some = rates({"sent": 200, "delivered": 190, "complained": 1, "opened_unique": 50, "clicked_unique": 10,
                  "unsubscribed": 2})
    assert some["complaint"] == 0.005 and some["click_to_open"] == 0.2
    assert some["click_through"] == pytest.approx(10 / 190) and some["unsubscribe"] == pytest.approx(2 / 190)


def test_campaigns_and_templates_with_counts_are_listed_latest_first(pipeline):
    now = pipeline.clock()
    table, dynamodb = pipeline.settings.stats_table, pipeline.session.client("dynamodb")
    count(dynamodb, table, [fact("sent", "m1", now - 2 * DAY)], now)
    count(dynamodb, table, [fact("sent", "m2", now, campaign="july", template="welcome")], now)
    period = {"since": now - 3 * DAY, "until": now}
    assert [name for name, _ in names(dynamodb, table, "campaign", **period)] == ["july", "june"]
    assert [name for name, _ in names(dynamodb, table, "template", **period)] == ["welcome", "newsletter"]
    assert [name for name, _ in names(dynamodb, table, "campaign", since=now - DAY, until=now)] == ["july"]


# --- alerts ---------------------------------------------------------------------------------------------------


def alert_context(pipeline, **thresholds) -> alerting.AlertContext:
    settings = pipeline.settings
    values = {"bounce": 0.05, "complaint": 0.001, "min_sample": 100, "window_hours": 24, **thresholds}
    return alerting.AlertContext(pipeline.session.client("dynamodb"), pipeline.session.client("sns"),
                                 pipeline.session.client("events"), settings.stats_table, settings.campaigns_table,
                                 settings.alarm_topic_arn, settings.event_bus, alerting.Thresholds(**values),
                                 pipeline.clock)


def send_and_bounce(pipeline, sent: int, bounced: int, *, campaign="june"):
    """Count ``sent`` more emails of the campaign, and ``bounced`` more hard bounces (as the pipeline would)."""
    now = pipeline.clock()
    dynamodb, table = pipeline.session.client("dynamodb"), pipeline.settings.stats_table
    count(dynamodb, table, [fact("sent", f"{campaign}-{i}", now - 60, campaign=campaign) for i in range(sent)], now)
    count(dynamodb, table, [fact("hard_bounced", f"{campaign}-b{i}", now - 30, campaign=campaign)
                            for i in range(bounced)], now)


def test_ten_emails_never_trigger_an_alert(pipeline):
    send_and_bounce(pipeline, 10, 5)
    assert alerting.check(alert_context(pipeline), ["campaign#june", "stream#marketing"]) == []


def test_an_alert_fires_once_per_crossing_with_its_figures_and_pauses_the_campaign(pipeline):
    dynamodb, settings = pipeline.session.client("dynamodb"), pipeline.settings
    store.create(dynamodb, settings.campaigns_table, store.Campaign(
        "june", "newsletter", "campaigns/june/audience.jsonl", start_at=pipeline.clock() - 600, state=store.RUNNING,
        audience_rows=1000, created_at=pipeline.clock() - 700))
    send_and_bounce(pipeline, 120, 5)  # 4.2 %: under
    ctx = alert_context(pipeline)
    assert alerting.check(ctx, ["campaign#june"]) == []
    send_and_bounce(pipeline, 0, 2)  # 7 of 120: 5.8 %
    raised = alerting.check(ctx, ["campaign#june"])
    assert [(a.metric, a.sent, a.count, round(a.rate, 4), a.paused) for a in raised] == [
        ("bounce", 120, 7, 0.0583, True)]
    assert alerting.check(ctx, ["campaign#june"]) == []  # still over: the same crossing
    assert store.get(dynamodb, settings.campaigns_table, "june").state == store.PAUSED
    events = pipeline.app_events()
    alerts = [e["detail"]["detail"] for e in events if e["detail-type"] == "campaign.alert"]
    assert [(a["name"], a["metric"], a["count"], a["sent"]) for a in alerts] == [("june", "bounce", 7, 120)]
    assert "campaign.paused" in [e["detail-type"] for e in events]
    # under again (more sent), then over again: a second crossing, a second alert
    send_and_bounce(pipeline, 100, 0)
    assert alerting.check(ctx, ["campaign#june"]) == []
    send_and_bounce(pipeline, 0, 20)
    assert [a.metric for a in alerting.check(ctx, ["campaign#june"])] == ["bounce"]


def test_a_campaign_an_application_names_is_held_by_the_send_stage_until_resumed(pipeline):
    dynamodb, settings = pipeline.session.client("dynamodb"), pipeline.settings
    send_and_bounce(pipeline, 100, 1, campaign="app-promo")
    count(dynamodb, settings.stats_table, [fact("complained", "app-promo-1", pipeline.clock(), campaign="app-promo")],
          pipeline.clock())
    raised = alerting.check(alert_context(pipeline), ["campaign#app-promo"])
    assert [(a.metric, a.paused) for a in raised] == [("complaint", True)]
    held = store.get(dynamodb, settings.campaigns_table, "app-promo")
    assert held.external and held.state == store.PAUSED
    gate = CampaignGate(dynamodb, settings.campaigns_table, pipeline.clock, cache_seconds=0)
    assert gate.verdict("app-promo") == HOLD
    store.move(dynamodb, settings.campaigns_table, "app-promo", store.RUNNING, now=pipeline.clock())
    assert gate.verdict("app-promo") == SEND


def test_a_streams_alert_pauses_nothing(pipeline):
    dynamodb, settings = pipeline.session.client("dynamodb"), pipeline.settings
    now = pipeline.clock()
    count(dynamodb, settings.stats_table, [fact("sent", f"t{i}", now, stream="transactional", template="welcome",
                                                campaign=None) for i in range(100)], now)
    count(dynamodb, settings.stats_table, [fact("hard_bounced", f"t{i}", now, stream="transactional",
                                                template="welcome", campaign=None) for i in range(10)], now)
    raised = alerting.check(alert_context(pipeline), ["stream#transactional", "template#welcome"])
    assert [(a.kind, a.name, a.metric, a.paused) for a in raised] == [("stream", "transactional", "bounce", False)]
    assert store.list_all(dynamodb, settings.campaigns_table) == []
    assert [e["detail-type"] for e in pipeline.app_events()] == ["stream.alert"]


def test_the_send_stage_and_ses_events_count_what_happened(pipeline):
    """The whole path: sends counted by the send stage, deliveries and bounces by the SES events, per stream."""
    data = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
    for i, address in enumerate(["ada@example.com", "bounce@simulator.amazonses.com", "grace@example.com"]):
        pipeline.enqueue("marketing", {"template": "newsletter", "to": address, "data": data, "id": f"n{i}",
                                       "campaign": "spring"})
    pipeline.drain()
    pipeline.publish_ses_events()
    pipeline.publish_ses_events()  # everything again: nothing counts twice
    spring = stats(pipeline, "campaign", "spring")["totals"]
    assert (spring["sent"], spring["delivered"], spring["hard_bounced"]) == (3, 2, 1)
    # the bounced address is suppressed now: a fourth email to it is counted as suppressed, not sent
    pipeline.enqueue("marketing", {"template": "newsletter", "to": "bounce@simulator.amazonses.com", "data": data,
                                   "id": "n9", "campaign": "spring"})
    pipeline.drain()
    spring = stats(pipeline, "campaign", "spring")["totals"]
    assert (spring["sent"], spring["suppressed"]) == (3, 1)
