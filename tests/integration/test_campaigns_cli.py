"""``postline campaigns`` run as an operator runs it, against moto's AWS holding the local stack's resources and the
sample templates (the ``pipeline`` fixture): what ``create`` uploads, writes and starts, what it refuses (and that
a refusal creates nothing), and how ``list``, ``show``, ``plan``, ``pause``, ``resume`` and ``cancel`` read and move a
campaign and say what they did."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from postline.campaigns import store
from postline.limiter import HEADROOM
from postline_cli import campaigns, rate
from postline_cli.local import resources
from postline_cli.main import cli
from postline_cli.target import Target
from tests.integration.conftest import ROOT, Clock, SesAccount

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
TABLE = resources.TABLES["POSTLINE_CAMPAIGNS_TABLE"]
SCHEDULER_ROLE = "arn:aws:iam::123456789012:role/postline-scheduler"
CONFIG_VARIABLES = (rate.RATE_VARIABLE, rate.QUOTA_VARIABLE, rate.SHARE_VARIABLE, rate.WARMUP_VARIABLE)
EXAMPLE = json.loads((ROOT / "templates" / "newsletter" / "example.json").read_text())
ISSUE = {key: value for key, value in EXAMPLE.items() if key not in ("name", "intro")}  # what every recipient gets
AUDIENCE = """email,name,intro
ada@example.com,Ada,Hello Ada
Grace@Example.com,Grace,Hello Grace
not-an-address,Nobody,Hi
ada@EXAMPLE.com,Ada again,Hi again
linus@example.com,Linus,
"""


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class Operator:
    """The deployment as the CLI sees it (moto, the test's clock, an SES account with the test's figures) and the
    operator's commands."""

    def __init__(self, pipeline, monkeypatch, tmp_path):
        self.pipeline, self.tmp_path = pipeline, tmp_path
        self.dynamodb, self.s3 = pipeline.session.client("dynamodb"), pipeline.session.client("s3")
        self.scheduler = pipeline.session.client("scheduler")
        self.clock, self.ses = Clock(T0), SesAccount(rate=14, quota=50_000)
        marketing = pipeline.queue_url(resources.INBOUND_QUEUES["marketing"])
        where = Target(None, dict(resources.TABLES), {"POSTLINE_INBOUND_QUEUE_URL_MARKETING": marketing},
                       resources.SIGNING_SECRET, resources.CLAIM_CHECK_BUCKET, resources.SCHEDULE_GROUP,
                       SCHEDULER_ROLE, resources.EVENT_BUS)
        for variable in CONFIG_VARIABLES:
            monkeypatch.delenv(variable, raising=False)
        monkeypatch.setattr(campaigns, "target", lambda: where)
        monkeypatch.setattr(campaigns, "now", lambda: self.clock.at)
        monkeypatch.setattr(campaigns, "_client",
                            lambda service: self.ses if service == "sesv2" else pipeline.session.client(service))
        monkeypatch.setattr(rate, "target", lambda: where)  # (`rate status`, to compare the plan's figures with)
        monkeypatch.setattr(rate, "_dynamodb", lambda: self.dynamodb)
        monkeypatch.setattr(rate, "_sesv2", lambda: self.ses)
        monkeypatch.setattr(rate, "now", lambda: self.clock.at)

    def file(self, text: str, name: str = "audience.csv") -> str:
        path = self.tmp_path / name
        path.write_text(text)
        return str(path)

    def postline(self, *args: str):
        return CliRunner().invoke(cli, list(args))

    def ok(self, *args: str):
        result = self.postline(*args)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return json.loads(result.stdout) if "--json" in args else result.stdout

    def refused(self, *args: str, code: int = 1) -> str:
        """The one line on stderr of a command that must fail."""
        result = self.postline(*args)
        assert result.exit_code == code, (result.stdout, result.stderr)
        assert "Traceback" not in result.output and result.stderr.count("\n") == 1, result.stderr
        return result.stderr.strip()

    def create(self, name: str, *args: str, audience: str = AUDIENCE, data: dict = ISSUE):
        return self.ok("campaigns", "create", name, "--template", "newsletter", "--audience", self.file(audience),
                       "--data", json.dumps(data), "--json", *args)

    def campaign(self, name: str) -> store.Campaign | None:
        return store.get(self.dynamodb, TABLE, name)

    def audience_lines(self, name: str) -> list[dict]:
        body = self.s3.get_object(Bucket=resources.CLAIM_CHECK_BUCKET, Key=f"campaigns/{name}/audience.jsonl")["Body"]
        return [json.loads(line) for line in body.read().decode().splitlines()]

    def uploaded_keys(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=resources.CLAIM_CHECK_BUCKET, Prefix="campaigns/")
        return [item["Key"] for item in listing.get("Contents", [])]

    def control_messages(self) -> list[dict]:
        url = self.pipeline.queue_url(resources.CAMPAIGN_QUEUE)
        received = []
        while batch := self.pipeline.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            received += [json.loads(message["Body"]) for message in batch]
            for message in batch:
                self.pipeline.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return received

    def schedules(self) -> list[dict]:
        summaries = self.scheduler.list_schedules(GroupName=resources.SCHEDULE_GROUP)["Schedules"]
        return [self.scheduler.get_schedule(Name=s["Name"], GroupName=resources.SCHEDULE_GROUP) for s in summaries]

    def campaign_events(self) -> list[tuple[str, str]]:
        return [(event["detail-type"], event["detail"]["detail"]["campaign"]) for event in self.pipeline.app_events()
                if event["detail-type"].startswith("campaign.")]

    def hand_on(self, name: str, recipients: int, **counts: int) -> None:
        """What the fan-out records after handing ``recipients`` more on."""
        campaign = self.campaign(name)
        assert store.checkpoint(self.dynamodb, TABLE, name, seen_version=campaign.version, offset=campaign.offset + 1,
                                position=campaign.position + recipients, counts=counts, now=self.clock.at)


