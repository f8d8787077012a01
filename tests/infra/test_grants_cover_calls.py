"""Every AWS call a function makes is allowed by its role in the synthesized template.

The stages run over moto (which checks no permissions) through the paths a deployment takes: each stream,
suppressed, rejected and repeated mail, SES refusing and throttling, the claim-check bucket, every kind of SES
event, both soft-bounce retries, opens, clicks, unsubscribes, campaigns (a fan-out to its end, one waiting for its
window, one out of time halfway, an unreadable control message; a campaign's emails sent, a cancelled one's
dropped). A
botocore hook records what each call needs from IAM, expanding transactions and batches into the actions AWS
authorises them by (a ConditionCheck needs ``dynamodb:ConditionCheckItem`` on its table). Each need is then
looked up in the policies of that function's role: a call the role does not allow would be refused in AWS
however green the other tests are.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from contextlib import contextmanager

import botocore.session
import pytest

from postline.batch import QueueRecord
from postline.campaigns import fanout, store
from postline.campaigns.control import ControlMessage
from postline.campaigns.fanout import CampaignContext, run_batch
from postline.campaigns.windows import Window
from postline.contract import message_id_for
from postline.engagement import follow_click, record_open, resubscribe, subscription, unsubscribe
from postline.events import apply_events
from postline.models import ALL_MODELS, SUPPRESSION_SCOPE_ALL, Suppression
from postline.render import render_batch
from postline.send import send_batch
from postline.suppression import erased_address
from postline.tokens import CLICK, OPEN, UNSUBSCRIBE
from postline_cli.local import resources
from tests.integration.conftest import pipeline  # noqa: F401  (the fixture)
from tests.integration.test_engagement import HUMAN, engagement_context
from tests.integration.test_pipeline import example, ses_error
from tests.integration.test_soft_bounces import ses_event

TRANSACTION_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                       "ConditionCheck": "ConditionCheckItem"}


class Needs:
    """What each function's calls need from IAM: {function: {(action, resource name or None)}}."""

    def __init__(self):
        self.function: str | None = None
        self.by_function: dict[str, set[tuple[str, str | None]]] = defaultdict(set)

    def install(self, monkeypatch) -> None:
        original = botocore.session.Session.create_client

        def create_client(session, *args, **kwargs):
            made = original(session, *args, **kwargs)
            made.meta.events.register("before-parameter-build.*.*", self._record)
            return made

        monkeypatch.setattr(botocore.session.Session, "create_client", create_client)

    @contextmanager
    def acting_as(self, function: str):
        self.function = function
        try:
            yield
        finally:
            self.function = None

    def _record(self, params, model, **_):
        if self.function:
            self.by_function[self.function].update(needed(model.service_model.service_name, model.name, params))


# A PartiQL statement's verb and table: INSERT INTO "t", UPDATE "t", DELETE FROM "t", SELECT ... FROM "t".
PARTIQL_TARGET = re.compile(r'\s*(INSERT|UPDATE|DELETE|SELECT)\b.*?(?:INTO|FROM|UPDATE)?\s*"([^"]+)"',
                            re.IGNORECASE | re.DOTALL)


def needed(service: str, operation: str, params: dict) -> list[tuple[str, str | None]]:
    """(IAM action, resource name) pairs one call needs; the name is a table, queue or bucket (None: the action is
    looked for on any resource)."""
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            return [(f"dynamodb:{TRANSACTION_ACTIONS[kind]}", body["TableName"])
                    for item in params["TransactItems"] for kind, body in item.items()]
        if operation == "TransactGetItems":
            return [("dynamodb:GetItem", item["Get"]["TableName"]) for item in params["TransactItems"]]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", table) for table in params["RequestItems"]]
        if operation in ("BatchExecuteStatement", "ExecuteStatement"):  # authorised per statement: PartiQL<verb>
            statements = params.get("Statements") or [params]
            return [(f"dynamodb:PartiQL{verb.capitalize()}", table) for verb, table in
                    (PARTIQL_TARGET.match(statement["Statement"]).groups() for statement in statements)]
        return [(f"dynamodb:{operation}", params.get("TableName"))]
    if service == "sqs":
        action = operation.removesuffix("Batch")  # SendMessageBatch is authorised as sqs:SendMessage
        return [(f"sqs:{action}", params["QueueUrl"].rsplit("/", 1)[-1])]
    if service == "sesv2":
        return [(f"ses:{operation}", None)]
    if service == "s3":
        return [(f"s3:{operation}", params.get("Bucket"))]
    if service == "events":
        return [("events:PutEvents", None)]
    if service == "scheduler":
        passes_role = [("iam:PassRole", None)] if params.get("Target", {}).get("RoleArn") else []
        return [(f"scheduler:{operation}", None), *passes_role]
    return [(f"{service}:{operation}", None)]


