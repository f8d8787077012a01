"""``postline events``: the application events the pipeline published (moto's EventBridge rule to the local
app-events queue), printed as an operator reads them and taken off the queue; in AWS, the stack's app-events queue
from its outputs, or a clear line when the stack keeps none."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from click.testing import CliRunner

from postline.contract import message_id_for
from postline_cli import events
from postline_cli.local import resources
from postline_cli.main import cli
from postline_cli.target import Target

ROOT = Path(__file__).resolve().parents[2]
BOUNCED = {"version": "0", "source": "postline", "detail-type": "email.bounced", "time": "2026-12-04T10:00:02Z",
           "detail": {"message_id": "m-b", "event": "email.bounced", "time": "2026-12-04T10:00:02.500Z",
                      "to": "ada@example.com", "template": "welcome", "campaign": "june", "tags": {"plan": "pro"},
                      "detail": {"bounceType": "Permanent"}}}
PAUSED = {"version": "0", "source": "postline", "detail-type": "campaign.paused", "time": "2026-12-04T10:00:01Z",
          "detail": {"event": "campaign.paused", "time": "2026-12-04T10:00:01.000Z",
                     "detail": {"campaign": "june", "state": "paused"}}}


def local(monkeypatch, pipeline) -> str:
    """The CLI pointed at moto as at the local stack; the app-events queue's URL."""
    monkeypatch.setattr(events, "target", lambda: Target("http://127.0.0.1:4566", {}, {}, "", "", ""))
    monkeypatch.setattr(events, "_sqs", lambda: pipeline.sqs)
    return pipeline.queue_url(resources.APP_EVENTS_QUEUE)


def postline(*args: str):
    return CliRunner().invoke(cli, list(args))


def waiting(pipeline, url: str) -> tuple[int, int]:
    """(visible, in flight) messages on the queue."""
    attributes = pipeline.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_the_events_of_a_delivered_email_are_printed_as_json_lines_and_taken_off_the_queue(monkeypatch, pipeline):
    url = local(monkeypatch, pipeline)
    data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
    pipeline.enqueue("transactional", {"template": "welcome", "to": "fine@example.com", "data": data, "id": "ev-1"})
    pipeline.drain()
    pipeline.publish_ses_events()

    result = postline("events", "--json")

    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["detail-type"], e["detail"]["message_id"]) for e in printed] == [
        ("email.sent", message_id_for("ev-1")), ("email.delivered", message_id_for("ev-1"))]
    assert printed[1]["detail"]["to"] == "fine@example.com" and printed[1]["source"] == "postline"
    assert waiting(pipeline, url) == (0, 0)  # read once: the next run has nothing
    again = postline("events", "--json")
    assert (again.exit_code, again.stdout) == (0, "")


def test_each_event_is_one_line_oldest_first(monkeypatch, pipeline):
    url = local(monkeypatch, pipeline)
    for event in (BOUNCED, PAUSED):
        pipeline.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))

    result = postline("events")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        '2026-12-04T10:00:01.000Z  campaign.paused      {"campaign":"june","state":"paused"}',
        '2026-12-04T10:00:02.500Z  email.bounced        m-b  ada@example.com  welcome  campaign=june  tags=plan=pro  '
        '{"bounceType":"Permanent"}',
    ]


def test_an_empty_queue_says_so_and_exits_0(monkeypatch, pipeline):
    local(monkeypatch, pipeline)
    result = postline("events")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "no events waiting on postline-app-events\n")


def test_a_message_that_is_not_an_event_is_reported_and_left_on_the_queue(monkeypatch, pipeline):
    url = local(monkeypatch, pipeline)
    stray = pipeline.sqs.send_message(QueueUrl=url, MessageBody="not json")["MessageId"]
    pipeline.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(PAUSED))

    result = postline("events", "--json")

    assert result.exit_code == 0
    assert [json.loads(line)["detail-type"] for line in result.stdout.splitlines()] == ["campaign.paused"]
    assert result.stderr == f"warning: message {stray} on postline-app-events is not a postline event; " \
                            "left on the queue\n"
    assert waiting(pipeline, url) == (0, 1)  # back after its visibility timeout, for the DLQ in time


def test_following_deletes_an_event_only_once_the_next_is_asked_for(monkeypatch, pipeline):
    url = local(monkeypatch, pipeline)
    for event in (PAUSED, BOUNCED):
        pipeline.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))

    reader = events.read_events(pipeline.sqs, url, follow=True, on_unreadable=print)
    taken = list(itertools.islice(reader, 2))

    assert [e["detail-type"] for e in taken] == ["campaign.paused", "email.bounced"]
    assert waiting(pipeline, url) == (0, 1)  # the second was handed over, not yet known to be printed
    reader.close()


# ---------------------------------------------------------------- in AWS: the stack's app-events queue
def deployed(monkeypatch, pipeline, outputs: dict[str, dict]) -> None:
    """A stack named postline in moto's CloudFormation with ``outputs``; the CLI pointed at AWS."""
    cloudformation = pipeline.session.client("cloudformation")
    cloudformation.create_stack(StackName="postline", TemplateBody=json.dumps({
        "Resources": {"Events": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "postline-app-events-aws"}}},
        "Outputs": outputs}))
    monkeypatch.setattr(events, "target", lambda: Target(None, {}, {}, "", "", ""))
    monkeypatch.setattr(events, "_sqs", lambda: pipeline.sqs)
    monkeypatch.setattr(events, "_cloudformation", lambda: cloudformation)
    monkeypatch.delenv("POSTLINE_STACK", raising=False)


def test_in_aws_the_stacks_app_events_queue_is_read(monkeypatch, pipeline):
    deployed(monkeypatch, pipeline, {events.QUEUE_OUTPUT: {"Value": {"Ref": "Events"}}})
    url = pipeline.sqs.get_queue_url(QueueName="postline-app-events-aws")["QueueUrl"]
    pipeline.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(BOUNCED))

    result = postline("events", "--json")

    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == [BOUNCED]


def test_in_aws_a_stack_without_the_queue_says_how_to_get_one(monkeypatch, pipeline):
    deployed(monkeypatch, pipeline, {})
    result = postline("events")
    assert result.exit_code == 1
    assert result.stderr == ("error: the stack 'postline' keeps no queue of its events: set \"app_events_queue\": "
                             "true in its config and deploy, or read a queue of yours with --queue-url "
                             "(docs/applications.md#events-in-aws)\n")


def test_in_aws_a_queue_of_ones_own_is_read_with_queue_url(monkeypatch, pipeline):
    deployed(monkeypatch, pipeline, {})
    url = pipeline.sqs.create_queue(QueueName="myapp-mail-events")["QueueUrl"]
    pipeline.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(PAUSED))
    result = postline("events", "--queue-url", url)
    assert result.exit_code == 0, result.output
    assert result.stdout == '2026-12-04T10:00:01.000Z  campaign.paused      {"campaign":"june","state":"paused"}\n'