@pytest.fixture
def operator(pipeline, monkeypatch, tmp_path):
    return Operator(pipeline, monkeypatch, tmp_path)


# ---------------------------------------------------------------- create
def test_create_checks_the_audience_uploads_the_valid_recipients_and_starts_at_once(operator):
    view = operator.create("june-news")

    assert view["audience"] == {
        "rows": 5, "valid": 2, "invalid": 2, "duplicates": 1, "missing_data": 1, "problems": [
            {"line": 4, "reason": view["audience"]["problems"][0]["reason"]},
            {"line": 6, "reason": "missing template data: intro"}]}
    assert view["audience"]["problems"][0]["reason"].startswith("invalid address")
    assert operator.audience_lines("june-news") == [
        {"email": "ada@example.com", "data": {"name": "Ada", "intro": "Hello Ada"}},
        {"email": "Grace@example.com", "data": {"name": "Grace", "intro": "Hello Grace"}}]
    campaign = operator.campaign("june-news")
    assert (campaign.state, campaign.template, campaign.data, campaign.start_at) == (
        "scheduled", "newsletter", ISSUE, T0)
    assert (campaign.audience_key, campaign.audience_rows, campaign.position) == (
        "campaigns/june-news/audience.jsonl", 2, 0)
    object_size = operator.s3.head_object(Bucket=resources.CLAIM_CHECK_BUCKET, Key=campaign.audience_key)
    assert campaign.audience_bytes == object_size["ContentLength"]
    assert (campaign.counts["invalid"], campaign.counts["duplicate"]) == (2, 1)
    assert campaign.history == [{"state": "scheduled", "at": T0}]
    # "now": the CLI hands the campaign function its first run itself
    assert operator.control_messages() == [{"campaign_id": "june-news", "version": 0}]
    assert operator.schedules() == []
    assert operator.campaign_events() == [("campaign.scheduled", "june-news")]