def _resource_construct(stack, service: str, name: str):
    """The stack's construct for a local resource name (tables, queues, the bucket: the ones a role names), by
    service: the campaigns' table and control queue are both ``postline-campaigns`` locally."""
    tables = {f"postline-{key.replace('_', '-')}": table for key, table in stack.tables.tables.items()}
    queues = {**{q: stack.queues.inbound[s] for s, q in resources.INBOUND_QUEUES.items()},
              **{q: stack.queues.send[s] for s, q in resources.SEND_QUEUES.items()},
              resources.EVENTS_QUEUE: stack.queues.ses_events, resources.CAMPAIGN_QUEUE: stack.queues.campaigns}
    queues.update({f"{name}-dlq": stack.queues.dead_letter_queues[name] for name in queues})
    buckets = {resources.CLAIM_CHECK_BUCKET: stack.storage.bucket}
    if stack.receiving is not None:  # unsubscribe by email: its DLQ and the received emails' bucket
        queues[f"{resources.UNSUBSCRIBE_MAIL_QUEUE}-dlq"] = stack.receiving.dead_letters
        buckets[resources.UNSUBSCRIBE_MAIL_BUCKET] = stack.receiving.bucket
    return {"dynamodb": tables, "sqs": queues, "s3": buckets}.get(service, {}).get(name)


def _allowed(synth, function: str, action: str, resource: str | None) -> bool:
    construct = _resource_construct(synth.stack, action.split(":")[0], resource) if resource else None
    assert construct is not None or resource is None, f"no resource of the stack is named like {resource}"
    logical_id = synth.logical_id(construct) if construct is not None else None
    for statement in synth.policy_statements(function):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action not in actions:
            continue
        if logical_id is None or logical_id in json.dumps(statement["Resource"]):
            return True
    return False


def _queued(pipeline, queues):  # noqa: F811 - the imported pytest fixture
    for name in queues:
        while records := pipeline.receive(name, visibility=0):
            yield name, records


def _walk_every_path(pipeline, needs: Needs) -> None:  # noqa: F811 - the imported pytest fixture
    Suppression("blocked@example.com", SUPPRESSION_SCOPE_ALL, reason="manual", suppressed_at=1.0,
                source="test").save()
    # An address erased while its email waits: the send stage also forgets the request kept for its retries.
    Suppression(erased_address("erased@example.com", _erasure_key(pipeline)), SUPPRESSION_SCOPE_ALL,
                reason="erased", suppressed_at=pipeline.clock() * 2, source="erasure").save()
    mail = [("critical", "password-reset", "reset@example.com"), ("critical", "password-reset", "blocked@example.com"),
            ("transactional", "order-confirmation", "buyer@example.com"),
            ("transactional", "order-confirmation", "blocked@example.com"),
            ("marketing", "newsletter", "reader@example.com"), ("marketing", "newsletter", "blocked@example.com"),
            ("marketing", "newsletter", "bounce@simulator.amazonses.com"),
            ("marketing", "newsletter", "complaint@simulator.amazonses.com"),
            ("transactional", "order-confirmation", "erased@example.com")]
    for n, (stream, template, to) in enumerate(mail):
        pipeline.enqueue(stream, {"template": template, "to": to, "data": example(template), "id": f"m{n}"})
    pipeline.enqueue("marketing", {"template": "newsletter"})  # rejected: no recipient, dead-lettered
    _render_and_send(pipeline, needs)
    assert len(pipeline.ses.sends) == 5  # all but the suppressed four

    # SES refusing one email and throttling another; each email's body parked in S3 (claim check) this time.
    for key in ("refused", "throttled"):
        pipeline.enqueue("transactional", {"template": "order-confirmation", "to": f"{key}@example.com",
                                           "data": example("order-confirmation"), "id": key})
    pipeline.enqueue("critical", {"template": "password-reset", "to": "reset@example.com",
                                  "data": example("password-reset"), "id": "m0"})  # a repeat, counted
    pipeline.settings = pipeline.settings.model_copy(update={"claim_check_threshold_bytes": 1_000})
    pipeline.ses.fail_with = [ses_error("MessageRejected"), ses_error("TooManyRequestsException")]
    _render_and_send(pipeline, needs)
    assert pipeline.ses.fail_with == [] and len(pipeline.ses.sends) == 5

    with needs.acting_as("ses_events"):
        pipeline.publish_ses_events()  # Send, Delivery, a hard bounce, a complaint
        unreadable = QueueRecord("not-ses", "{}", resources.EVENTS_QUEUE, pipeline.clock(), 1)
        assert apply_events([unreadable], pipeline.events_context()).outcomes["not-ses"].result == "dead-lettered"
        # Soft bounces are retried: soon through a delayed queue message, later through a schedule.
        apply_events([ses_event(pipeline, message_id_for("m2"), "Bounce", "buyer@example.com")],
                     pipeline.events_context())
        pipeline.settings = pipeline.settings.model_copy(update={"soft_bounce_first_retry_seconds": 3600})
        apply_events([ses_event(pipeline, message_id_for("m0"), "Bounce", "reset@example.com")],
                     pipeline.events_context())

    engagement = engagement_context(pipeline)
    newsletter = message_id_for("m4")
    pipeline.now[0] += 3600
    with needs.acting_as("track_open"):
        record_open(engagement, engagement.keys.sign(OPEN, newsletter), HUMAN)
    with needs.acting_as("track_click"):
        click = engagement.keys.sign(CLICK, newsletter, "https://example.com/june")
        assert follow_click(engagement, click, HUMAN) == "https://example.com/june"
    with needs.acting_as("unsubscribe"):
        token = engagement.keys.sign(UNSUBSCRIBE, newsletter)
        assert subscription(engagement, token) is not None
        assert unsubscribe(engagement, token, how="one-click") is not None
        assert resubscribe(engagement, token) is not None
    _walk_unsubscribe_mail(pipeline, needs, engagement, token)


