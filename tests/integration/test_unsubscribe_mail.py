"""Unsubscribe by email against moto: the raw message in S3, SES's notification through SNS to the function's SQS
queue, the function's handler on the batch. It unsubscribes exactly as the one-click POST does, once, however often
SES's notification comes; what it cannot apply is kept for an operator, never answered."""
from __future__ import annotations

import json

import pytest

from postline.batch import QueueRecord
from postline.contract import message_id_for
from postline.inbound_mail import KEPT, UNSUBSCRIBED, UnsubscribeMailContext, handle_batch, list_kept
from postline.models import EmailEvent, Suppression
from postline_cli.local import resources
from postline_cli.local.runner import lambda_sqs_record
from postline_cli.local.smtp_receiver import receipt_notification, store_and_notify

from .test_engagement import engagement_context, newsletter, unsubscribe_token

SENDER = "reader@example.com"


def raw_mail(subject: str, sender: str = SENDER, headers: str = "", body: str = "Please.") -> bytes:
    return (f"From: Reader <{sender}>\r\nTo: unsubscribe@{resources.UNSUBSCRIBE_DOMAIN}\r\nSubject: {subject}\r\n"
            f"{headers}Message-ID: <1@example.com>\r\n\r\n{body}\r\n").encode()


class Mailbox:
    """SES's receipt rule (the raw message in S3, its notification on the topic) and the function's queue."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.s3, self.sns, self.sqs = (pipeline.session.client(s) for s in ("s3", "sns", "sqs"))
        self.topic_arn = resources.topic_arn(resources.UNSUBSCRIBE_MAIL_TOPIC)
        self.context = UnsubscribeMailContext(pipeline.settings, s3=self.s3, sqs=self.sqs,
                                              engagement=engagement_context(pipeline), clock=pipeline.clock)

    def receive(self, raw: bytes, envelope_sender: str = SENDER) -> str:
        return store_and_notify(self.s3, self.sns, resources.UNSUBSCRIBE_MAIL_BUCKET, self.topic_arn, raw,
                                envelope_sender, [f"unsubscribe@{resources.UNSUBSCRIBE_DOMAIN}"], self.pipeline.clock())

    def records(self) -> list[QueueRecord]:
        url = self.pipeline.queue_url(resources.UNSUBSCRIBE_MAIL_QUEUE)
        messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                            MessageAttributeNames=["All"]).get("Messages", [])
        return [QueueRecord.from_event_record(lambda_sqs_record(m, resources.UNSUBSCRIBE_MAIL_QUEUE))
                for m in messages]

    def run(self) -> dict[str, tuple[str, str | None]]:
        """The function on what its queue holds: each record's outcome and reason."""
        records = self.records()
        result = handle_batch(records, self.context)
        return {r.record_id: (result.outcomes[r.record_id].result, result.outcomes[r.record_id].reason)
                for r in records}

    def kept(self):
        return list_kept(self.s3, resources.UNSUBSCRIBE_MAIL_BUCKET)


@pytest.fixture
def mailbox(pipeline):
    return Mailbox(pipeline)


def unsubscribes(message_id: str) -> list[dict]:
    return [e.detail for e in EmailEvent.query(message_id) if e.type == "unsubscribed"]


def test_an_email_with_the_token_unsubscribes_as_the_one_click_post_does(pipeline, mailbox):
    newsletter(pipeline, SENDER, "n1")
    message_id = message_id_for("n1")
    pipeline.app_events()
    mailbox.receive(raw_mail(f"unsubscribe {unsubscribe_token(pipeline, message_id)}"))
    assert list(mailbox.run().values()) == [(UNSUBSCRIBED, None)]
    suppression = Suppression.get(SENDER, "marketing")
    assert (suppression.reason, suppression.source) == ("unsubscribe", "mailto")
    assert unsubscribes(message_id) == [{"how": "mailto", "campaign": "june"}]
    [announced] = [e for e in pipeline.app_events() if e["detail-type"] == "email.unsubscribed"]
    assert announced["detail"]["detail"] == {"how": "mailto", "campaign": "june"}
    assert announced["detail"]["to"] == SENDER
    assert mailbox.kept() == []


