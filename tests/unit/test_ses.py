"""The SES transport: what one SendEmail call carries, and what each kind of answer means for the message."""
from __future__ import annotations

import re

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from postline.ses import MESSAGE_ID_TAG, PERMANENT, SENT, TRANSIENT, TRANSIENT_CODES, UNKNOWN, send_raw

from .fakes import client_error

ENDPOINT = "https://email.us-east-1.amazonaws.com"
MIME = b"From: hello@mail.example.com\r\nTo: ada@example.com\r\nSubject: Hi\r\n\r\nHello\r\n"


class FakeSES:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[dict] = []

    def send_email(self, **kwargs):
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return {"MessageId": "0100018f-aaaa-bbbb-cccc-000000000000-000000"}


def send(ses, **overrides):
    arguments = dict(message_id="mabc123", sender="Lumen <hello@mail.example.com>", recipient="ada@example.com",
                     mime=MIME, configuration_set="postline-transactional", stream="transactional",
                     template="welcome", campaign=None, tags={})
    arguments.update(overrides)
    return send_raw(ses, **arguments)


def tags_of(call: dict) -> dict[str, str]:
    return {t["Name"]: t["Value"] for t in call["EmailTags"]}


def test_success_returns_sent_with_the_ses_message_id():
    ses = FakeSES()
    result = send(ses)
    assert result.kind == SENT
    assert result.ses_message_id == "0100018f-aaaa-bbbb-cccc-000000000000-000000"
    assert len(ses.calls) == 1


def test_the_call_carries_raw_mime_recipient_and_configuration_set():
    ses = FakeSES()
    send(ses, configuration_set="postline-marketing")
    call = ses.calls[0]
    assert call["Content"] == {"Raw": {"Data": MIME}}
    assert call["Destination"] == {"ToAddresses": ["ada@example.com"]}
    assert call["FromEmailAddress"] == "Lumen <hello@mail.example.com>"
    assert call["ConfigurationSetName"] == "postline-marketing"


def test_the_call_is_tagged_with_postlines_message_id_stream_template_and_campaign():
    ses = FakeSES()
    send(ses, campaign="june-2025", tags={"plan": "pro"}, stream="marketing", template="newsletter")
    tags = tags_of(ses.calls[0])
    assert tags[MESSAGE_ID_TAG] == "mabc123"
    assert MESSAGE_ID_TAG == "postline_message_id"
    assert tags["postline_stream"] == "marketing"
    assert tags["postline_template"] == "newsletter"
    assert tags["postline_campaign"] == "june-2025"
    assert tags["plan"] == "pro"


def test_no_campaign_tag_without_a_campaign():
    ses = FakeSES()
    send(ses)
    assert "postline_campaign" not in tags_of(ses.calls[0])


@pytest.mark.parametrize("value", ["spring sale 2025!", "a/b:c", "naïve", "x" * 300, "", "tab\tand\nnewline",
                                   "2026.12", "ops@example.com"])
def test_tag_values_are_sanitised_to_what_ses_accepts(value):
    ses = FakeSES()
    send(ses, campaign=value or None, tags={"note": value}, template="news letter/v2")
    for tag in ses.calls[0]["EmailTags"]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", tag["Value"]), tag  # SES refuses the send otherwise


def test_sanitised_values_keep_their_safe_characters():
    ses = FakeSES()
    send(ses, tags={"note": "spring sale!"}, campaign="c-1.2@x")
    tags = tags_of(ses.calls[0])
    assert tags["note"] == "spring_sale_"
    assert tags["postline_campaign"] == "c-1_2_x"


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_transient_ses_errors_mean_retry_later(code):
    result = send(FakeSES(client_error(code, "slow down", "SendEmail")))
    assert result.kind == TRANSIENT
    assert code in result.reason and result.ses_message_id is None


@pytest.mark.parametrize("code", ["MessageRejected", "BadRequestException", "InvalidParameterValue"])
def test_rejections_are_permanent_with_the_reason(code):
    result = send(FakeSES(client_error(code, "Illegal address", "SendEmail")))
    assert result.kind == PERMANENT
    assert result.reason == f"SES {code}: Illegal address"


def test_message_rejected_is_permanent():
    assert send(FakeSES(client_error("MessageRejected", "Illegal header", "SendEmail"))).kind == PERMANENT


@pytest.mark.parametrize("error", [ReadTimeoutError(endpoint_url=ENDPOINT),
                                   ConnectionClosedError(endpoint_url=ENDPOINT)])
def test_no_answer_after_sending_is_unknown_so_the_claim_is_kept(error):
    result = send(FakeSES(error))
    assert result.kind == UNKNOWN
    assert result.ses_message_id is None
    assert "no answer from SES" in result.reason


@pytest.mark.parametrize("error", [EndpointConnectionError(endpoint_url=ENDPOINT),
                                   ConnectTimeoutError(endpoint_url=ENDPOINT)])
def test_request_that_never_reached_ses_is_transient(error):
    result = send(FakeSES(error))
    assert result.kind == TRANSIENT
    assert "unreachable" in result.reason


def test_each_send_is_one_call_never_retried_here():
    ses = FakeSES(ReadTimeoutError(endpoint_url=ENDPOINT))
    send(ses)
    assert len(ses.calls) == 1


@pytest.mark.parametrize("code, status", [("InternalFailure", 500), ("ServiceUnavailable", 503),
                                          ("SomethingNew", 502)])
def test_a_server_error_is_an_unknown_outcome_not_a_refusal(code, status):
    # AWS does not say a 5xx answer means the email was not accepted: the claim must be kept.
    answer = send(FakeSES(client_error(code, "oops", "SendEmail", ResponseMetadata={"HTTPStatusCode": status})))
    assert answer.kind == UNKNOWN and code in answer.reason


def test_an_error_botocore_raises_before_any_request_is_a_refusal():
    from botocore.exceptions import ParamValidationError

    answer = send(FakeSES(ParamValidationError(report="Invalid type for parameter FromEmailAddress")))
    assert answer.kind == PERMANENT


def test_any_other_error_while_sending_is_an_unknown_outcome():
    answer = send(FakeSES(RuntimeError("connection reset in the middle of the answer")))
    assert answer.kind == UNKNOWN and "RuntimeError" in answer.reason


def test_each_email_says_which_attempt_it_is():
    ses = FakeSES()
    send(ses)
    send(ses, retry=2)
    assert [{t["Name"]: t["Value"] for t in call["EmailTags"]}["postline_retry"] for call in ses.calls] == ["0", "2"]


def test_the_ses_client_gives_up_well_before_the_send_function_does():
    """A hung SendEmail becomes an unknown outcome the function records, not a timeout that fails its batch."""
    from infra.stacks.constants import FUNCTIONS
    from postline.clients import SES_CONFIG

    config = SES_CONFIG
    function_timeout = FUNCTIONS["send"].timeout.to_seconds()
    assert config.connect_timeout + config.read_timeout <= function_timeout / 3
    assert config.retries["total_max_attempts"] == 1