def test_create_prints_the_counts_and_the_first_problems_with_their_lines(operator):
    text = operator.ok("campaigns", "create", "june-news", "--template", "newsletter", "--audience",
                       operator.file(AUDIENCE), "--data", json.dumps(ISSUE))
    lines = text.splitlines()
    assert lines[0] == ("audience: 5 rows: 2 valid, 2 invalid (1 of them missing template data), 1 duplicate")
    assert lines[1].startswith("  line 4: invalid address")
    assert lines[2] == "  line 6: missing template data: intro"
    assert lines[-1] == "campaign june-news: 2 recipients, starting now"


def test_create_at_a_later_time_schedules_the_start_and_starts_nothing_yet(operator):
    text = operator.ok("campaigns", "create", "june-news", "--template", "newsletter", "--audience",
                       operator.file(AUDIENCE), "--data", json.dumps(ISSUE), "--at", "2027-01-16T03:00:00+01:00",
                       "--window", "02:00-06:00", "--timezone", "Europe/Berlin")

    assert text.splitlines()[-1] == ("campaign june-news: 2 recipients, starts 2027-01-16T02:00:00.000Z, "
                                     "sending 02:00-06:00 Europe/Berlin")
    campaign = operator.campaign("june-news")
    assert campaign.start_at == epoch("2027-01-16T02:00:00+00:00")
    assert campaign.window.as_dict() == {"start": "02:00", "end": "06:00", "timezone": "Europe/Berlin"}
    [schedule] = operator.schedules()
    assert schedule["ScheduleExpression"] == "at(2027-01-16T02:00:00)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["Target"]["RoleArn"] == SCHEDULER_ROLE
    assert json.loads(schedule["Target"]["Input"]) == {
        "QueueUrl": operator.pipeline.queue_url(resources.CAMPAIGN_QUEUE),
        "MessageBody": json.dumps({"campaign_id": "june-news", "version": 0}, separators=(",", ":"))}
    assert operator.control_messages() == []


def test_a_jsonl_audience_keeps_its_values_as_json(operator):
    audience = "\n".join(json.dumps(row) for row in [
        {"email": "ada@example.com", "data": {"name": "Ada", "intro": "Hi", "articles": EXAMPLE["articles"][:1]}},
        {"email": "grace@example.com", "name": "Grace", "intro": "Hello"}]) + "\n"
    view = operator.ok("campaigns", "create", "june-news", "--template", "newsletter", "--audience",
                       operator.file(audience, "people.jsonl"), "--data", json.dumps(ISSUE), "--json")
    assert (view["audience"]["valid"], view["audience"]["invalid"]) == (2, 0)
    assert operator.audience_lines("june-news")[0]["data"]["articles"] == EXAMPLE["articles"][:1]


def test_a_dry_run_reports_and_plans_but_creates_nothing(operator):
    text = operator.ok("campaigns", "create", "june-news", "--template", "newsletter", "--audience",
                       operator.file(AUDIENCE), "--data", json.dumps(ISSUE), "--dry-run", "--plan")
    lines = text.splitlines()
    assert lines[0].startswith("audience: 5 rows: 2 valid")
    assert lines[-2] == "plan: finishes today 08:01 UTC (rate)"
    assert lines[-1] == "dry run: nothing was created"
    assert operator.campaign("june-news") is None
    assert operator.uploaded_keys() == [] and operator.control_messages() == [] and operator.schedules() == []
    assert operator.campaign_events() == []