def _walk_unsubscribe_mail(pipeline, needs: Needs,  # noqa: F811 - the imported pytest fixture
                           engagement, token: str) -> None:
    """Emails to the mailto address, as SES stores and announces them: one with the token (unsubscribes), one
    without (kept for an operator), and a record not from its topic (refused, to the DLQ)."""
    from postline.inbound_mail import UnsubscribeMailContext, handle_batch
    from postline_cli.local.smtp_receiver import store_and_notify

    s3, sns = pipeline.session.client("s3"), pipeline.session.client("sns")
    for subject in (f"unsubscribe {token}", "please remove me"):
        raw = f"From: reader@example.com\r\nSubject: {subject}\r\n\r\nthanks\r\n".encode()
        store_and_notify(s3, sns, resources.UNSUBSCRIBE_MAIL_BUCKET,
                         resources.topic_arn(resources.UNSUBSCRIBE_MAIL_TOPIC), raw, "reader@example.com",
                         ["unsubscribe@" + resources.UNSUBSCRIBE_DOMAIN], pipeline.clock())
    records = pipeline.receive(resources.UNSUBSCRIBE_MAIL_QUEUE)
    records.append(QueueRecord("not-ses", "{}", resources.UNSUBSCRIBE_MAIL_QUEUE, pipeline.clock(), 1))
    context = UnsubscribeMailContext(pipeline.settings, s3=s3, sqs=pipeline.sqs, engagement=engagement,
                                     clock=pipeline.clock)
    with needs.acting_as("unsubscribe_mail"):
        outcomes = handle_batch(records, context).outcomes
    assert sorted(o.result for o in outcomes.values()) == ["kept", "refused", "unsubscribed"]


def _walk_campaigns(pipeline, needs: Needs) -> None:  # noqa: F811 - the imported pytest fixture
    dynamodb, s3 = pipeline.session.client("dynamodb"), pipeline.session.client("s3")
    table = pipeline.settings.campaigns_table
    night = Window.parse("02:00-03:00", "UTC")  # the pipeline's clock says 08:00 UTC: it waits for tomorrow's
    for name, window in (("spring", None), ("night", night), ("autumn", None)):
        audience = b"".join(json.dumps({"email": address, "data": example("newsletter")}).encode() + b"\n"
                            for address in (f"{name}@example.com", "blocked@example.com"))
        key = f"campaigns/{name}/audience.jsonl"
        s3.put_object(Bucket=resources.CLAIM_CHECK_BUCKET, Key=key, Body=audience)  # as the CLI uploads it
        store.create(dynamodb, table, store.Campaign(
            name, "newsletter", key, start_at=pipeline.clock(), window=window, audience_bytes=len(audience),
            audience_rows=2, created_at=pipeline.clock()))
    context = CampaignContext(pipeline.settings, dynamodb=dynamodb, sqs=pipeline.sqs, s3=s3,
                              scheduler=pipeline.session.client("scheduler"), events=pipeline.session.client("events"),
                              sesv2=pipeline.ses, secrets=pipeline.session.client("secretsmanager"),
                              clock=pipeline.clock)

    def control(record_id: str, body: str) -> QueueRecord:
        return QueueRecord(record_id, body, resources.CAMPAIGN_QUEUE, pipeline.clock(), 1)

    def time_left(*milliseconds: int):  # the invocation's remaining time at each look, then none
        left = iter(milliseconds)
        return lambda: next(left, 0)

    runs = [(name, ControlMessage(name, 0).body(), time_left(*[120_000] * 10)) for name in ("spring", "night")]
    # autumn runs out of time after its first page (of one recipient): the next run is asked for.
    runs += [("autumn", ControlMessage("autumn", 0).body(), time_left(120_000)), ("garbled", "{}", time_left())]
    with needs.acting_as("campaign"):
        outcomes = {name: run_batch([control(name, body)], context, left).outcomes[name].result
                    for name, body, left in runs}
    assert outcomes == {"spring": "done", "night": "waiting", "autumn": "handed-on",
                        "garbled": "unreadable"}  # moved to the DLQ with its reason
    store.move(dynamodb, table, "autumn", "cancelled", now=pipeline.clock())  # its first email waits to be sent
    _render_and_send(pipeline, needs)
    recipients = [send["Destination"]["ToAddresses"] for send in pipeline.ses.sends]
    assert ["spring@example.com"] in recipients and ["autumn@example.com"] not in recipients


