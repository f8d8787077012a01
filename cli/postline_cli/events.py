"""``postline events [--follow] [--json]``: postline's application events (docs/events.md) as they reach a queue,
so nobody has to write an SQS reader to see them.

Locally the queue is ``postline-app-events``, which the local stack's rule on its bus fills; in AWS it is the stack's
own app-events queue (config ``app_events_queue``, output ``AppEventsQueueUrl``), or any queue a rule of yours fills
(``--queue-url``). The command is a reader of that queue like any other: it deletes each event once it has printed
it. SQS has no way to look without taking (every receive counts towards the queue's DLQ), so an application and
this command reading one queue share its events between them; give each its own queue.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import click

from .local import resources
from .target import TargetError, target

# The stack output naming the app-events queue (infra/stacks/constants.py, Outputs.APP_EVENTS_QUEUE_URL).
QUEUE_OUTPUT = "AppEventsQueueUrl"
LONG_POLL_SECONDS = 20  # the most SQS allows: --follow waits this long per request when nothing comes
LAST_LOOK_SECONDS = 1  # without --follow: a short wait that still sees events every SQS host holds


def _sqs():
    from postline.clients import client

    return client("sqs")


def _cloudformation():
    from postline.clients import client

    return client("cloudformation")


def events_queue_url(queue_url: str | None, stack_name: str) -> str:
    """The queue to read: ``queue_url`` when given; the local stack's app-events queue; or the stack's own."""
    where = target()  # first: it points the clients at the local stack when one is up here
    if queue_url:
        return queue_url
    if where.endpoint:
        return _sqs().get_queue_url(QueueName=resources.APP_EVENTS_QUEUE)["QueueUrl"]
    [stack] = _cloudformation().describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    if QUEUE_OUTPUT not in outputs:
        raise TargetError(
            f'the stack {stack_name!r} keeps no queue of its events: set "app_events_queue": true in '
            "its config and deploy, or read a queue of yours with --queue-url "
            "(docs/applications.md#events-in-aws)"
        )
    return outputs[QUEUE_OUTPUT]


def read_events(
    sqs, queue_url: str, *, follow: bool, on_unreadable: Callable[[dict[str, Any]], None]
) -> Iterator[dict[str, Any]]:
    """Each event on the queue, oldest first within each receive, deleted once the caller has taken the next one
    (so an event the caller could not print is still on the queue). Without ``follow``, ends when the queue is
    empty. A message that is not a postline event is left on the queue and reported once."""
    reported: set[str] = set()
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=LONG_POLL_SECONDS if follow else LAST_LOOK_SECONDS,
        ).get("Messages", [])
        if not messages:
            if follow:
                continue
            return
        readable = []
        for message in messages:
            event = _event(message["Body"])
            if event is None:
                if message["MessageId"] not in reported:
                    reported.add(message["MessageId"])
                    on_unreadable(message)
                continue
            readable.append((event, message))
        readable.sort(key=lambda pair: _time(pair[0]))
        for event, message in readable:
            yield event
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _event(body: str) -> dict[str, Any] | None:
    """The EventBridge event in a message's body, or None when it is not one of postline's."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not (
        isinstance(event, dict) and isinstance(event.get("detail-type"), str) and isinstance(event.get("detail"), dict)
    ):
        return None
    return event


def _time(event: dict[str, Any]) -> str:
    return str(event["detail"].get("time") or event.get("time") or "")


def event_line(event: dict[str, Any]) -> str:
    """One line per event: time, name, then the message's id, recipient, template and campaign (email events),
    and what is particular to the event as JSON."""
    detail = event["detail"]
    parts = [_time(event), f"{event['detail-type']:<19}"]
    if "message_id" in detail:
        parts += [str(detail["message_id"]), str(detail.get("to") or "-"), str(detail.get("template") or "-")]
        if detail.get("campaign"):
            parts.append(f"campaign={detail['campaign']}")
        if detail.get("tags"):
            parts.append("tags=" + ",".join(f"{k}={v}" for k, v in detail["tags"].items()))
    particular = detail.get("detail")
    if particular:
        parts.append(json.dumps(particular, separators=(",", ":"), sort_keys=True))
    return "  ".join(parts).rstrip()


@click.command("events")
@click.option("--follow", "-f", is_flag=True, help="Keep reading and print events as they come, until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: the event as EventBridge sent it.")
@click.option(
    "--queue-url",
    help="A queue of yours that a rule on the stack's bus fills "
    "(default: postline-app-events locally, the stack's app-events queue in AWS).",
)
def events(follow: bool, as_json: bool, queue_url: str | None) -> None:
    """Print postline's application events (email.*, campaign.*) and take them off their queue."""
    url = events_queue_url(queue_url, os.environ.get("POSTLINE_STACK", "postline"))  # the stack target() reads
    name = url.rstrip("/").rsplit("/", 1)[-1]

    def unreadable(message: dict[str, Any]) -> None:
        click.echo(
            f"warning: message {message['MessageId']} on {name} is not a postline event; left on the queue", err=True
        )

    shown = 0
    try:
        for event in read_events(_sqs(), url, follow=follow, on_unreadable=unreadable):
            click.echo(json.dumps(event, separators=(",", ":")) if as_json else event_line(event))
            shown += 1
    except KeyboardInterrupt:
        return  # how --follow ends: what was printed is off the queue (the last one may come again), the rest on it
    if not shown and not as_json:
        click.echo(f"no events waiting on {name}", err=True)