@pytest.mark.parametrize(("args", "says"), [
    (("--template", "nope"), "unknown template 'nope'"),
    (("--template", "welcome"), "template 'welcome' is a transactional template: a campaign sends marketing "
                                "templates only"),
    (("--at", "2027-01-15T07:59:00Z"), "--at '2027-01-15T07:59:00Z' is in the past"),
    (("--at", "2027-01-16T03:00:00"), "--at '2027-01-16T03:00:00' has no offset"),
    (("--at", "tomorrow"), "--at 'tomorrow' is not a time"),
    (("--window", "2-6"), "--window: the window '2-6' is not HH:MM-HH:MM"),
    (("--window", "02:00-06:00", "--timezone", "Mars/Olympus_Mons"), "--timezone: unknown time zone"),
    (("--data", "[1, 2]"), "--data must be a JSON object"),
])
def test_bad_options_are_refused_in_one_line_and_create_nothing(operator, args, says):
    options = {"--template": "newsletter", "--data": json.dumps(ISSUE)}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    line = operator.refused("campaigns", "create", "june-news", "--audience", operator.file(AUDIENCE),
                            *[part for pair in options.items() for part in pair], code=2)
    assert line.startswith("error: " + says), line
    assert operator.campaign("june-news") is None
    assert operator.uploaded_keys() == [] and operator.control_messages() == [] and operator.schedules() == []


@pytest.mark.parametrize(("name", "audience", "says"), [
    ("June News", AUDIENCE, "'June News' is not a campaign name"),
    ("june-news", "email,name,intro\n", "error: audience.csv has no valid recipient: nothing to send"),
    ("june-news", "email,name,intro\nnobody,Nobody,Hi\n,Empty,Hi\n",
     "error: audience.csv has no valid recipient: nothing to send"),
    ("june-news", "name,intro\nAda,Hi\n", "error: --audience audience.csv: the first row has no email column"),
])
def test_a_bad_name_or_an_audience_without_a_valid_recipient_creates_nothing(operator, name, audience, says):
    line = operator.refused("campaigns", "create", name, "--template", "newsletter", "--audience",
                            operator.file(audience), "--data", json.dumps(ISSUE), code=2)
    assert says in line
    assert operator.uploaded_keys() == [] and operator.control_messages() == []
    assert store.list_all(operator.dynamodb, TABLE) == []


def test_a_name_in_use_is_refused_and_its_campaign_left_as_it_was(operator):
    operator.create("june-news")
    operator.control_messages()
    line = operator.refused("campaigns", "create", "june-news", "--template", "newsletter", "--audience",
                            operator.file("email,name,intro\nzed@example.com,Zed,Hi\n"), "--data", json.dumps(ISSUE))
    assert line == "error: a campaign named 'june-news' exists already: choose another name"
    assert [row["email"] for row in operator.audience_lines("june-news")] == ["ada@example.com", "Grace@example.com"]
    assert operator.campaign("june-news").audience_rows == 2
    assert operator.control_messages() == []


# ---------------------------------------------------------------- list, show
def test_list_and_show_say_where_each_campaign_stands(operator):
    operator.create("june-news")
    operator.clock.at = T0 + 60
    operator.create("july-news", "--at", "2027-02-01T02:00:00Z", "--window", "02:00-06:00")
    store.move(operator.dynamodb, TABLE, "june-news", "running", now=T0 + 90)
    operator.hand_on("june-news", 1, queued=1)

    listed = operator.ok("campaigns", "list", "--json")
    assert [(c["campaign"], c["state"], c["progress"]["position"], c["progress"]["rows"]) for c in listed] == [
        ("june-news", "running", 1, 2), ("july-news", "scheduled", 0, 2)]
    assert listed[1]["window"] == {"start": "02:00", "end": "06:00", "timezone": "UTC"}

    operator.clock.at = T0 + 120
    shown = operator.ok("campaigns", "show", "june-news", "--json")
    assert (shown["state"], shown["state_since"], shown["start_at"]) == (
        "running", "2027-01-15T08:01:30.000Z", "2027-01-15T08:00:00.000Z")
    assert shown["progress"] == {"position": 1, "rows": 2, "percent": 50.0}
    assert shown["counts"] == {"queued": 1, "suppressed": 0, "duplicate": 1, "rejected": 0, "cancelled": 0,
                               "invalid": 2}
    assert shown["history"] == [{"state": "scheduled", "at": "2027-01-15T08:00:00.000Z"},
                                {"state": "running", "at": "2027-01-15T08:01:30.000Z"}]
    assert shown["plan"]["recipients"] == 1  # what is left
    assert shown["plan"]["start_at"] == "2027-01-15T08:02:00.000Z"  # from now

    text = operator.ok("campaigns", "show", "june-news")
    assert "progress  1 of 2 handed on (50 %)" in text
    assert "plan      finishes today 08:03 UTC (rate)" in text

    assert "june-news" in operator.ok("campaigns", "list") and "july-news" in operator.ok("campaigns", "list")
    assert operator.refused("campaigns", "show", "ghost") == (
        "error: there is no campaign named 'ghost': `postline campaigns list` shows them")


