"""The bad-input corpus at postline's edges, through the real stages on moto: each bad input gets its exact error,
and nothing else is affected (the good messages beside it are rendered and sent, a rejected one is recorded and
in the DLQ with its reason and never reaches SES, a refused template is never published).

The send-message cases live in tests/fixtures/bad_inputs/send_messages.json; docs/bad-inputs.md counts them."""
from __future__ import annotations

import email
import email.policy
import itertools
import json
from pathlib import Path

import pytest

from postline.batch import QueueRecord
from postline.contract import message_id_for
from postline.models import Message, Template
from postline.templates import TemplateProblem
from postline_cli.local import resources
from postline_cli.publish import load_template_dir, prepare, publish

ROOT = Path(__file__).resolve().parents[2]
CORPUS = json.loads((ROOT / "tests/fixtures/bad_inputs/send_messages.json").read_text())
WELCOME = {"name": "Priya", "product_name": "Lumen", "dashboard_url": "https://app.example.com/dashboard"}
QUEUE = "postline-transactional"
ids = itertools.count()


def body_of(case: dict) -> str:
    if "body_parts" in case:
        return "".join(text * times for text, times in case["body_parts"])
    return case["body"] if isinstance(case["body"], str) else json.dumps(case["body"])


def good(n: int) -> str:
    return json.dumps({"template": "welcome", "to": f"good{n}@example.com", "data": WELCOME, "id": f"good-{n}"})