def test_the_mailto_link_s_own_subject_is_what_the_email_carries(pipeline, mailbox):
    """The List-Unsubscribe mailto postline sends: its address and subject, as a mail client would use them."""
    import email
    import email.policy
    from urllib.parse import unquote, urlsplit

    newsletter(pipeline, SENDER, "n1")
    send = next(s for s in pipeline.ses.sends if s["tags"]["postline_message_id"] == message_id_for("n1"))
    header = email.message_from_bytes(send["Content"]["Raw"]["Data"], policy=email.policy.default)["List-Unsubscribe"]
    mailto = urlsplit(header.split(",")[1].strip(" <>"))
    assert mailto.path == f"unsubscribe@{resources.UNSUBSCRIBE_DOMAIN}"
    mailbox.receive(raw_mail(unquote(mailto.query.removeprefix("subject="))))
    assert list(mailbox.run().values()) == [(UNSUBSCRIBED, None)]
    assert Suppression.get(SENDER, "marketing").source == "mailto"


def test_a_duplicate_notification_unsubscribes_once(pipeline, mailbox):
    newsletter(pipeline, SENDER, "n1")
    message_id = message_id_for("n1")
    pipeline.app_events()
    raw = raw_mail(f"unsubscribe {unsubscribe_token(pipeline, message_id)}")
    notification = receipt_notification("dup-1", raw, SENDER, ["u@x"], resources.UNSUBSCRIBE_MAIL_BUCKET,
                                        "incoming/dup-1", mailbox.topic_arn, pipeline.clock())
    mailbox.s3.put_object(Bucket=resources.UNSUBSCRIBE_MAIL_BUCKET, Key="incoming/dup-1", Body=raw)
    for _ in range(2):  # SNS delivers at least once: the same notification twice
        mailbox.sns.publish(TopicArn=mailbox.topic_arn, Message=json.dumps(notification))
    assert sorted(o for o, _ in mailbox.run().values()) == [UNSUBSCRIBED, UNSUBSCRIBED]
    pipeline.now[0] += 60
    mailbox.sns.publish(TopicArn=mailbox.topic_arn, Message=json.dumps(notification))
    assert list(mailbox.run().values()) == [(UNSUBSCRIBED, None)]
    assert unsubscribes(message_id) == [{"how": "mailto", "campaign": "june"}]
    assert [e["detail-type"] for e in pipeline.app_events()] == ["email.unsubscribed"]


def test_an_email_without_token_is_kept_for_an_operator_and_unsubscribes_nobody(pipeline, mailbox):
    mail_id = mailbox.receive(raw_mail("Please take me off your list"))
    assert list(mailbox.run().values()) == [(KEPT, "it carries no unsubscribe token")]
    [kept] = mailbox.kept()
    assert (kept.mail_id, kept.sender, kept.subject, kept.reason) == (
        mail_id, SENDER, "Please take me off your list", "it carries no unsubscribe token")
    assert kept.object_key == f"incoming/{mail_id}"
    assert list(Suppression.scan()) == []
    assert pipeline.ses.sends == []  # nothing answers it


def test_a_forged_token_is_kept_with_its_reason(pipeline, mailbox):
    newsletter(pipeline, SENDER, "n1")
    token = unsubscribe_token(pipeline, message_id_for("n1"))
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    mailbox.receive(raw_mail(f"unsubscribe {forged}"))
    assert list(mailbox.run().values()) == [(KEPT, "its unsubscribe token is not valid")]
    assert [k.reason for k in mailbox.kept()] == ["its unsubscribe token is not valid"]
    assert list(Suppression.scan()) == []