# ---------------------------------------------------------------- pause, resume, cancel
def test_pause_and_resume_before_the_start_keep_the_start_schedule(operator):
    operator.create("june-news", "--at", "2027-01-15T09:00:00Z")
    assert operator.ok("campaigns", "pause", "june-news").startswith("campaign june-news paused at 0 of 2")
    assert operator.campaign("june-news").state == "paused"

    assert operator.ok("campaigns", "resume", "june-news") == (
        "campaign june-news resumed: starts 2027-01-15T09:00:00.000Z\n")
    assert operator.campaign("june-news").state == "scheduled"
    assert operator.control_messages() == [] and len(operator.schedules()) == 1
    assert operator.campaign_events() == [("campaign.scheduled", "june-news"), ("campaign.paused", "june-news"),
                                          ("campaign.scheduled", "june-news")]


def test_resume_after_the_start_runs_on_from_the_checkpoint(operator):
    operator.create("june-news")
    operator.control_messages()
    store.move(operator.dynamodb, TABLE, "june-news", "running", now=T0 + 1)
    operator.hand_on("june-news", 1, queued=1)
    operator.ok("campaigns", "pause", "june-news")
    assert operator.refused("campaigns", "pause", "june-news") == (
        "error: campaign 'june-news' is paused: it cannot become paused (from paused: scheduled, running, cancelled)")

    operator.clock.at = T0 + 600
    assert operator.ok("campaigns", "resume", "june-news") == "campaign june-news resumed: running from 1 of 2\n"
    campaign = operator.campaign("june-news")
    assert (campaign.state, campaign.state_at, campaign.version) == ("running", T0 + 600, 1)
    assert operator.control_messages() == [{"campaign_id": "june-news", "version": 1}]
    assert [name for name, _ in operator.campaign_events()] == ["campaign.scheduled", "campaign.paused",
                                                                "campaign.resumed"]
    assert operator.refused("campaigns", "resume", "june-news") == (
        "error: campaign 'june-news' is running, not paused: there is nothing to resume")


def test_cancel_says_how_many_were_never_handed_on_and_show_adds_those_dropped_later(operator):
    operator.create("june-news")
    store.move(operator.dynamodb, TABLE, "june-news", "running", now=T0 + 1)
    operator.hand_on("june-news", 1, queued=1)

    assert operator.ok("campaigns", "cancel", "june-news").startswith(
        "campaign june-news cancelled: 1 of 2 recipients were never handed on")
    store.add_counts(operator.dynamodb, TABLE, "june-news", {"cancelled": 1})  # the send stage drops the queued one
    shown = operator.ok("campaigns", "show", "june-news", "--json")
    assert (shown["state"], shown["never_sent"], shown["counts"]["cancelled"]) == ("cancelled", 2, 1)
    assert "plan" not in shown
    assert operator.refused("campaigns", "cancel", "june-news") == (
        "error: campaign 'june-news' is cancelled: it cannot become cancelled (from cancelled: nothing)")
    assert operator.refused("campaigns", "plan", "june-news") == (
        "error: campaign 'june-news' is cancelled: it has nothing left to send")


