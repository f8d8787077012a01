"""``postline dashboard``'s pages answered without a browser (``WebApp``), over moto's in-process AWS holding a small
deployment: counted emails in each stream, campaigns in several states, an application's own campaign, queues with
a backlog and a dead letter. The figures must be the CLI's (``postline stats --json``), and the buttons must move
the campaign as ``postline campaigns pause`` / ``resume`` do."""
from __future__ import annotations

import json
import re
from html import unescape

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from postline.analytics import alerts as alerting
from postline.analytics.counters import Fact, count
from postline.campaigns import store
from postline_cli import campaigns
from postline_cli.analytics import reading
from postline_cli.analytics.tables import number, percent
from postline_cli.local import resources
from postline_cli.main import cli
from postline_cli.target import Target
from postline_cli.web.dashboard import dashboard_routes
from postline_cli.web.dashboard_data import Sources
from postline_cli.web.server import WebApp, static_routes

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
HOUR, DAY = 3600, 86400
MOTO_SQS = "https://sqs.us-east-1.amazonaws.com"
HOST = {"host": "127.0.0.1:8025"}
CAMPAIGNS_TABLE = resources.TABLES["POSTLINE_CAMPAIGNS_TABLE"]
STATS_TABLE = resources.TABLES["POSTLINE_STATS_TABLE"]


class Clock:
    def __init__(self, at: float):
        self.at = at

    def __call__(self) -> float:
        return self.at


def facts(kind: str, messages: list[str], at: float, stream: str, template: str, campaign: str | None = None,
          **more) -> list[Fact]:
    return [Fact(kind, message, at, stream, template, campaign, **more) for message in messages]


