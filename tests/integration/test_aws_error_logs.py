"""An AWS error's message may quote what its request carried (an address, a value of the message's data): the
render, limiter and application-event log lines that name such an error redact it
(postline.batch.loggable), and the work goes on."""
from __future__ import annotations

import json
from pathlib import Path

from botocore.exceptions import ClientError

from postline.app_events import AppEvent, publish
from postline.limiter import Limiter
from postline_cli.local import resources
from postline_cli.local.resources import TABLES
from tests.integration.conftest import Clock, SesAccount
from tests.integration.test_limiter import dynamodb  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "priya.quoted-k93@example.com"


def quoting(operation: str) -> ClientError:
    message = f"One or more parameter values were invalid: {ADDRESS} in 'Priya Secret-Plan'"
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation)


def logged(caplog, message: str):
    [record] = [r for r in caplog.records if r.getMessage() == message]
    return record


class RefusingBatchWrites:
    """The render function's DynamoDB client, whose BatchWriteItem (keeping the send message) fails quoting it."""

    def __init__(self, client):
        self.client = client

    def batch_write_item(self, **kwargs):
        raise quoting("BatchWriteItem")

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_a_failed_keep_for_soft_bounce_retries_is_logged_without_what_the_error_quotes(pipeline, caplog):
    data = json.loads((ROOT / "templates" / "welcome" / "example.json").read_text())
    pipeline.enqueue("transactional", {"template": "welcome", "to": ADDRESS, "data": data, "id": "kept-1"})
    ctx = pipeline.render_context(dynamodb=RefusingBatchWrites(pipeline.session.client("dynamodb")))
    with caplog.at_level("INFO"):
        pipeline.run_render(ctx)
    record = logged(caplog, "could not keep send messages for soft-bounce retries")
    assert record.error.startswith(
        "ClientError: An error occurred (ValidationException) when calling the BatchWriteItem operation: One or more "
        "parameter values were invalid: <redacted> in <redacted> at ")
    assert "priya" not in caplog.text.lower() and "Secret-Plan" not in caplog.text
    assert len(pipeline.receive(resources.SEND_QUEUES["transactional"])) == 1  # the email goes out either way


class FailingAfterFirstRead(SesAccount):
    def __init__(self):
        super().__init__()
        self.reads = 0

    def get_account(self):
        self.reads += 1
        if self.reads > 1:
            raise quoting("GetAccount")
        return super().get_account()


def test_a_failed_quota_read_is_logged_without_what_the_error_quotes(dynamodb, caplog):  # noqa: F811
    clock = Clock(1_800_000_000.0)
    ses = FailingAfterFirstRead()
    container = Limiter(dynamodb, ses, TABLES["POSTLINE_RATE_LIMITS_TABLE"], clock=clock)
    container.take("critical", 1)
    clock.at += container.quota_refresh_seconds + 1
    with caplog.at_level("INFO"):
        assert len(container.take("critical", 1).slots) == 1  # the last quota stands
    assert ses.reads == 2
    record = logged(caplog, "could not read the SES quota: the last one stands")
    assert record.error == ("ClientError: An error occurred (ValidationException) when calling the GetAccount "
                            "operation: One or more parameter values were invalid: <redacted> in <redacted>")
    assert "priya" not in caplog.text.lower()




class QuotingEventBridge:
    """The application events' client, whose PutEvents fails quoting what an entry carried."""

    def put_events(self, **kwargs):
        raise quoting("PutEvents")


def test_a_failed_application_event_is_logged_without_what_the_error_quotes(caplog):
    event = AppEvent("email.bounced", "m-quoted", 1_800_000_000.0, to=ADDRESS)
    with caplog.at_level("INFO"):
        assert publish(QuotingEventBridge(), "postline-events", [event], ("email.bounced",)) == 1
    record = logged(caplog, "could not publish application events")
    assert record.error.startswith("ClientError: An error occurred (ValidationException) when calling the PutEvents "
                                   "operation: One or more parameter values were invalid: <redacted> in <redacted> at ")
    assert "priya" not in caplog.text.lower() and "Secret-Plan" not in caplog.text
