"""No email address, token, signing secret or message content in any log line at the default level (issue 27).

One full pipeline run on moto, with every log line captured (every record the logging module sees, with all its
fields and any traceback, and whatever reaches stdout and stderr): messages on the three streams, rejected messages
whose bad field holds an address, a suppressed recipient, SES events of every kind, a soft-bounce retry, and the
public HTTP handlers (open, click, unsubscribe) called as API Gateway calls them. Then the captured text is searched
for each recipient's address and local part (any case), the signing keys, each token handed out, and a marker that
only message bodies and data hold."""
from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from postline.batch import QueueRecord
from postline.contract import message_id_for
from postline.engagement import EngagementContext
from postline.events import apply_events
from postline.models import SUPPRESSION_SCOPE_ALL, Message, Suppression
from postline.settings import get_settings
from postline.suppression import suppression_key
from postline_cli.local import resources
from postline_cli.local.http_api import api_event
from postline_cli.local.runner import LambdaContext, load_handler_module
from postline_cli.local.scheduler import run_due_schedules
from postline_cli.publish import load_template_dir, prepare, publish

from .conftest import MOTO_SQS, TRACKING

ROOT = Path(__file__).resolve().parents[2]
MARKER = "Qz7-body-marker-ffa91"  # only ever in message data, so only ever in bodies
# Distinctive local parts (a search for one finds nothing else), some written in mixed case as a sender might.
ADDRESSES = {
    "critical": "Maya.Reset-k81@Example.com",
    "transactional": "priya.welcome-k82@example.com",
    "marketing": "sam.news-k83@example.org",
    "bounced": "bob.bounce-k84@example.net",
    "complained": "carla.complaint-k85@example.net",
    "soft": "dana.softbounce-k86@example.com",
    "suppressed": "erin.suppressed-k87@example.com",
    "crlf": "frank.crlf-k88@example.com",
    "bcc": "grace.bcc-k89@example.com",
    "in_data": "heidi.data-k90@example.com",
    "reply_to": "ivan.replyto-k91@example.com",
    "ses_refused": "judy.refused-k92@example.com",
}