def test_auto_replies_and_bounces_are_ignored_and_not_kept(pipeline, mailbox):
    newsletter(pipeline, SENDER, "n1")
    token = unsubscribe_token(pipeline, message_id_for("n1"))
    mailbox.receive(raw_mail(f"Automatic reply: unsubscribe {token}", headers="Auto-Submitted: auto-replied\r\n"))
    mailbox.receive(raw_mail("Undeliverable: unsubscribe"), envelope_sender="")
    assert sorted(mailbox.run().values()) == [
        ("ignored", "a bounce (null sender)"), ("ignored", "an automatic reply (Auto-Submitted: auto-replied)")]
    assert mailbox.kept() == []
    assert list(Suppression.scan()) == []


def test_ses_spam_verdict_drops_the_email(pipeline, mailbox):
    newsletter(pipeline, SENDER, "n1")
    raw = raw_mail(f"unsubscribe {unsubscribe_token(pipeline, message_id_for('n1'))}")
    notification = receipt_notification("spam-1", raw, SENDER, ["u@x"], resources.UNSUBSCRIBE_MAIL_BUCKET,
                                        "incoming/spam-1", mailbox.topic_arn, pipeline.clock())
    notification["receipt"]["spamVerdict"] = {"status": "FAIL"}
    mailbox.sns.publish(TopicArn=mailbox.topic_arn, Message=json.dumps(notification))
    assert list(mailbox.run().values()) == [("dropped", "SES marked it as spam")]
    assert mailbox.kept() == [] and list(Suppression.scan()) == []


def test_an_unreadable_record_goes_to_the_dlq_with_its_reason(pipeline, mailbox):
    mailbox.sns.publish(TopicArn=mailbox.topic_arn, Message="{}")
    mailbox.receive(raw_mail("hello"))
    outcomes = sorted(mailbox.run().values())
    assert outcomes == [(KEPT, "it carries no unsubscribe token"),
                        ("rejected", "not an SES receipt notification (KeyError: 'notificationType')")]
    [(_, reason)] = dead_letters(pipeline, mailbox)
    assert reason == "not an SES receipt notification (KeyError: 'notificationType')"


def dead_letters(pipeline, mailbox) -> list[tuple[str, str]]:
    dlq = pipeline.queue_url(resources.UNSUBSCRIBE_MAIL_QUEUE + "-dlq")
    moved = mailbox.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return [(m["Body"], m["MessageAttributes"]["postline_reason"]["StringValue"]) for m in moved.get("Messages", [])]


# --- the bad-input corpus: SNS messages that are not from the stack's unsubscribe mail topic ------------------------

FOREIGN_TOPIC = "arn:aws:sns:us-east-1:444455556666:" + resources.UNSUBSCRIBE_MAIL_TOPIC  # same name, other account
NOT_OURS = "not postline's unsubscribe mail topic"


def envelope(document: dict, topic: str | None, kind: str = "Notification") -> str:
    wrapped = {"Type": kind, "MessageId": "11111111-2222-3333-4444-555555555555", "Timestamp": "2027-01-15T08:00:02Z",
               "Message": json.dumps(document)}
    return json.dumps(wrapped if topic is None else {**wrapped, "TopicArn": topic})


FOREIGN = [
    ("another account's topic of the same name", FOREIGN_TOPIC, "Notification",
     f"refused: SNS Notification from the topic {FOREIGN_TOPIC}, {NOT_OURS}"),
    ("an envelope without a topic", None, "Notification",
     f"refused: SNS Notification from the topic (none), {NOT_OURS}"),
    ("another topic's subscription confirmation", FOREIGN_TOPIC, "SubscriptionConfirmation",
     f"refused: SNS SubscriptionConfirmation from the topic {FOREIGN_TOPIC}, {NOT_OURS}"),
    ("SES's notification without SNS's envelope", "bare", None,
     "refused: not an SNS message (no envelope), not from postline's unsubscribe mail topic"),
]