def _erasure_key(pipeline) -> bytes:  # noqa: F811 - the imported pytest fixture
    from postline.tokens import KeyRing

    secret = pipeline.session.client("secretsmanager").get_secret_value(SecretId=resources.SIGNING_SECRET)
    return KeyRing.from_secret(secret["SecretString"]).erasure_key


def _render_and_send(pipeline, needs: Needs) -> None:  # noqa: F811 - the imported pytest fixture
    render, send = pipeline.render_context(), pipeline.send_context()
    for name, records in _queued(pipeline, resources.INBOUND_QUEUES.values()):
        with needs.acting_as("render"):
            result = render_batch(records, render)
        pipeline.settle(name, records, result)
    for name, records in _queued(pipeline, resources.SEND_QUEUES.values()):
        with needs.acting_as("send"):
            result = send_batch(records, send)
        pipeline.settle(name, records, result)


@pytest.fixture
def needs(pipeline, monkeypatch):  # noqa: F811  (the fixture imported above)
    recorder = Needs()
    recorder.install(monkeypatch)
    for model in ALL_MODELS:  # PynamoDB connects again, through the hooked client factory
        model._connection = None
    pipeline.ses._sesv2 = pipeline.session.client("sesv2")
    _walk_every_path(pipeline, recorder)
    monkeypatch.setattr(fanout, "PAGE", 1)  # a page per recipient: a run can stop between two
    _walk_campaigns(pipeline, recorder)
    return recorder.by_function


def test_every_path_was_walked_by_every_function(synth, needs):
    assert set(needs) == set(synth.stack.functions.functions)
    assert ("dynamodb:ConditionCheckItem", "postline-email-suppressions") in needs["send"]  # critical mail
    assert ("sqs:SendMessage", "postline-transactional") in needs["ses_events"]  # a soft-bounce retry soon
    assert ("sqs:SendMessage", "postline-ses-events-dlq") in needs["ses_events"]  # an unreadable event
    assert ("sqs:SendMessage", "postline-send-transactional") in needs["send"]  # SES throttled: back, delayed
    assert ("dynamodb:DeleteItem", "postline-email-events") in needs["send"]  # an erased recipient's request
    assert ("secretsmanager:GetSecretValue", None) in needs["ses_events"]  # a bounce: was its address erased?
    assert ("s3:GetObject", resources.CLAIM_CHECK_BUCKET) in needs["send"]  # a body parked by render
    assert ("scheduler:CreateSchedule", None) in needs["ses_events"]  # and one later
    assert ("s3:GetObject", resources.CLAIM_CHECK_BUCKET) in needs["campaign"]  # the audience
    assert ("sqs:SendMessage", "postline-marketing") in needs["campaign"]  # recipients handed on
    assert ("sqs:SendMessage", "postline-campaigns") in needs["campaign"]  # out of time: the next run
    assert ("sqs:SendMessage", "postline-campaigns-dlq") in needs["campaign"]  # an unreadable control message
    assert ("scheduler:CreateSchedule", None) in needs["campaign"]  # tomorrow's window
    assert ("dynamodb:UpdateItem", "postline-campaigns") in needs["send"]  # a cancelled campaign's email counted
    assert ("s3:PutObject", resources.UNSUBSCRIBE_MAIL_BUCKET) in needs["unsubscribe_mail"]  # an email kept
    assert ("sqs:SendMessage", "postline-unsubscribe-mail-dlq") in needs["unsubscribe_mail"]  # a refused one


def test_each_function_role_allows_every_call_it_makes(synth, needs):
    refused = {function: sorted(f"{action} on {resource or 'its resource'}" for action, resource in wanted
                                if not _allowed(synth, function, action, resource))
               for function, wanted in needs.items()}
    assert not any(refused.values()), refused