def dead_letters(pipeline, queue: str) -> list[dict]:
    found = []
    while batch := pipeline.sqs.receive_message(QueueUrl=pipeline.queue_url(queue), MessageAttributeNames=["All"],
                                                MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", []):
        found += batch
    return found


def test_every_bad_send_message_is_rejected_with_its_exact_reason_and_its_neighbours_are_sent(pipeline):
    """Every case sits between two good messages in one queue batch, as SQS delivers them."""
    got, expected, bodies, good_ids = {}, {}, {}, set()
    for case in CORPUS["rejected"]:
        n = next(ids)
        good_ids |= {message_id_for(f"good-{n}"), message_id_for(f"good-{n + 10_000}")}
        for body in (good(n), body_of(case), good(n + 10_000)):
            pipeline.enqueue("transactional", body)
        results = pipeline.run_render()
        assert not any(result.failed for result in results), case["name"]  # nothing left to retry forever
        outcomes = [outcome for result in results for outcome in result.outcomes.values()]
        got[case["name"]] = sorted((o.result, o.reason) for o in outcomes)
        expected[case["name"]] = sorted([("rendered", None), ("rendered", None), ("rejected", case["reason"])])
        bodies[body_of(case)] = case
    assert got == expected

    pipeline.run_send()
    while pipeline.run_send():
        pass
    sent = [s["tags"]["postline_message_id"] for s in pipeline.ses.sends]
    assert sorted(sent) == sorted(good_ids)  # each good one once, no bad one

    dlq = dead_letters(pipeline, "postline-transactional-dlq")
    reasons = {m["Body"]: m["MessageAttributes"]["postline_reason"]["StringValue"] for m in dlq}
    assert reasons == {body or "(empty body)": case["reason"] for body, case in bodies.items()}
    for message in dlq:  # and its record says the same
        record = Message.get(message["MessageAttributes"]["postline_message_id"]["StringValue"])
        assert (record.status, record.reason) == ("rejected", message["MessageAttributes"]["postline_reason"]
                                                  ["StringValue"])


@pytest.mark.parametrize("case", CORPUS["accepted_as_data"], ids=lambda case: case["name"])
def test_what_looks_like_code_or_headers_in_data_is_sent_as_text(pipeline, case):
    pipeline.enqueue("transactional", body_of(case))
    pipeline.drain()
    [send] = pipeline.ses.sends
    mime = email.message_from_bytes(send["Content"]["Raw"]["Data"], policy=email.policy.default)
    assert mime["Bcc"] is None and "evil" not in str(mime["To"])
    shows = case["shows"]
    if "to" in shows:
        assert send["Destination"]["ToAddresses"] == [shows["to"]]
    if "subject" in shows:
        assert mime["Subject"] == shows["subject"]
    if "text" in shows:
        assert shows["text"] in mime.get_body(("plain",)).get_content()
    if "html" in shows:
        html = mime.get_body(("html",)).get_content()
        assert shows["html"] in html and "<script>" not in html


# --- templates pushed --------------------------------------------------------------------------------------------

GOOD_HTML = "<p>Hi {{ name }}</p>"
TEMPLATES = [
    # (name, subject, html, the error after the folder's path)
    ("unclosed expression", "Hi", "<p>{{ name </p>", "/html.j2:1: unexpected '/'"),
    ("for without a target", "Hi", "<p>{% for x in %}</p>",
     "/html.j2:1: Expected an expression, got 'end of statement block'"),
    ("if without a condition", "Hi", "<p>{% if %}{% endif %}</p>",
     "/html.j2:1: Expected an expression, got 'end of statement block'"),
    ("endfor without for", "Hi", "<p>{% endfor %}</p>", "/html.j2:1: Encountered unknown tag 'endfor'."),
    ("unknown filter", "Hi", "<p>{{ name|nosuchfilter }}</p>", "/html.j2:1: No filter named 'nosuchfilter'."),
    ("syntax error in the subject", "Hi {{ name", GOOD_HTML,
     "/template.json (subject): unexpected end of template, expected 'end of print statement'."),
    ("class and mro", "Hi", "<p>{{ ''.__class__.__mro__ }}</p>",
     "/html.j2:1: cannot render with example.json: access to attribute '__class__' of 'str' object is unsafe., "
     "in: <p>{{ ''.__class__.__mro__ }}</p>"),
    ("subclasses", "Hi", "<p>{{ ''.__class__.__mro__[1].__subclasses__() }}</p>",
     "/html.j2:1: cannot render with example.json: access to attribute '__class__' of 'str' object is unsafe., "
     "in: <p>{{ ''.__class__.__mro__[1].__subclasses__() }}</p>"),
    ("data's class", "Hi", "<p>{{ name.__class__ }}</p>",
     "/html.j2:1: cannot render with example.json: access to attribute '__class__' of 'str' object is unsafe., "
     "in: <p>{{ name.__class__ }}</p>"),
    ("attr filter", "Hi", "<p>{{ name|attr('__class__') }}</p>",
     "/html.j2:1: cannot render with example.json: access to attribute '__class__' of 'str' object is unsafe., "
     "in: <p>{{ name|attr('__class__') }}</p>"),
    ("cycler globals", "Hi", "<p>{{ cycler.__init__.__globals__ }}</p>",
     "/html.j2:1: cannot render with example.json: access to attribute '__init__' of 'type' object is unsafe., "
     "in: <p>{{ cycler.__init__.__globals__ }}</p>"),
    ("lipsum globals", "Hi", "<p>{{ lipsum.__globals__ }}</p>",
     "/html.j2:1: cannot render with example.json: access to attribute '__globals__' of 'function' object is unsafe., "
     "in: <p>{{ lipsum.__globals__ }}</p>"),
    ("template context", "Hi", "<p>{{ self._TemplateReference__context }}</p>",
     "/html.j2:1: cannot render with example.json: access to attribute '_TemplateReference__context' of "
     "'TemplateReference' object is unsafe., in: <p>{{ self._TemplateReference__context }}</p>"),
    ("include", "Hi", "<p>{% include '/etc/passwd' %}</p>",
     "/html.j2:1: cannot render with example.json: no loader for this environment specified, "
     "in: <p>{% include '/etc/passwd' %}</p>"),
    ("import", "Hi", "<p>{% import 'os' as os %}</p>",
     "/html.j2:1: cannot render with example.json: no loader for this environment specified, "
     "in: <p>{% import 'os' as os %}</p>"),
    ("a range past the sandbox's", "Hi", "<p>{% for i in range(1000000) %}x{% endfor %}</p>",
     "/html.j2:1: cannot render with example.json: Range too big. The sandbox blocks ranges larger than "
     "MAX_RANGE (100000)., in: <p>{% for i in range(1000000) %}x{% endfor %}</p>"),
    # Unbounded renders, bounded by postline.templates (MAX_RENDER_SECONDS, MAX_RENDERED_CHARACTERS)
    ("a huge repetition", "Hi", "<p>{{ 'x' * 200000000 }}</p>",
     "/html.j2:1: cannot render with example.json: rendering makes over 4,000,000 characters, "
     "in: <p>{{ 'x' * 200000000 }}</p>"),
    # (a thousand characters a step: the size bound comes in a few thousand steps, long before the time bound)
    ("nested range loops", "Hi",
     "<p>{% for i in range(100000) %}{% for j in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endfor %}</p>",
     "/html.j2: cannot render with example.json: rendering makes over 4,000,000 characters"),
    ("silent nested loops over data", "Hi",
     "<p>{% for a in items %}{% for b in items %}{% for c in items %}{% endfor %}{% endfor %}{% endfor %}</p>",
     "/html.j2:1: cannot render with example.json: rendering took over 2 s (a loop or recursion without bound?), "
     "in: <p>{% for a in items %}{% for b in items %}{% for c in items %}{% endfor %}{% endfor %}{% endfor %}</p>"),
    ("a macro calling itself twice", "Hi",
     "<p>{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}</p>",
     "/html.j2:1: cannot render with example.json: rendering took over 2 s (a loop or recursion without bound?), "
     "in: <p>{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}</p>"),
    ("a huge subject", "{{ 'x' * 5000000 }}", GOOD_HTML,
     "/template.json (subject): cannot render with example.json: rendering makes over 4,000,000 characters"),
]


def template_folder(tmp_path: Path, subject: str, html: str) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "template.json").write_text(json.dumps({"stream": "transactional", "subject": subject}))
    (folder / "html.j2").write_text(html)
    (folder / "example.json").write_text(json.dumps({"name": "Ada", "items": list(range(2000))}))
    return folder