class World:
    """A small deployment in moto, as the CLI sees it (its target, clients and clock), and the dashboard over it."""

    def __init__(self, session, monkeypatch):
        self.session, self.clock = session, Clock(T0)
        self.dynamodb, self.sqs = session.client("dynamodb"), session.client("sqs")
        for name in resources.all_queue_names():
            self.sqs.create_queue(QueueName=name)
        resources.create_stats_table(self.dynamodb, set())
        resources.create_campaigns_table(self.dynamodb, set())
        session.client("events").create_event_bus(Name=resources.EVENT_BUS)
        self.alarm_topic = session.client("sns").create_topic(Name=resources.ALARM_TOPIC)["TopicArn"]
        marketing = self.queue_url(resources.INBOUND_QUEUES["marketing"])
        self.where = Target(None, dict(resources.TABLES), {"POSTLINE_INBOUND_QUEUE_URL_MARKETING": marketing},
                            resources.SIGNING_SECRET, resources.CLAIM_CHECK_BUCKET, resources.SCHEDULE_GROUP,
                            "arn:aws:iam::123456789012:role/postline-scheduler", resources.EVENT_BUS)
        self.sources = Sources(self.where, self.dynamodb, self.sqs, self.clock)
        # the CLI's own commands (stats, campaigns) read the same deployment at the same time
        for module in (reading, campaigns):
            monkeypatch.setattr(module, "target", lambda: self.where)
            monkeypatch.setattr(module, "_client", session.client)
            monkeypatch.setattr(module, "now", self.clock)

    def queue_url(self, name: str) -> str:
        return resources.queue_url(MOTO_SQS, name)

    def count(self, *batches: list[Fact]) -> None:
        for batch in batches:
            count(self.dynamodb, STATS_TABLE, batch, self.clock())

    def campaign(self, name: str, state: str, *, start_at: float, created: float, rows: int = 10,
                 position: int = 0, moved: list[tuple[str, float]] = ()) -> None:
        history = [{"state": to, "at": at} for to, at in [(store.SCHEDULED, created), *moved]]
        store.create(self.dynamodb, CAMPAIGNS_TABLE, store.Campaign(
            name, "newsletter", f"campaigns/{name}/audience.jsonl", start_at=start_at, state=state,
            audience_rows=rows, position=position, state_at=history[-1]["at"], history=history,
            created_at=created, updated_at=history[-1]["at"]))

    def record(self, name: str) -> store.Campaign | None:
        return store.get(self.dynamodb, CAMPAIGNS_TABLE, name)

    def app(self, **options) -> WebApp:
        return WebApp([*dashboard_routes(self.sources, 7, where="the test deployment", **options),
                       *static_routes()], 8025)

    def postline_json(self, *args: str):
        result = CliRunner().invoke(cli, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def populate(self) -> None:
        """Emails of each stream over the last days, three campaigns and an application's own, queues with work."""
        june = [f"june-{i}" for i in range(6)]
        self.count(facts("sent", june, T0 - 2 * HOUR, "marketing", "newsletter", "june-news"),
                   facts("delivered", june[:5], T0 - HOUR, "marketing", "newsletter", "june-news"),
                   facts("hard_bounced", june[5:], T0 - HOUR, "marketing", "newsletter", "june-news",
                         reason="General"),
                   facts("opened", june[:2], T0 - 30 * 60, "marketing", "newsletter", "june-news", first=True),
                   facts("machine_opened", june[2:3], T0 - 30 * 60, "marketing", "newsletter", "june-news",
                         first=True),
                   facts("clicked", june[:1], T0 - 20 * 60, "marketing", "newsletter", "june-news", first=True,
                         link="https://example.com/spring?u=1", first_on_link=True),
                   facts("sent", ["reset-1", "reset-2"], T0 - HOUR, "critical", "password-reset"),
                   facts("delivered", ["reset-1", "reset-2"], T0 - HOUR, "critical", "password-reset"),
                   facts("sent", ["welcome-1", "welcome-2", "welcome-3"], T0 - 2 * DAY, "transactional", "welcome"),
                   facts("delivered", ["welcome-1", "welcome-2"], T0 - 2 * DAY, "transactional", "welcome"),
                   facts("complained", ["welcome-2"], T0 - 2 * DAY, "transactional", "welcome"),
                   facts("sent", ["old-1"], T0 - 10 * DAY, "transactional", "welcome"),  # outside the 7 days
                   facts("sent", ["promo-1", "promo-2"], T0 - 3 * DAY, "marketing", "promo", "app-promo"))
        self.campaign("june-news", store.RUNNING, start_at=T0 - 3 * HOUR, created=T0 - DAY, position=6,
                      moved=[(store.RUNNING, T0 - 3 * HOUR)])
        self.campaign("july-news", store.SCHEDULED, start_at=T0 + DAY, created=T0 - 6 * DAY)
        self.campaign("may-news", store.CANCELLED, start_at=T0 - 5 * DAY, created=T0 - 6 * DAY,
                      moved=[(store.RUNNING, T0 - 5 * DAY), (store.CANCELLED, T0 - 4 * DAY)])
        for body in ("one", "two"):
            self.sqs.send_message(QueueUrl=self.queue_url("postline-send-marketing"), MessageBody=body)
        self.sqs.send_message(QueueUrl=self.queue_url("postline-critical-dlq"), MessageBody="failed five times")


@pytest.fixture
def world(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        built = World(boto3.session.Session(region_name="us-east-1"), monkeypatch)
        built.populate()
        yield built


# -- reading the page ------------------------------------------------------------------------------------------------
_FIGURE = re.compile(r'data-figure="([^"]+)">([^<]*)<')


def figures(html: str) -> dict[str, str]:
    """Each figure on a page (``data-figure`` path -> its text)."""
    return {path: unescape(text) for path, text in _FIGURE.findall(html)}


def at_path(data, path: str):
    for part in path.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def shown(path: str, value) -> str:
    """A figure as the pages show it: a count with thousands separators, a rate as a percentage."""
    return percent(value) if ".rates." in f".{path}" else number(value)


def get(app: WebApp, path: str):
    return app.respond("GET", path, HOST)


def post(app: WebApp, path: str, **form: str):
    body = "&".join(f"{key}={value}" for key, value in {"csrf_token": app.csrf_token, **form}.items())
    return app.respond("POST", path, {**HOST, "content-type": "application/x-www-form-urlencoded"}, body.encode())


def summary(app: WebApp) -> dict:
    response = get(app, "/api/summary.json")
    assert response.status == 200 and response.content_type.startswith("application/json")
    return json.loads(response.body)


def row_of(html: str, attribute: str, name: str) -> str:
    return re.search(rf'<tr {attribute}="{re.escape(name)}"[^>]*>.*?</tr>', html, re.S).group()


# -- the figures -----------------------------------------------------------------------------------------------------
def test_the_streams_are_what_postline_stats_prints_today_and_over_the_days(world):
    data = summary(world.app())
    assert data["streams"] == world.postline_json("stats")
    assert data["streams"] == world.postline_json("stats", "--days", "7")
    today = world.postline_json("stats", "--days", "1")
    assert data["today"] == {stream: view["totals"] for stream, view in today.items()}
    assert data["streams"]["transactional"]["totals"]["sent"] == 3  # the send 10 days ago is not in the 7 days
    assert data["today"]["marketing"]["sent"] == 6 and data["today"]["transactional"]["sent"] == 0


def test_the_campaigns_are_what_postline_stats_prints_with_their_records_state(world):
    data = summary(world.app())
    assert [row["name"] for row in data["campaigns"]] == ["june-news", "app-promo", "may-news", "july-news"]
    listed = {row["name"]: row for row in world.postline_json("stats", "--campaigns")}
    for row in data["campaigns"]:
        if row["name"] in listed:
            assert (row["totals"], row["rates"], row["state"]) == (
                listed[row["name"]]["totals"], listed[row["name"]]["rates"], listed[row["name"]]["state"])
    june = data["campaigns"][0]
    assert (june["state"], june["progress"], june["rates"]["bounce"]) == (
        "running", {"position": 6, "rows": 10, "percent": 60.0}, 1 / 6)
    promo = data["campaigns"][1]
    assert (promo["state"], promo["external"], promo["totals"]["sent"], promo["can_pause"]) == (None, True, 2, False)
    july = data["campaigns"][3]
    assert (july["state"], july["totals"]["sent"], july["last_counted"]) == ("scheduled", 0, None)


def test_every_figure_on_the_page_is_the_one_in_the_json(world):
    app = world.app()
    page, data = get(app, "/"), summary(app)
    # the server's own headers and policy (no inline style or script)
    assert page.status == 200 and page.headers == {}
    shown_figures = figures(page.body)
    assert len(shown_figures) > 60
    for path, text in shown_figures.items():
        assert text == shown(path, at_path(data, path)), path
    june = row_of(page.body, "data-campaign", "june-news")
    assert ">1.00%<" not in june and f">{percent(1 / 6)}<" in june


def test_the_queues_show_their_backlog_and_a_dead_letter_is_highlighted(world):
    app = world.app()
    queues = {queue["queue"]: queue for queue in summary(app)["queues"]}
    assert queues["postline-send-marketing"] == {"queue": "postline-send-marketing", "dead_letter": False,
                                                 "messages": 2, "in_flight": 0, "delayed": 0}
    assert queues["postline-critical-dlq"]["messages"] == 1 and queues["postline-critical-dlq"]["dead_letter"]
    # every postline queue (postline.queue_names), and nothing else the account has
    assert len(queues) == 18 and "postline-app-events" not in queues
    page = get(app, "/").body
    assert 'class=alarm' in row_of(page, "data-queue", "postline-critical")
    assert 'class=alarm' not in row_of(page, "data-queue", "postline-send-marketing")


def test_a_queue_the_stack_does_not_have_is_left_out(world):
    world.sqs.delete_queue(QueueUrl=world.queue_url("postline-ses-send-events"))  # the SNS route has none
    world.sqs.delete_queue(QueueUrl=world.queue_url("postline-ses-send-events-dlq"))
    queues = [queue["queue"] for queue in summary(world.app())["queues"]]
    assert len(queues) == 16 and "postline-ses-send-events" not in queues


# -- pause and resume ------------------------------------------------------------------------------------------------
def buttons(html: str, name: str) -> list[str]:
    return re.findall(r'<button class="(\w+)"', row_of(html, "data-campaign", name))


def test_each_campaign_has_the_button_its_state_allows(world):
    page = get(world.app(), "/").body
    assert buttons(page, "june-news") == ["pause"]  # running
    assert buttons(page, "july-news") == ["pause"]  # scheduled
    assert buttons(page, "may-news") == []  # cancelled
    assert buttons(page, "app-promo") == []  # no record: nothing holds its emails until an alert pauses it


def test_the_pause_button_pauses_and_the_resume_button_runs_it_on_from_its_checkpoint(world):
    app = world.app()
    response = post(app, "/campaigns/june-news/pause", back="/")
    assert (response.status, response.headers["Location"]) == (303, "/")
    assert world.record("june-news").state == store.PAUSED
    assert buttons(get(app, "/").body, "june-news") == ["resume"]

    world.clock.at += 60
    response = post(app, "/campaigns/june-news/resume", back="/campaigns/june-news")
    assert (response.status, response.headers["Location"]) == (303, "/campaigns/june-news")
    record = world.record("june-news")
    assert record.state == store.RUNNING
    assert [entry["state"] for entry in record.history][-2:] == ["paused", "running"]
    control = world.sqs.receive_message(QueueUrl=world.queue_url(resources.CAMPAIGN_QUEUE))["Messages"]
    assert [json.loads(message["Body"])["campaign_id"] for message in control] == ["june-news"]  # a run from there
    moves = summary(app)["moves"]
    assert [(move["campaign"], move["state"]) for move in moves[:2]] == [("june-news", "running"),
                                                                       ("june-news", "paused")]


def test_a_button_the_state_no_longer_allows_says_why_and_moves_nothing(world):
    app = world.app()
    response = post(app, "/campaigns/may-news/pause")
    assert response.status == 409
    assert "campaign &#x27;may-news&#x27; is cancelled: it cannot become paused" in response.body
    response = post(app, "/campaigns/june-news/resume")
    assert response.status == 409 and "is running, not paused" in response.body
    assert world.record("june-news").state == store.RUNNING


def test_a_pause_without_the_pages_token_is_refused(world):
    app = world.app()
    response = app.respond("POST", "/campaigns/june-news/pause", HOST, b"back=/")
    assert response.status == 403 and world.record("june-news").state == store.RUNNING


def test_back_goes_only_to_the_dashboard_or_the_campaigns_page(world):
    response = post(world.app(), "/campaigns/july-news/pause", back="https://elsewhere.example/")
    assert response.headers["Location"] == "/"


# -- alerts ----------------------------------------------------------------------------------------------------------
def test_an_alert_shows_firing_and_its_campaign_paused_with_a_resume_button(world):
    world.count(facts("sent", [f"x-{i}" for i in range(20)], T0 - HOUR, "marketing", "newsletter", "june-news"),
                facts("hard_bounced", [f"x-{i}" for i in range(3)], T0 - 60, "marketing", "newsletter", "june-news"))
    context = alerting.AlertContext(world.dynamodb, world.session.client("sns"), world.session.client("events"),
                                    STATS_TABLE, CAMPAIGNS_TABLE, world.alarm_topic, resources.EVENT_BUS,
                                    alerting.Thresholds(0.05, 0.001, 10, 24), world.clock)
    assert [alert.metric for alert in alerting.check(context, ["campaign#june-news", "stream#marketing"])] == [
        "bounce", "bounce"]
    app = world.app()
    data = summary(app)
    assert {(a["kind"], a["name"], a["metric"], a["state"], a["changed_at"]) for a in data["alerts"]} == {
        ("campaign", "june-news", "bounce", "firing", "2027-01-15T08:00:00.000Z"),
        ("stream", "marketing", "bounce", "firing", "2027-01-15T08:00:00.000Z")}
    page = get(app, "/").body
    june = row_of(page, "data-campaign", "june-news")
    assert "class=alarm" in june and "bounce alert" in june and buttons(page, "june-news") == ["resume"]
    assert (data["moves"][0]["campaign"], data["moves"][0]["state"]) == ("june-news", "paused")


# -- one campaign ----------------------------------------------------------------------------------------------------
def test_a_campaigns_page_shows_the_figures_of_postline_stats_and_its_charts(world):
    app = world.app()
    response = get(app, "/campaigns/june-news")
    assert response.status == 200
    data = json.loads(get(app, "/api/campaigns/june-news.json").body)
    assert data["stats"] == world.postline_json("stats", "--campaign", "june-news")
    assert data["campaign"]["state"] == "running" and data["can_pause"] and not data["can_resume"]
    for path, text in figures(response.body).items():
        assert text == shown(path, at_path(data, path)), path
    charts = re.findall(r'<img class="chart" src="([^"]+)"', response.body)
    assert charts == [f"/campaigns/june-news/charts/{name}.svg" for name in
                      ("timeline", "funnel", "opens", "links", "reasons")]
    for chart in charts:
        svg = get(app, chart)
        assert svg.status == 200 and svg.content_type.startswith("image/svg+xml")
        assert svg.body.startswith("<svg") and "<script" not in svg.body
        assert svg.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    funnel = get(app, "/campaigns/june-news/charts/funnel.svg").body
    assert re.findall(r'<desc class="value">(\d+)</desc>', funnel) == ["1", "2", "5", "6"]  # clicked ... sent


def test_a_campaign_with_nothing_to_draw_for_links_and_reasons_leaves_those_charts_out(world):
    page = get(world.app(), "/campaigns/july-news").body
    assert re.findall(r'/charts/(\w+)\.svg', page) == ["timeline", "funnel", "opens"]


def test_an_unknown_campaign_or_chart_is_not_found(world):
    app = world.app()
    assert get(app, "/campaigns/nobody").status == 404
    assert get(app, "/api/campaigns/nobody.json").status == 404
    assert get(app, "/campaigns/june-news/charts/pie.svg").status == 404


def test_an_applications_campaign_with_an_odd_name_has_its_page(world):
    world.count(facts("sent", ["odd-1"], T0 - HOUR, "marketing", "promo", "Promo/2027 #1"))
    app = world.app()
    assert '<a href="/campaigns/Promo%2F2027%20%231">Promo/2027 #1</a>' in get(app, "/").body
    page = get(app, "/campaigns/Promo%2F2027%20%231")
    assert page.status == 200 and "Campaign Promo/2027 #1" in page.body


# -- the page around the figures -------------------------------------------------------------------------------------
def test_the_page_loads_only_its_own_files_and_refreshes_itself(world):
    page = get(world.app(), "/").body
    assert '<script src="/static/dashboard.js" defer></script>' in page
    assert re.search(r"<script>|\sstyle=|\son\w+=", page) is None
    script = get(world.app(), "/static/dashboard.js")
    assert script.status == 200 and "fetch(window.location.href" in script.body.decode()


def test_the_outbox_is_linked_and_served_only_for_the_local_stack(world, tmp_path):
    assert 'href="/outbox"' not in get(world.app(), "/").body
    local = Sources(Target("http://127.0.0.1:4566", *[getattr(world.where, field) for field in (
        "tables", "queue_urls", "signing_keys_secret", "claim_check_bucket", "schedule_group", "scheduler_role_arn",
        "event_bus")]), world.dynamodb, world.sqs, world.clock)
    app = WebApp(dashboard_routes(local, 7, outbox=tmp_path), 8025)
    assert 'href="/outbox"' in get(app, "/").body
    assert get(app, "/outbox").status == 200