def test_a_campaign_done_handing_on_can_still_hold_or_drop_its_queued_emails(operator):
    operator.create("june-news")
    store.move(operator.dynamodb, TABLE, "june-news", "running", now=T0 + 1)
    operator.hand_on("june-news", 2, queued=2)
    store.move(operator.dynamodb, TABLE, "june-news", "done", now=T0 + 2)

    # done: every recipient is on the marketing queue, not yet every email sent: a pause still holds them there
    assert operator.refused("campaigns", "resume", "june-news").startswith("error: campaign 'june-news' is done")
    operator.ok("campaigns", "pause", "june-news")
    assert operator.campaign("june-news").state == "paused"
    assert operator.ok("campaigns", "cancel", "june-news").startswith(
        "campaign june-news cancelled: 0 of 2 recipients were never handed on")
    assert operator.refused("campaigns", "cancel", "june-news") == (
        "error: campaign 'june-news' is cancelled: it cannot become cancelled (from cancelled: nothing)")
    assert operator.refused("campaigns", "cancel", "ghost") == (
        "error: there is no campaign named 'ghost': `postline campaigns list` shows them")


# ---------------------------------------------------------------- plan
def many(count: int) -> str:
    return "email,name,intro\n" + "".join(f"reader{n}@example.com,Reader {n},Hi\n" for n in range(count))


def test_the_plan_walks_the_windows_at_marketings_share_of_the_rate_postline_uses(operator):
    operator.create("big", "--window", "02:00-02:02", audience=many(3_000))
    marketing_rate = 14 * (1 - HEADROOM) * 0.7  # 9.604/s: 1,152 in each two-minute window

    view = operator.ok("campaigns", "plan", "big", "--json")
    assert (view["recipients"], view["windows"], view["binding"]) == (3_000, 3, "window")
    assert [span["emails"] for span in view["spans"]] == [1_152, 1_152, 696]
    assert view["spans"][0]["start"] == "2027-01-16T02:00:00.000Z"
    finish = epoch("2027-01-18T02:00:00+00:00") + 696 / marketing_rate
    assert view["finish_at"] == datetime.fromtimestamp(finish, timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    status = operator.ok("rate", "status", "--json")  # the figures `rate status` shows
    assert (view["inputs"]["rate"], view["inputs"]["marketing_share"]) == (
        status["usable_rate"], status["marketing_rate_share"])
    assert operator.ok("campaigns", "plan", "big").splitlines()[0] == (
        "3,000 recipients: 3 windows: finishes Mon 02:02 UTC (window)")


def test_the_plan_waits_for_the_quota_when_the_day_is_used_up(operator):
    operator.ses = SesAccount(rate=14, quota=3_000, sent=2_000)  # marketing may use 2,700: 700 left today
    operator.create("big", audience=many(1_000))
    view = operator.ok("campaigns", "plan", "big", "--json")
    assert view["binding"] == "quota"
    assert [span["emails"] for span in view["spans"]] == [700, 300]
    assert view["spans"][1]["start"] == "2027-01-16T08:00:00.000Z"  # 24 hours after it could first send


def test_the_plan_holds_to_the_warm_up_cap_of_marketings_pool(operator, monkeypatch):
    monkeypatch.setenv(rate.WARMUP_VARIABLE, json.dumps(
        {"start": "2027-01-15", "pools": {"marketing": ["marketing"]}, "curve": [[1, 400], [5, 2_000]]}))
    operator.create("big", audience=many(1_000))
    view = operator.ok("campaigns", "plan", "big", "--json")
    assert view["binding"] == "warm-up"
    assert view["inputs"]["warmup"][0] == 400
    assert view["spans"][0]["emails"] == 400
    assert view["spans"][1]["start"] == "2027-01-16T00:00:00.000Z"