@pytest.mark.parametrize("name, subject, html, error", TEMPLATES, ids=[case[0] for case in TEMPLATES])
def test_a_bad_template_is_refused_with_its_exact_error_and_nothing_is_published(pipeline, tmp_path, name, subject,
                                                                                 html, error):
    folder = template_folder(tmp_path, subject, html)
    with pytest.raises(TemplateProblem) as refused:
        publish(prepare(load_template_dir(folder), "tests"))
    assert str(refused.value) == f"{folder}{error}"
    assert [t.name for t in Template.scan() if t.name == "bad"] == []
    pipeline.enqueue("transactional", good(next(ids)))  # and mail goes on
    pipeline.drain()
    assert len(pipeline.ses.sends) == 1


def test_a_render_made_unbounded_by_a_message_rejects_that_message_alone(pipeline, tmp_path):
    """A published template that loops over the message's data: the data decides how long the render runs."""
    folder = tmp_path / "grid"
    folder.mkdir()
    (folder / "template.json").write_text(json.dumps({"stream": "transactional", "subject": "Grid"}))
    (folder / "html.j2").write_text("<p>{% for a in rows %}{% for b in rows %}{% for c in rows %}"
                                    "{% endfor %}{% endfor %}{% endfor %}</p>")
    (folder / "example.json").write_text(json.dumps({"rows": [1, 2]}))
    publish(prepare(load_template_dir(folder), "tests"))
    pipeline.enqueue("transactional", good(next(ids)))
    pipeline.enqueue("transactional", json.dumps({"template": "grid", "to": "grid@example.com",
                                                  "data": {"rows": list(range(5000))}}))
    [result] = pipeline.run_render()
    assert sorted((o.result, o.reason) for o in result.outcomes.values()) == [
        ("rejected", "cannot render grid@1 with this data: rendering took over 2 s (a loop or recursion without "
                     "bound?) (html line 1)"), ("rendered", None)]


# --- SES and SNS records into the ses_events stage ---------------------------------------------------------------