class EveryRecord(logging.Handler):
    """Keeps every record as a text holding all of it: the message, its arguments, every extra field, the
    traceback. Stricter than any formatter, which prints a subset."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = {name: value for name, value in vars(record).items() if name not in ("exc_info", "msg", "args")}
        fields["message"] = record.getMessage()
        if record.exc_info:
            fields["traceback"] = logging.Formatter().formatException(record.exc_info)
        self.lines.append(json.dumps(fields, default=repr, ensure_ascii=False))


@pytest.fixture
def log_lines(monkeypatch):
    """Every record at the default level (INFO, Powertools' default) from every logger, for the test's length."""
    handler = EveryRecord()
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)
    root.addHandler(handler)
    yield handler.lines
    root.removeHandler(handler)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def data_of(template: str, **extra) -> dict:
    return {**json.loads((ROOT / "templates" / template / "example.json").read_text()), **extra}


def send_of(pipeline, message_id: str) -> dict:
    return [s for s in pipeline.ses.sends if s["tags"]["postline_message_id"] == message_id][-1]


def ses_record(pipeline, message_id: str, kind: str, detail: dict) -> QueueRecord:
    send = send_of(pipeline, message_id)
    mail = {"messageId": send["MessageId"], "timestamp": iso(pipeline.clock()), "source": send["FromEmailAddress"],
            "destination": send["Destination"]["ToAddresses"],
            "tags": {name: [value] for name, value in send["tags"].items()}}
    body = {"eventType": kind, "mail": mail, kind[:1].lower() + kind[1:]: {"timestamp": iso(pipeline.clock()),
                                                                          **detail}}
    return QueueRecord(f"{kind}-{message_id}", json.dumps(body), resources.EVENTS_QUEUE, pipeline.clock(), 1)


def links_in(send: dict) -> dict[str, list[str]]:
    mime = email.message_from_bytes(send["Content"]["Raw"]["Data"], policy=email.policy.default)
    html = mime.get_body(("html",)).get_content()
    found = {kind: sorted(set(re.findall(rf"{re.escape(TRACKING)}/{kind}/([A-Za-z0-9_.-]+)", html))) for kind in "ocu"}
    if mime["List-Unsubscribe"]:
        found["u"] += re.findall(r"/u/([A-Za-z0-9_.-]+)>", mime["List-Unsubscribe"])
    return found


def http_call(module, function: str, method: str, kind: str, token: str, body: bytes = b"",
              headers: dict | None = None) -> dict:
    route = f"/{kind}/{{token}}"
    event = api_event(method, f"/{kind}/{token}", {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
                                                   **(headers or {})}, body, route, {"token": token}, "198.51.100.7",
                      method)
    return module.handler(event, LambdaContext(function))


def http_functions(pipeline, monkeypatch) -> dict:
    """The public HTTP functions as Lambda loads them (the local stack's environment), on the pipeline's clients."""
    environment = resources.function_environment(MOTO_SQS, TRACKING)
    environment.pop("AWS_ENDPOINT_URL")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        modules = {name: load_handler_module(name) for name in ("track_open", "track_click", "unsubscribe")}
    finally:
        get_settings.cache_clear()
    for module in modules.values():
        module.engagement = EngagementContext(pipeline.settings, dynamodb=pipeline.session.client("dynamodb"),
                                              events=pipeline.session.client("events"),
                                              secrets=pipeline.session.client("secretsmanager"), clock=pipeline.clock)
    return modules


def signing_secrets(pipeline) -> list[str]:
    document = json.loads(pipeline.session.client("secretsmanager").get_secret_value(
        SecretId=pipeline.settings.signing_keys_secret)["SecretString"])
    keys = [*document["keys"].values(), document["erasure_key"]]
    # As stored, and as the bytes would print (hex, or Python's repr of them).
    return keys + [base64.b64decode(key).hex() for key in keys] + [repr(base64.b64decode(key))[2:-1] for key in keys]


def publish_quoting_template(folder: Path) -> None:
    """A template whose render error quotes the data value it failed on (Python's ``list.index`` does)."""
    folder.mkdir()
    (folder / "template.json").write_text(json.dumps({"stream": "transactional", "subject": "Hello"}))
    (folder / "html.j2").write_text('<p>Plan {{ ["basic", "pro"].index(plan) }}</p>')
    (folder / "example.json").write_text(json.dumps({"plan": "pro"}))
    publish(prepare(load_template_dir(folder), "tests"))


def run_everything(pipeline, monkeypatch, tmp_path) -> list[str]:
    """The whole pipeline once, with every kind of thing that could log a recipient; the tokens handed out."""
    # A first retry later than SQS can delay a message: through a schedule the test fires itself.
    pipeline.settings = pipeline.settings.model_copy(update={"soft_bounce_first_retry_seconds": 1000})
    publish_quoting_template(tmp_path / "quoting")
    Suppression(suppression_key(ADDRESSES["suppressed"]), SUPPRESSION_SCOPE_ALL, reason="manual",
                suppressed_at=pipeline.clock(), source="test").save()
    sends = {
        "critical": ("password-reset", "critical", data_of("password-reset", name=MARKER)),
        "transactional": ("welcome", "transactional", data_of("welcome", name=MARKER)),
        "marketing": ("newsletter", "marketing", data_of("newsletter", name=MARKER)),
        "bounced": ("welcome", "transactional", data_of("welcome", name=MARKER)),
        "complained": ("newsletter", "marketing", data_of("newsletter", intro=MARKER)),
        "soft": ("welcome", "transactional", data_of("welcome", name=MARKER)),
        "suppressed": ("welcome", "transactional", data_of("welcome", name=MARKER)),
    }
    for who, (template, stream, data) in sends.items():
        message = {"template": template, "to": ADDRESSES[who], "data": data, "id": f"privacy-{who}"}
        if who == "transactional":
            message["reply_to"] = ADDRESSES["reply_to"]
        pipeline.enqueue(stream, message)
    rejected = [
        {"template": "welcome", "to": f"{ADDRESSES['crlf']}\r\nBcc: {ADDRESSES['bcc']}", "data": data_of("welcome")},
        {"template": "no-such-template", "to": ADDRESSES["in_data"],
         "data": {"contact": ADDRESSES["in_data"], "note": MARKER}},
        {"template": "welcome", "to": ADDRESSES["in_data"], "data": {"name": MARKER}},  # data missing
        {"template": "welcome", "to": ADDRESSES["in_data"], "data": data_of("welcome", name=[MARKER])},
        {"template": "welcome", "to": ADDRESSES["in_data"], "data": data_of("welcome"), "cc": ADDRESSES["bcc"]},
        {"template": "welcome", "to": ADDRESSES["in_data"], "data": data_of("welcome"),
         "tags": {"who": ADDRESSES["in_data"] + "\n"}},
        {"template": "welcome", "to": f"{MARKER} <{ADDRESSES['in_data']}>", "data": data_of("welcome")},
        {"template": "quoting", "to": ADDRESSES["in_data"], "data": {"plan": f"{MARKER} {ADDRESSES['in_data']}"}},
    ]
    for body in rejected:
        pipeline.enqueue("transactional", body)
    pipeline.enqueue("transactional", f'{{"template": "welcome", "to": "{ADDRESSES["in_data"]}", "data": {{"x": "')
    pipeline.drain()
    pipeline.publish_ses_events(only=("Delivery",))
    # SES's refusals may name the recipient: for good, and for now (the sandbox's unverified recipient).
    for key, refusal, status in (
            ("privacy-refused", f"Illegal address: <{ADDRESSES['ses_refused']}>", "failed"),
            ("privacy-unverified", "Email address is not verified. The following identities failed the check in "
                                   f"region US-EAST-1: {ADDRESSES['ses_refused']}", "rendered")):
        pipeline.enqueue("transactional", {"template": "welcome", "to": ADDRESSES["ses_refused"], "id": key,
                                           "data": data_of("welcome", name=MARKER)})
        pipeline.run_render()
        pipeline.ses.fail_with = [ClientError({"Error": {"Code": "MessageRejected", "Message": refusal}},
                                              "SendEmail")]
        pipeline.run_send()
        assert Message.get(message_id_for(key)).status == status  # "rendered": it waits on its queue

    ids = {who: message_id_for(f"privacy-{who}") for who in sends}
    assert Message.get(ids["suppressed"]).status == "suppressed"
    events = [
        ses_record(pipeline, ids["bounced"], "Bounce", {
            "bounceType": "Permanent", "bounceSubType": "General", "feedbackId": "fb-hard",
            "bouncedRecipients": [{"emailAddress": ADDRESSES["bounced"], "status": "5.1.1", "action": "failed",
                                   "diagnosticCode": f"smtp; 550 5.1.1 <{ADDRESSES['bounced']}>: user unknown"}]}),
        ses_record(pipeline, ids["complained"], "Complaint", {
            "complainedRecipients": [{"emailAddress": ADDRESSES["complained"]}], "feedbackId": "fb-complaint",
            "complaintFeedbackType": "abuse", "userAgent": "Yahoo!-Mail-Feedback/2.0"}),
        ses_record(pipeline, ids["soft"], "Bounce", {
            "bounceType": "Transient", "bounceSubType": "MailboxFull", "feedbackId": "fb-soft",
            "bouncedRecipients": [{"emailAddress": ADDRESSES["soft"], "status": "4.2.2",
                                   "diagnosticCode": f"smtp; 452 4.2.2 <{ADDRESSES['soft']}> mailbox full"}]}),
        ses_record(pipeline, ids["marketing"], "Open", {"userAgent": "Mozilla/5.0", "ipAddress": "192.0.2.1"}),
        ses_record(pipeline, ids["marketing"], "Click", {
            "link": f"https://lumen.example.com/?who={ADDRESSES['marketing']}", "userAgent": "Mozilla/5.0",
            "ipAddress": "192.0.2.1"}),
        QueueRecord("unreadable", json.dumps({"eventType": "Bounce", "mail": {"destination": [ADDRESSES["bounced"]]},
                                              "note": MARKER}), resources.EVENTS_QUEUE, pipeline.clock(), 1),
        QueueRecord("not-json", f"{ADDRESSES['bounced']} {MARKER}", resources.EVENTS_QUEUE, pipeline.clock(), 1),
    ]
    outcomes = apply_events(events, pipeline.events_context()).outcomes
    assert outcomes["Bounce-" + ids["bounced"]].result == "bounced"
    assert outcomes["not-json"].result == "dead-lettered"
    pipeline.now[0] += 3600
    assert run_due_schedules(pipeline.session.client("scheduler"), pipeline.sqs, resources.SCHEDULE_GROUP,
                             pipeline.clock()) == 1
    pipeline.drain()  # the soft bounce's retry comes back through the inbound queue and is sent again
    assert pipeline.ses.count(ids["soft"]) == 2

    modules = http_functions(pipeline, monkeypatch)
    links = links_in(send_of(pipeline, ids["marketing"]))
    assert links["o"] and links["c"] and links["u"]
    for token in links["o"]:
        assert http_call(modules["track_open"], "track_open", "GET", "o", token)["statusCode"] == 200
    for token in links["c"][:2]:
        assert http_call(modules["track_click"], "track_click", "GET", "c", token)["statusCode"] == 302
    unsubscribe = links["u"][0]
    assert http_call(modules["unsubscribe"], "unsubscribe", "GET", "u", unsubscribe)["statusCode"] == 200
    answer = http_call(modules["unsubscribe"], "unsubscribe", "POST", "u", unsubscribe, b"List-Unsubscribe=One-Click",
                       {"content-type": "application/x-www-form-urlencoded"})
    assert answer["statusCode"] == 200
    # Tokens that are not ours, and one that is ours for another route: refused, and not logged either.
    forged = links["u"][0][:-4] + "AAAA"
    assert http_call(modules["unsubscribe"], "unsubscribe", "POST", "u", forged, b"List-Unsubscribe=One-Click",
                     {"content-type": "application/x-www-form-urlencoded"})["statusCode"] == 404
    assert http_call(modules["track_click"], "track_click", "GET", "c", links["o"][0])["statusCode"] == 404
    return [token for kind in "ocu" for token in links[kind]] + [forged]


def test_no_address_token_secret_or_body_reaches_a_log_line(pipeline, log_lines, capsys, monkeypatch, tmp_path):
    tokens = run_everything(pipeline, monkeypatch, tmp_path)
    output = capsys.readouterr()
    text = "\n".join([*log_lines, output.out, output.err]).lower()
    assert len(log_lines) > 10  # the run logged: the search below is over something

    needles = {}
    for who, address in ADDRESSES.items():
        needles[f"{who}'s address"] = address
        needles[f"{who}'s local part"] = address.split("@")[0]
    needles.update({f"signing key {n}": key for n, key in enumerate(signing_secrets(pipeline))})
    for n, token in enumerate(tokens):
        needles[f"token {n}"] = token
        needles[f"token {n}'s MAC"] = token.rsplit(".", 1)[1]
    needles["the body marker"] = MARKER
    found = {}
    for what, needle in needles.items():
        if (at := text.find(needle.lower())) >= 0:
            found[what] = text[max(0, at - 150):at + 50]  # where it was, for the failure's message
    assert found == {}
