"""The local SES endpoint writes each accepted raw email to the outbox with the Message-ID and Date SES gives it."""
from __future__ import annotations

import email
import email.policy
import json

import boto3
from moto import mock_aws
from moto.sesv2 import urls as sesv2_urls
from moto.sesv2.responses import SESV2Response

from postline.mime import build_mime
from postline_cli.local import aws_endpoint


def test_the_outbox_email_has_ses_message_id_and_date_and_the_body_as_sent(tmp_path, monkeypatch):
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(SESV2Response, "send_email", SESV2Response.send_email)  # put back after the test
    monkeypatch.setattr(SESV2Response, "get_account", None, raising=False)  # likewise GetAccount and its route
    monkeypatch.setattr(sesv2_urls, "url_paths", dict(sesv2_urls.url_paths))
    outbox, send_log = tmp_path / "outbox", tmp_path / "sends.jsonl"
    aws_endpoint.install_ses_recorder(str(outbox), str(send_log))
    mime = build_mime(sender="Lumen <hello@mail.example.com>", recipient="ada@example.com", subject="Hi",
                      text="Hello\n" * 500, html="<p>Hello</p>" * 500)
    mime = mime.replace(b"Subject: Hi\r\n", b"Subject: Hi\r\nMessage-ID:\r\n <chosen-by-the-app@example.com>\r\n")
    with mock_aws():
        ses = boto3.client("sesv2", region_name="us-east-1")
        ses.create_email_identity(EmailIdentity="mail.example.com")
        ses_id = ses.send_email(Destination={"ToAddresses": ["ada@example.com"]}, Content={"Raw": {"Data": mime}},
                                EmailTags=[{"Name": "postline_message_id", "Value": "m1"}])["MessageId"]

    written = (outbox / "m1.eml").read_bytes()
    parsed = email.message_from_bytes(written, policy=email.policy.default)
    assert parsed.get_all("Message-ID") == [f"<{ses_id}@email.amazonses.com>"]
    [date] = parsed.get_all("Date")
    accepted_at = json.loads(send_log.read_text())["timestamp"]
    assert date.datetime.timestamp() == int(accepted_at)
    assert written.split(b"\r\n\r\n", 1)[1] == mime.split(b"\r\n\r\n", 1)[1]