@pytest.mark.parametrize("topic, kind, reason", [case[1:] for case in FOREIGN], ids=[case[0] for case in FOREIGN])
def test_a_valid_unsubscribe_from_anywhere_but_the_stack_s_topic_is_refused_and_changes_nothing(pipeline, mailbox,
                                                                                              topic, kind, reason):
    """The forged message carries a real, valid token and names a real stored email: only where it came from is
    wrong. It unsubscribes nobody, keeps nothing, announces nothing, and waits in the DLQ with its reason; the good
    email beside it is applied."""
    newsletter(pipeline, SENDER, "n1")
    newsletter(pipeline, "other@example.com", "n2")
    pipeline.app_events()
    forged_raw = raw_mail(f"unsubscribe {unsubscribe_token(pipeline, message_id_for('n1'))}")
    mailbox.s3.put_object(Bucket=resources.UNSUBSCRIBE_MAIL_BUCKET, Key="incoming/forged-1", Body=forged_raw)
    forged = receipt_notification("forged-1", forged_raw, SENDER, ["u@x"], resources.UNSUBSCRIBE_MAIL_BUCKET,
                                  "incoming/forged-1", mailbox.topic_arn, pipeline.clock())
    body = json.dumps(forged) if topic == "bare" else envelope(forged, topic, kind)
    mailbox.sqs.send_message(QueueUrl=pipeline.queue_url(resources.UNSUBSCRIBE_MAIL_QUEUE), MessageBody=body)
    mailbox.receive(raw_mail(f"unsubscribe {unsubscribe_token(pipeline, message_id_for('n2'))}",
                             sender="other@example.com"), envelope_sender="other@example.com")

    assert sorted(mailbox.run().values()) == [("refused", reason), (UNSUBSCRIBED, None)]
    assert dead_letters(pipeline, mailbox) == [(body, reason)]
    assert [(s.email, s.scope) for s in Suppression.scan()] == [("other@example.com", "marketing")]
    assert unsubscribes(message_id_for("n1")) == [] and mailbox.kept() == []
    assert [e["detail"]["to"] for e in pipeline.app_events()] == ["other@example.com"]


def test_a_message_another_topic_delivers_to_the_queue_is_refused(pipeline, mailbox):
    """SNS itself delivering another topic's message (a subscription someone added to the queue)."""
    other = mailbox.sns.create_topic(Name="someone-elses-topic")["TopicArn"]
    mailbox.sns.subscribe(TopicArn=other, Protocol="sqs", Attributes={"RawMessageDelivery": "false"},
                          Endpoint=resources.queue_arn(resources.UNSUBSCRIBE_MAIL_QUEUE))
    newsletter(pipeline, SENDER, "n1")
    raw = raw_mail(f"unsubscribe {unsubscribe_token(pipeline, message_id_for('n1'))}")
    mailbox.s3.put_object(Bucket=resources.UNSUBSCRIBE_MAIL_BUCKET, Key="incoming/other-1", Body=raw)
    notification = receipt_notification("other-1", raw, SENDER, ["u@x"], resources.UNSUBSCRIBE_MAIL_BUCKET,
                                        "incoming/other-1", other, pipeline.clock())
    mailbox.sns.publish(TopicArn=other, Message=json.dumps(notification))
    reason = f"refused: SNS Notification from the topic {other}, {NOT_OURS}"
    assert list(mailbox.run().values()) == [("refused", reason)]
    assert [why for _, why in dead_letters(pipeline, mailbox)] == [reason]
    assert list(Suppression.scan()) == []


def test_the_refusal_is_logged_without_the_message_it_carries(pipeline, mailbox, caplog):
    newsletter(pipeline, SENDER, "n1")
    bucket = resources.UNSUBSCRIBE_MAIL_BUCKET
    forged = receipt_notification("forged-2", raw_mail("unsubscribe"), SENDER, ["u@x"], bucket, "incoming/forged-2",
                                  FOREIGN_TOPIC, pipeline.clock())
    mailbox.sqs.send_message(QueueUrl=pipeline.queue_url(resources.UNSUBSCRIBE_MAIL_QUEUE),
                             MessageBody=envelope(forged, FOREIGN_TOPIC))
    with caplog.at_level("INFO"):
        mailbox.run()
    [refusal] = [r for r in caplog.records if r.getMessage() == "SNS message from another topic refused"]
    assert (refusal.type, refusal.topic) == ("Notification", FOREIGN_TOPIC)
    assert SENDER not in caplog.text and "reader" not in caplog.text.lower()