SES_EVENT = {"eventType": "Delivery", "mail": {"messageId": "ses-1", "timestamp": "2027-01-15T08:00:00.000Z",
                                                "destination": ["reader@example.com"], "tags": {}},
             "delivery": {"timestamp": "2027-01-15T08:00:01.000Z"}}
SES_RECORDS = [
    ("empty body", "", "malformed SES event: JSONDecodeError: Expecting value: line 1 column 1 (char 0)"),
    ("truncated JSON", json.dumps(SES_EVENT)[:60],
     "malformed SES event: JSONDecodeError: Unterminated string starting at: line 1 column 58 (char 57)"),
    ("a JSON array", "[]", "malformed SES event: AttributeError: 'list' object has no attribute 'get'"),
    ("no event type", json.dumps({"mail": SES_EVENT["mail"]}),
     "malformed SES event: ValueError: not an SES event: needs eventType or notificationType, and mail.messageId"),
    ("no mail object", json.dumps({"eventType": "Delivery", "delivery": {}}),
     "malformed SES event: ValueError: not an SES event: needs eventType or notificationType, and mail.messageId"),
    ("mail a string", json.dumps({**SES_EVENT, "mail": "x"}),
     "malformed SES event: ValueError: not an SES event: needs eventType or notificationType, and mail.messageId"),
    ("mail without messageId", json.dumps({**SES_EVENT, "mail": {"timestamp": "2027-01-15T08:00:00.000Z"}}),
     "malformed SES event: ValueError: not an SES event: needs eventType or notificationType, and mail.messageId"),
    ("SNS envelope around garbage", json.dumps({"Type": "Notification", "Message": "{not json",
                                                "TopicArn": "arn:aws:sns:us-east-1:123456789012:postline-ses-events"}),
     "malformed SES event: JSONDecodeError: Expecting property name enclosed in double quotes: "
     "line 1 column 2 (char 1)"),
]


@pytest.mark.parametrize("name, body, reason", SES_RECORDS, ids=[case[0] for case in SES_RECORDS])
def test_a_malformed_ses_record_goes_to_the_dlq_with_its_reason_and_the_batch_goes_on(pipeline, name, body, reason):
    pipeline.enqueue("transactional", good(n := next(ids)))
    pipeline.drain()
    [send] = pipeline.ses.sends
    delivery = {**SES_EVENT, "mail": {**SES_EVENT["mail"], "messageId": send["MessageId"],
                                      "tags": {"postline_message_id": [message_id_for(f"good-{n}")]}}}
    from postline.events import apply_events

    batch = [QueueRecord("bad", body, resources.EVENTS_QUEUE, pipeline.clock(), 1),
             QueueRecord("good", json.dumps(delivery), resources.EVENTS_QUEUE, pipeline.clock(), 1)]
    result = apply_events(batch, pipeline.events_context())
    assert (result.outcomes["bad"].result, result.outcomes["bad"].reason) == ("dead-lettered", reason)
    assert not result.failed
    assert Message.get(message_id_for(f"good-{n}")).status == "delivered"
    [dlq] = dead_letters(pipeline, resources.EVENTS_QUEUE + "-dlq")
    assert (dlq["Body"], dlq["MessageAttributes"]["postline_reason"]["StringValue"]) == (body or "(empty body)", reason)


def test_an_unknown_notification_type_changes_nothing(pipeline):
    pipeline.enqueue("transactional", good(n := next(ids)))
    pipeline.drain()
    [send] = pipeline.ses.sends
    before = Message.get(message_id_for(f"good-{n}")).status
    odd = {**SES_EVENT, "eventType": "Teleported",
           "mail": {**SES_EVENT["mail"], "messageId": send["MessageId"],
                    "tags": {"postline_message_id": [message_id_for(f"good-{n}")]}}}
    from postline.events import apply_events

    result = apply_events([QueueRecord("odd", json.dumps(odd), resources.EVENTS_QUEUE, pipeline.clock(), 1)],
                          pipeline.events_context())
    assert not result.failed
    assert Message.get(message_id_for(f"good-{n}")).status == before
