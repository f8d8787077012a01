"""The local endpoint's fault injector (postline_cli.local.faults): each fault is answered as AWS answers it, so
botocore raises the ClientError code postline meets in AWS; every fault injected is logged.

The requests go from real boto3 clients through botocore's whole stack (signing, serialising, parsing, retries)
into the middleware, called in-process by a ``before-send`` hook instead of over a socket; only the lost reply,
which is about the socket, is tested on a loopback server."""
from __future__ import annotations

import io
import json
import threading
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from werkzeug.test import EnvironBuilder

from postline_cli.local.faults import FAULT_LOG, DropConnection, FaultInjector, parse_spec

NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


def calling(app, service: str, config: Config = NO_RETRIES):
    """A boto3 client whose requests ``app`` (a WSGI application) answers in-process."""
    client = boto3.client(service, endpoint_url="http://127.0.0.1:4566", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing", config=config)

    def answer(request, **_):
        url = urlsplit(request.url)
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        headers = {name: value.decode() if isinstance(value, bytes) else value
                   for name, value in request.headers.items()}
        environ = EnvironBuilder(path=url.path, query_string=url.query, method=request.method, headers=headers,
                                 data=body).get_environ()
        environ["wsgi.input"] = io.BytesIO(body)  # as the local endpoint's handler gives it
        started = {}

        def start_response(status, response_headers, exc_info=None):
            started.update(status=int(status.split()[0]), headers=dict(response_headers))
            return lambda _: None

        answered = b"".join(app(environ, start_response))
        return AWSResponse(request.url, started["status"], started["headers"], _Raw(answered))

    client.meta.events.register("before-send", answer)
    return client


class Moto:
    """moto's server application, counting the requests that reach it."""

    def __init__(self):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.app = DomainDispatcherApplication(create_backend_app)
        self.reached = 0

    def __call__(self, environ, start_response):
        self.reached += 1
        return self.app(environ, start_response)


def injector(tmp_path, spec: str) -> FaultInjector:
    return FaultInjector.from_spec(spec, str(tmp_path))


def logged(tmp_path) -> list[dict]:
    path = tmp_path / FAULT_LOG
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def code_of(error: pytest.ExceptionInfo) -> tuple[str, str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]


def send_email(sesv2):
    return sesv2.send_email(FromEmailAddress="hello@mail.example.com", Destination={"ToAddresses": ["a@example.com"]},
                            Content={"Raw": {"Data": b"Subject: hi\r\n\r\nhello\r\n"}})


@pytest.fixture(scope="module")
def moto_app():
    return Moto()


@pytest.fixture(scope="module")
def verified_sender(moto_app):
    calling(moto_app, "sesv2").create_email_identity(EmailIdentity="mail.example.com")


def test_a_spec_names_kinds_with_rates_a_seed_and_each_once():
    assert parse_spec("ses_throttle=0.03, sqs_duplicate=0.02,seed=7,each_once=1") == (
        {"ses_throttle": 0.03, "sqs_duplicate": 0.02}, 7, True)
    assert parse_spec("") == ({}, None, False)


@pytest.mark.parametrize(("spec", "message"), [
    ("ses_slow=0.1", "unknown fault 'ses_slow' (known: ses_throttle, ses_5xx, ses_lost_reply, dynamodb_throttle, "
                     "dynamodb_5xx, s3_5xx, sqs_duplicate, ses_event_duplicate, ses_event_swap, seed, each_once)"),
    ("ses_5xx=2", "the rate of ses_5xx must be a number from 0 to 1, not '2'"),
    ("ses_5xx=lots", "the rate of ses_5xx must be a number from 0 to 1, not 'lots'"),
    ("ses_5xx", "'ses_5xx' is not kind=rate"),
    ("seed=x", "seed must be a whole number, not 'x'"),
])
def test_a_bad_spec_is_refused_naming_the_variable_and_the_problem(tmp_path, spec, message):
    with pytest.raises(ValueError) as refused:
        FaultInjector.from_environment(str(tmp_path), {"POSTLINE_LOCAL_ENDPOINT_FAULTS": spec})
    assert str(refused.value) == f"POSTLINE_LOCAL_ENDPOINT_FAULTS: {message}"


def test_no_spec_or_zero_rates_inject_nothing(tmp_path):
    assert FaultInjector.from_environment(str(tmp_path), {}) is None
    assert FaultInjector.from_spec("ses_5xx=0,seed=3", str(tmp_path)) is None


def test_ses_throttle_is_too_many_requests_with_ses_words(tmp_path, moto_app):
    sesv2 = calling(injector(tmp_path, "ses_throttle=1").middleware(moto_app), "sesv2")
    with pytest.raises(ClientError) as refused:
        send_email(sesv2)
    assert code_of(refused) == ("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
    assert [(e["kind"], e["service"], e["action"]) for e in logged(tmp_path)] == [("ses_throttle", "ses",
                                                                                    "SendEmail")]
    assert isinstance(logged(tmp_path)[0]["time"], float)


def test_ses_5xx_is_an_internal_failure_and_sends_nothing(tmp_path, moto_app):
    before = moto_app.reached
    sesv2 = calling(injector(tmp_path, "ses_5xx=1").middleware(moto_app), "sesv2")
    with pytest.raises(ClientError) as refused:
        send_email(sesv2)
    code, _, status = code_of(refused)
    assert (code, status) == ("InternalFailure", 500)
    assert moto_app.reached == before


def test_postline_hears_ses_faults_as_it_hears_ses(tmp_path, moto_app):
    """The SES transport's reading of each: a throttle waits for the rate, a 5xx is an unknown outcome."""
    from postline.ses import RATE_THROTTLE, TRANSIENT, UNKNOWN, send_raw

    def outcome(spec: str):
        sesv2 = calling(injector(tmp_path, spec).middleware(moto_app), "sesv2")
        return send_raw(sesv2, message_id="m-1", sender="hello@mail.example.com", recipient="a@example.com",
                        mime=b"Subject: hi\r\n\r\nhello\r\n", configuration_set="postline-critical",
                        stream="critical", template="password-reset", campaign=None, tags={})

    throttled = outcome("ses_throttle=1")
    assert (throttled.kind, throttled.throttle) == (TRANSIENT, RATE_THROTTLE)
    assert outcome("ses_5xx=1").kind == UNKNOWN


@pytest.mark.parametrize(("seed", "code", "status"), [
    (1, "ProvisionedThroughputExceededException", 400),
    (0, "ThrottlingException", 400),
])
def test_dynamodb_throttle_is_one_of_dynamodbs_two_throttles(tmp_path, moto_app, seed, code, status):
    app = FaultInjector({"dynamodb_throttle": 1.0}, str(tmp_path / FAULT_LOG), seed=seed).middleware(moto_app)
    dynamodb = calling(app, "dynamodb")
    with pytest.raises(ClientError) as refused:
        dynamodb.get_item(TableName="anything", Key={"pk": {"S": "x"}})
    assert code_of(refused)[::2] == (code, status)


def test_dynamodb_5xx_is_an_internal_server_error(tmp_path, moto_app):
    dynamodb = calling(injector(tmp_path, "dynamodb_5xx=1").middleware(moto_app), "dynamodb")
    with pytest.raises(ClientError) as refused:
        dynamodb.update_item(TableName="anything", Key={"pk": {"S": "x"}}, UpdateExpression="SET a = :a",
                             ExpressionAttributeValues={":a": {"S": "b"}})
    assert code_of(refused) == ("InternalServerError", "Internal server error", 500)


def test_dynamodb_faults_are_retried_by_botocore_as_throttles_and_server_errors(tmp_path, moto_app):
    """With the retries postline's clients have (standard, 4 attempts), a fault on the first attempt only is not
    seen: the table is created, then the item read on the second attempt."""
    setup = calling(moto_app, "dynamodb")
    setup.create_table(TableName="faults-retried", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                       BillingMode="PAY_PER_REQUEST")
    faults = injector(tmp_path, "dynamodb_throttle=0.000001,each_once=1")  # the first chance only
    dynamodb = calling(faults.middleware(moto_app), "dynamodb",
                       Config(retries={"mode": "standard", "max_attempts": 4}))
    assert dynamodb.get_item(TableName="faults-retried", Key={"pk": {"S": "x"}}).get("Item") is None
    assert [e["kind"] for e in logged(tmp_path)] == ["dynamodb_throttle"]


def test_setup_calls_are_never_disturbed(tmp_path, moto_app):
    dynamodb = calling(injector(tmp_path, "dynamodb_throttle=1,dynamodb_5xx=1").middleware(moto_app), "dynamodb")
    dynamodb.create_table(TableName="faults-setup", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    assert logged(tmp_path) == []


@pytest.mark.parametrize(("seed", "code", "status"), [(1, "SlowDown", 503), (0, "InternalError", 500)])
def test_s3_5xx_is_slow_down_or_internal_error(tmp_path, moto_app, seed, code, status):
    calling(moto_app, "s3").create_bucket(Bucket="faults-bucket")
    app = FaultInjector({"s3_5xx": 1.0}, str(tmp_path / FAULT_LOG), seed=seed).middleware(moto_app)
    s3 = calling(app, "s3")
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="faults-bucket", Key="mime/m-1")
    assert code_of(refused)[::2] == (code, status)
    assert logged(tmp_path)[0]["action"] == "GetObject"


def test_sqs_duplicate_hands_a_received_message_out_again(tmp_path, moto_app):
    sqs = calling(injector(tmp_path, "sqs_duplicate=1").middleware(moto_app), "sqs")
    url = sqs.create_queue(QueueName="faults-inbound")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=300)["Messages"]
    again = sqs.receive_message(QueueUrl=url, VisibilityTimeout=300)["Messages"]
    assert [m["Body"] for m in first] == [m["Body"] for m in again] == ["one"]
    assert first[0]["MessageId"] == again[0]["MessageId"]
    assert first[0]["ReceiptHandle"] != again[0]["ReceiptHandle"]
    assert [(e["kind"], e["action"]) for e in logged(tmp_path)] == [("sqs_duplicate", "ReceiveMessage")] * 2


def test_dead_letter_queues_are_never_handed_out_twice(tmp_path, moto_app):
    sqs = calling(injector(tmp_path, "sqs_duplicate=1").middleware(moto_app), "sqs")
    url = sqs.create_queue(QueueName="faults-inbound-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    assert len(sqs.receive_message(QueueUrl=url, VisibilityTimeout=300)["Messages"]) == 1
    assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=300).get("Messages", []) == []


def test_a_lost_reply_applies_the_send_then_drops_the_connection(tmp_path, moto_app, verified_sender):
    from moto.sesv2.models import sesv2_backends

    sent = sesv2_backends["123456789012"]["us-east-1"].core_backend.sent_message_count
    sesv2 = calling(injector(tmp_path, "ses_lost_reply=1").middleware(moto_app), "sesv2")
    with pytest.raises(DropConnection):
        send_email(sesv2)
    assert sesv2_backends["123456789012"]["us-east-1"].core_backend.sent_message_count == sent + 1
    assert [e["kind"] for e in logged(tmp_path)] == ["ses_lost_reply"]


def test_the_endpoint_answers_a_lost_reply_with_a_closed_connection(tmp_path, verified_sender):
    """On the endpoint's own server (loopback): botocore sees the connection closed, as after SES accepted."""
    from postline_cli.local.aws_endpoint import keep_alive_server

    server = keep_alive_server("127.0.0.1", 0, injector(tmp_path, "ses_lost_reply=1"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sesv2 = boto3.client("sesv2", endpoint_url=f"http://127.0.0.1:{server.server_port}", region_name="us-east-1",
                             aws_access_key_id="testing", aws_secret_access_key="testing", config=NO_RETRIES)
        with pytest.raises(ConnectionClosedError):
            send_email(sesv2)
        assert sesv2.get_email_identity(EmailIdentity="mail.example.com")["IdentityType"] == "DOMAIN"
    finally:
        server.shutdown()


def test_ses_events_are_published_twice_or_after_the_next_one(tmp_path):
    events = [{"eventType": "Delivery", "n": 1}, {"eventType": "Bounce", "n": 2}, {"eventType": "Complaint", "n": 3}]
    assert [e["n"] for e in injector(tmp_path, "ses_event_duplicate=1").disturb(events)] == [1, 1, 2, 2, 3, 3]
    assert [e["n"] for e in injector(tmp_path, "ses_event_swap=1").disturb(events)] == [2, 1, 3]
    assert [(e["kind"], e["service"], e["action"]) for e in logged(tmp_path)][-2:] == [
        ("ses_event_duplicate", "ses-events", "Complaint"), ("ses_event_swap", "ses-events", "Delivery")]


def test_each_once_gives_every_kind_at_its_first_chance(tmp_path):
    faults = injector(tmp_path, "ses_event_duplicate=0.000001,each_once=1")
    assert [e["n"] for e in faults.disturb([{"n": 1}, {"n": 2}])] == [1, 1, 2]
    assert [e["n"] for e in faults.disturb([{"n": 3}])] == [3]
