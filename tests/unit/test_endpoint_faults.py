"""The local endpoint's fault injector (postline_cli.local.faults): each fault is answered as AWS answers it, so
botocore raises the ClientError code postline meets in AWS; every fault injected is logged.

The requests go from real boto3 clients through botocore's whole stack (signing, serialising, parsing, retries)
into the middleware, called in-process by a ``before-send`` hook instead of over a socket; only the lost reply,
which is about the socket, is tested on a loopback server."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
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


def send_email(sesv2, message_id: str | None = None):
    tags = [{"Name": "postline_message_id", "Value": message_id}] if message_id else []
    return sesv2.send_email(FromEmailAddress="hello@mail.example.com", Destination={"ToAddresses": ["a@example.com"]},
                            Content={"Raw": {"Data": b"Subject: hi\r\n\r\nhello\r\n"}}, EmailTags=tags)


def ses_sent() -> int:
    from moto.sesv2.models import sesv2_backends

    return sesv2_backends["123456789012"]["us-east-1"].core_backend.sent_message_count


@pytest.fixture(scope="module")
def moto_app():
    return Moto()


@pytest.fixture(scope="module")
def verified_sender(moto_app):
    calling(moto_app, "sesv2").create_email_identity(EmailIdentity="mail.example.com")


def test_a_spec_names_kinds_with_rates_a_seed_and_each_once():
    assert parse_spec("ses_throttle=0.03, sqs_duplicate=0.02,seed=7,each_once=1,kill_gap=5") == (
        {"ses_throttle": 0.03, "sqs_duplicate": 0.02}, 7, True, 5.0)
    assert parse_spec("") == ({}, None, False, 20.0)


@pytest.mark.parametrize(("spec", "message"), [
    ("ses_slow=0.1", "unknown fault 'ses_slow' (known: ses_throttle, ses_5xx, ses_lost_reply, ses_timeout_before, "
                     "ses_timeout_after, ses_rejected, dynamodb_throttle, dynamodb_5xx, dynamodb_5xx_applied, "
                     "dynamodb_unavailable, s3_5xx, sqs_duplicate, sqs_visibility_lapse, kill_before_ses, "
                     "kill_after_ses, kill_after_sent, ses_event_duplicate, ses_event_swap, seed, each_once, "
                     "kill_gap)"),
    ("ses_5xx=2", "the rate of ses_5xx must be a number from 0 to 1, not '2'"),
    ("ses_5xx=lots", "the rate of ses_5xx must be a number from 0 to 1, not 'lots'"),
    ("ses_5xx", "'ses_5xx' is not kind=rate"),
    ("seed=x", "seed must be a whole number, not 'x'"),
    ("kill_gap=-1", "kill_gap must be a number of seconds, 0 or more, not '-1'"),
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
    from postline.ses import PERMANENT, RATE_THROTTLE, TRANSIENT, UNKNOWN, send_raw

    def outcome(spec: str):
        sesv2 = calling(injector(tmp_path, spec).middleware(moto_app), "sesv2")
        return send_raw(sesv2, message_id="m-1", sender="hello@mail.example.com", recipient="a@example.com",
                        mime=b"Subject: hi\r\n\r\nhello\r\n", configuration_set="postline-critical",
                        stream="critical", template="password-reset", campaign=None, tags={})

    throttled = outcome("ses_throttle=1")
    assert (throttled.kind, throttled.throttle) == (TRANSIENT, RATE_THROTTLE)
    assert outcome("ses_5xx=1").kind == UNKNOWN
    rejected = outcome("ses_rejected=1")
    assert (rejected.kind, rejected.reason) == (
        PERMANENT, "SES MessageRejected: The message can't be sent because it contains invalid content.")


def test_ses_rejected_is_message_rejected_and_sends_nothing(tmp_path, moto_app):
    before = moto_app.reached
    sesv2 = calling(injector(tmp_path, "ses_rejected=1").middleware(moto_app), "sesv2")
    with pytest.raises(ClientError) as refused:
        send_email(sesv2, "m-rejected")
    assert code_of(refused) == (
        "MessageRejected", "The message can't be sent because it contains invalid content.", 400)
    assert moto_app.reached == before
    assert [(e["kind"], e["message_id"]) for e in logged(tmp_path)] == [("ses_rejected", "m-rejected")]


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


def test_dynamodb_unavailable_is_a_503_service_unavailable(tmp_path, moto_app):
    dynamodb = calling(injector(tmp_path, "dynamodb_unavailable=1").middleware(moto_app), "dynamodb")
    with pytest.raises(ClientError) as refused:
        dynamodb.get_item(TableName="anything", Key={"pk": {"S": "x"}})
    assert code_of(refused) == ("ServiceUnavailable", "Service Unavailable", 503)


def _table(moto_app, name: str) -> None:
    calling(moto_app, "dynamodb").create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")


def test_dynamodb_5xx_applied_writes_then_answers_an_internal_server_error(tmp_path, moto_app):
    _table(moto_app, "faults-applied")
    dynamodb = calling(injector(tmp_path, "dynamodb_5xx_applied=1").middleware(moto_app), "dynamodb")
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName="faults-applied", Item={"pk": {"S": "x"}, "n": {"N": "1"}})
    assert code_of(refused) == ("InternalServerError", "Internal server error", 500)
    found = calling(moto_app, "dynamodb").get_item(TableName="faults-applied", Key={"pk": {"S": "x"}})
    assert found["Item"]["n"] == {"N": "1"}
    assert [(e["kind"], e["action"]) for e in logged(tmp_path)] == [("dynamodb_5xx_applied", "PutItem")]


def test_a_conditional_write_retried_after_an_applied_5xx_meets_its_own_write(tmp_path, moto_app):
    """As in DynamoDB: botocore retries the 500, and the condition fails on the first attempt's item."""
    _table(moto_app, "faults-conditional")
    faults = injector(tmp_path, "dynamodb_5xx_applied=0.000001,each_once=1")  # the first attempt only
    dynamodb = calling(faults.middleware(moto_app), "dynamodb", Config(retries={"mode": "standard", "max_attempts": 4}))
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName="faults-conditional", Item={"pk": {"S": "x"}},
                          ConditionExpression="attribute_not_exists(pk)")
    assert code_of(refused)[::2] == ("ConditionalCheckFailedException", 400)


def test_a_transaction_retried_with_its_token_after_an_applied_5xx_succeeds_once(tmp_path, moto_app):
    """DynamoDB answers a TransactWriteItems repeated with the same ClientRequestToken (botocore's retry) as done,
    changing nothing: the counter is added to once."""
    _table(moto_app, "faults-transaction")
    faults = injector(tmp_path, "dynamodb_5xx_applied=0.000001,each_once=1")
    dynamodb = calling(faults.middleware(moto_app), "dynamodb", Config(retries={"mode": "standard", "max_attempts": 4}))
    dynamodb.transact_write_items(TransactItems=[{"Update": {
        "TableName": "faults-transaction", "Key": {"pk": {"S": "x"}}, "UpdateExpression": "ADD n :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}}}}])
    found = calling(moto_app, "dynamodb").get_item(TableName="faults-transaction", Key={"pk": {"S": "x"}})
    assert found["Item"]["n"] == {"N": "1"}
    assert [e["kind"] for e in logged(tmp_path)] == ["dynamodb_5xx_applied"]


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


def test_sqs_visibility_lapse_hands_a_message_out_again_while_it_is_worked_on(tmp_path, moto_app, monkeypatch):
    from moto.sqs import models

    sqs = calling(injector(tmp_path, "sqs_visibility_lapse=1").middleware(moto_app), "sqs")
    url = sqs.create_queue(QueueName="faults-lapse")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=300)["Messages"]
    assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=300).get("Messages", []) == []  # not at once
    now = models.unix_time_millis
    monkeypatch.setattr(models, "unix_time_millis", lambda dt=None: now(dt) + 2_500)  # 2.5 s on, not 300
    again = sqs.receive_message(QueueUrl=url, VisibilityTimeout=300)["Messages"]
    assert [m["MessageId"] for m in again] == [m["MessageId"] for m in first]
    assert first[0]["ReceiptHandle"] != again[0]["ReceiptHandle"]
    assert [e["kind"] for e in logged(tmp_path)][0] == "sqs_visibility_lapse"


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


@pytest.fixture
def loopback(tmp_path, verified_sender):
    """The endpoint's own server on loopback with a fault spec, and an SESv2 client reading with ``read_timeout``."""
    from postline_cli.local.aws_endpoint import keep_alive_server

    servers = []

    def serve(spec: str, read_timeout: float = 60.0, hold_seconds: float = 1.0):
        faults = FaultInjector.from_spec(spec, str(tmp_path), hold_seconds=hold_seconds)
        server = keep_alive_server("127.0.0.1", 0, faults)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return boto3.client("sesv2", endpoint_url=f"http://127.0.0.1:{server.server_port}", region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=NO_RETRIES.merge(Config(read_timeout=read_timeout)))

    yield serve
    for server in servers:
        server.shutdown()


def test_postlines_ses_client_times_out_before_a_held_reply():
    """The endpoint holds a timed-out reply a second past the read timeout of postline's SES client."""
    from postline.clients import SES_CONFIG

    faults = FaultInjector.from_spec("ses_timeout_before=1", "/nonexistent")
    assert faults.hold_seconds == SES_CONFIG.read_timeout + 1


@pytest.mark.parametrize(("kind", "sent"), [("ses_timeout_before", 0), ("ses_timeout_after", 1)])
def test_a_held_send_is_a_read_timeout_applied_or_not(tmp_path, loopback, kind, sent):
    """botocore raises ReadTimeoutError, as after SES's socket went quiet; the send happened only after it."""
    sesv2 = loopback(f"{kind}=1", read_timeout=0.3, hold_seconds=1.0)
    before = ses_sent()
    with pytest.raises(ReadTimeoutError):
        send_email(sesv2, "m-held")
    assert ses_sent() == before + sent
    assert [(e["kind"], e["message_id"]) for e in logged(tmp_path)] == [(kind, "m-held")]


def test_postline_reads_a_send_timed_out_as_an_unknown_outcome(loopback):
    from postline.ses import UNKNOWN, send_raw

    sesv2 = loopback("ses_timeout_before=1", read_timeout=0.3, hold_seconds=1.0)
    answer = send_raw(sesv2, message_id="m-1", sender="hello@mail.example.com", recipient="a@example.com",
                      mime=b"Subject: hi\r\n\r\nhello\r\n", configuration_set="postline-critical",
                      stream="critical", template="password-reset", campaign=None, tags={})
    assert answer.kind == UNKNOWN
    assert answer.reason.startswith("no answer from SES: ReadTimeoutError: Read timeout on endpoint URL")


@pytest.fixture
def send_worker(tmp_path):
    """A stand-in send worker (its command line names the worker module and ``send``) in the stack's state file."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "postline_cli.local.worker",
                                "send"])
    (tmp_path / "local.json").write_text(json.dumps({"workers": {"send": {"pid": process.pid, "restarts": 0}}}))
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize(("kind", "sent"), [("kill_before_ses", 0), ("kill_after_ses", 1)])
def test_the_send_worker_is_killed_before_or_after_ses_applies_its_send(tmp_path, moto_app, verified_sender,
                                                                       send_worker, kind, sent):
    sesv2 = calling(injector(tmp_path, f"{kind}=1").middleware(moto_app), "sesv2")
    before = ses_sent()
    with pytest.raises(DropConnection):
        send_email(sesv2, "m-killed")
    assert send_worker.wait(timeout=10) == -9  # SIGKILL
    assert ses_sent() == before + sent
    assert [(e["kind"], e["message_id"], e["pid"]) for e in logged(tmp_path)] == [(kind, "m-killed",
                                                                                   send_worker.pid)]


def test_the_send_worker_is_killed_once_its_sent_write_is_applied(tmp_path, moto_app, send_worker):
    _table(moto_app, "faults-messages")
    dynamodb = calling(injector(tmp_path, "kill_after_sent=1").middleware(moto_app), "dynamodb")
    key = {"pk": {"S": "m-1"}}
    dynamodb.update_item(TableName="faults-messages", Key=key, UpdateExpression="SET note = :v, claim = :t",
                         ExpressionAttributeValues={":v": {"S": "sent"}, ":t": {"S": "token"}})  # not the send's
    assert send_worker.poll() is None
    with pytest.raises(DropConnection):
        dynamodb.update_item(TableName="faults-messages", Key=key, UpdateExpression="SET #s = :s0 REMOVE claim",
                             ConditionExpression="claim = :c_claim", ExpressionAttributeNames={"#s": "status"},
                             ExpressionAttributeValues={":s0": {"S": "sent"}, ":c_claim": {"S": "token"}})
    assert send_worker.wait(timeout=10) == -9
    assert [e["kind"] for e in logged(tmp_path)] == ["kill_after_sent"]


def test_kills_wait_their_gap_and_spare_a_worker_that_is_not_running(tmp_path, moto_app, verified_sender,
                                                                   send_worker):
    sesv2 = calling(injector(tmp_path, "kill_before_ses=1").middleware(moto_app), "sesv2")
    with pytest.raises(DropConnection):
        send_email(sesv2)
    send_worker.wait(timeout=10)
    assert send_email(sesv2)["MessageId"]  # within the gap: sent, answered
    late = injector(tmp_path, "kill_before_ses=1")  # past the gap, but the worker is dead: sent, answered
    assert send_email(calling(late.middleware(moto_app), "sesv2"))["MessageId"]
    assert [e["kind"] for e in logged(tmp_path)] == ["kill_before_ses"]


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
