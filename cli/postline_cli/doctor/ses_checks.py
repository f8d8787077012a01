"""The SES half of the doctor: the account (sandbox, sending, limits), the sending identity, and postline's wiring
(each stream's configuration set and its event destination, the SNS topic's subscription to the events queue, the
dead-letter queues), then a live round trip: an email to SES's mailbox simulator whose Delivery event must come back
through that wiring and be applied by postline's events function within a bound.

Where the wiring is comes from ``Wiring``: the local stack's fixed names, or a deployed stack's outputs.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from botocore.exceptions import ClientError

from postline.ses import MESSAGE_ID_TAG

from .dns_checks import Identity
from .report import FAIL, PASS, WARN, Check

SIMULATOR_SUCCESS = "success@simulator.amazonses.com"
ROUND_TRIP_PREFIX = "doctor-"  # the round trip's message ids; postline keeps no record for them, only the event
# The event types postline needs from every configuration set, whichever route they take.
NEEDED_EVENT_TYPES = ("DELIVERY", "BOUNCE", "COMPLAINT", "REJECT")


@dataclass(frozen=True)
class Wiring:
    """Where a postline deployment's SES wiring is."""

    configuration_sets: dict[str, str]  # stream -> configuration set name
    topic_arn: str | None  # the SNS route's topic (None: SES's events go by EventBridge)
    events_queue_arn: str  # the queue the topic delivers to
    dead_letter_queues: dict[str, str]  # queue name -> URL
    events_table: str
    sender: str  # the round trip's From address

    @classmethod
    def local(cls, endpoint: str) -> Wiring:
        from ..local import resources

        return cls(
            dict(resources.CONFIGURATION_SETS),
            resources.topic_arn(resources.SES_EVENTS_TOPIC),
            resources.queue_arn(resources.EVENTS_QUEUE),
            {
                name: resources.queue_url(endpoint, name)
                for name in resources.all_queue_names()
                if name.endswith("-dlq")
            },
            resources.TABLES["POSTLINE_EVENTS_TABLE"],
            resources.DEFAULT_FROM,
        )

    @classmethod
    def from_stack(cls, outputs: dict[str, str], domain: str, region: str) -> Wiring:
        """From a deployed stack's outputs (infra/stacks/constants.py, Outputs)."""
        sets = {
            key.removeprefix("ConfigurationSet").lower(): value
            for key, value in outputs.items()
            if key.startswith("ConfigurationSet")
        }
        account, events_queue = outputs["SesEventsQueueUrl"].rstrip("/").rsplit("/", 2)[-2:]
        return cls(
            sets,
            outputs.get("SesEventsTopicArn"),
            f"arn:aws:sqs:{region}:{account}:{events_queue}",
            {value.rstrip("/").rsplit("/", 1)[-1]: value for key, value in outputs.items() if key.endswith("DlqUrl")},
            outputs["TableEmailEvents"],
            f"postline-doctor@{domain}",
        )


# ------------------------------------------------------------------------------------------------------- identity
def identity_of(sesv2, domain: str, region: str) -> tuple[Identity | None, dict[str, Any] | None]:
    """What SES says of ``domain`` (None, None when SES holds no such identity)."""
    try:
        answer = sesv2.get_email_identity(EmailIdentity=domain)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NotFoundException", "NotFound"):
            return None, None
        raise
    dkim, mail_from = answer.get("DkimAttributes") or {}, answer.get("MailFromAttributes") or {}
    identity = Identity(
        domain,
        region,
        tuple(dkim.get("Tokens") or ()),
        dkim.get("Status"),
        mail_from.get("MailFromDomain"),
        mail_from.get("MailFromDomainStatus"),
    )
    return identity, answer


def identity_checks(domain: str, answer: dict[str, Any] | None) -> list[Check]:
    if answer is None:
        return [
            Check(
                "ses",
                "identity",
                FAIL,
                f"SES holds no identity for {domain} in this region",
                f"deploy the stack (it creates it), or: aws sesv2 create-email-identity --email-identity {domain}",
            )
        ]
    if answer.get("VerifiedForSendingStatus"):
        return [Check("ses", "identity verified", PASS, f"{domain} is verified for sending")]
    return [
        Check(
            "ses",
            "identity verified",
            FAIL,
            f"{domain} is not verified for sending: SES refuses its mail (postline holds it meanwhile)",
            "create the DKIM CNAMEs (postline doctor --records "
            f"{domain}); SES verifies the domain when it finds them, within 72 hours",
        )
    ]


# -------------------------------------------------------------------------------------------------------- account
def account_checks(sesv2) -> tuple[list[Check], bool]:
    """The account's checks, and whether it is past warm-up (out of the sandbox)."""
    account = sesv2.get_account()
    quota = account.get("SendQuota", {})
    production = bool(account.get("ProductionAccessEnabled"))
    checks = (
        [Check("ses", "production access", PASS, "out of the SES sandbox")]
        if production
        else [
            Check(
                "ses",
                "production access",
                WARN,
                "in the SES sandbox: mail goes only to verified addresses, at most 200 a day",
                "request production access: SES console > Account dashboard > Request production "
                "access (or aws sesv2 put-account-details)",
            )
        ]
    )
    if account.get("SendingEnabled", True):
        checks.append(Check("ses", "sending enabled", PASS, "SES sends for the account"))
    else:
        checks.append(
            Check(
                "ses",
                "sending enabled",
                FAIL,
                "sending is paused for the account",
                "aws sesv2 put-account-sending-attributes --sending-enabled (once the cause, often "
                "a bounce or complaint rate, is dealt with)",
            )
        )
    status = account.get("EnforcementStatus", "HEALTHY")
    if status != "HEALTHY":
        checks.append(
            Check(
                "ses",
                "account standing",
                FAIL if status == "SHUTDOWN" else WARN,
                f"SES's enforcement status is {status}",
                "SES console > Reputation metrics: answer the case SES opened",
            )
        )
    rate, day, sent = (quota.get("MaxSendRate", 0), quota.get("Max24HourSend", 0), quota.get("SentLast24Hours", 0))
    used = sent / day if day else 0
    checks.append(
        Check(
            "ses",
            "rate and quota",
            WARN if used >= 0.8 else PASS,
            f"{rate:g} emails a second, {day:,.0f} a day, {sent:,.0f} sent in the last 24 hours",
            "ask SES for a higher quota (Service Quotas: Sending quota)" if used >= 0.8 else "",
        )
    )
    return checks, production


# --------------------------------------------------------------------------------------------------------- wiring
def configuration_set_checks(sesv2, wiring: Wiring) -> list[Check]:
    checks = []
    for stream, name in sorted(wiring.configuration_sets.items()):
        try:
            sesv2.get_configuration_set(ConfigurationSetName=name)
            destinations = sesv2.get_configuration_set_event_destinations(ConfigurationSetName=name)[
                "EventDestinations"
            ]
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("NotFoundException", "NotFound"):
                raise
            checks.append(
                Check(
                    "wiring",
                    f"{stream} configuration set",
                    FAIL,
                    f"SES has no configuration set {name}",
                    "deploy the stack again (cdk deploy): it creates one per stream",
                )
            )
            continue
        routed = [d for d in destinations if _routes_to_postline(d, wiring)]
        enabled = [d for d in routed if d.get("Enabled")]
        if enabled:
            missing = sorted(set(NEEDED_EVENT_TYPES) - {t for d in enabled for t in d.get("MatchingEventTypes", ())})
            checks.append(
                Check(
                    "wiring",
                    f"{stream} event destination",
                    FAIL if missing else PASS,
                    f"{name}: {enabled[0]['Name']} enabled"
                    + (f", but without {', '.join(missing)}" if missing else ""),
                    _enable_command(name, enabled[0], missing) if missing else "",
                )
            )
        elif routed:
            checks.append(
                Check(
                    "wiring",
                    f"{stream} event destination",
                    FAIL,
                    f"{name}: the event destination {routed[0]['Name']} is disabled, so no event of "
                    f"{stream} mail reaches postline (statuses stay at sent)",
                    _enable_command(name, routed[0], []),
                )
            )
        else:
            checks.append(
                Check(
                    "wiring",
                    f"{stream} event destination",
                    FAIL,
                    f"{name}: no event destination publishes to postline's "
                    + ("topic" if wiring.topic_arn else "EventBridge route"),
                    "deploy the stack again (cdk deploy): it adds the destination",
                )
            )
    return checks


def _routes_to_postline(destination: dict[str, Any], wiring: Wiring) -> bool:
    if wiring.topic_arn:
        return (destination.get("SnsDestination") or {}).get("TopicArn") == wiring.topic_arn
    return "EventBridgeDestination" in destination


def _enable_command(configuration_set: str, destination: dict[str, Any], missing: list[str]) -> str:
    fixed = {key: value for key, value in destination.items() if key != "Name"}
    fixed["Enabled"] = True
    fixed["MatchingEventTypes"] = sorted(set(fixed.get("MatchingEventTypes", ())) | set(missing))
    return (
        f"aws sesv2 update-configuration-set-event-destination --configuration-set-name {configuration_set} "
        f"--event-destination-name {destination['Name']} --event-destination '{json.dumps(fixed)}'"
    )


def subscription_check(sns, wiring: Wiring) -> list[Check]:
    if not wiring.topic_arn:
        return [Check("wiring", "SNS subscription", PASS, "SES's events go by EventBridge: no subscription to confirm")]
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=wiring.topic_arn).get("Subscriptions", [])
    ours = [s for s in subscriptions if s.get("Protocol") == "sqs" and s.get("Endpoint") == wiring.events_queue_arn]
    if not ours:
        return [
            Check(
                "wiring",
                "SNS subscription",
                FAIL,
                f"the topic {wiring.topic_arn} has no subscription for postline's events queue",
                "deploy the stack again (cdk deploy): it subscribes the queue",
            )
        ]
    arn = ours[0]["SubscriptionArn"]
    pending = (
        arn == "PendingConfirmation"
        or sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
        .get("PendingConfirmation", "false")
        .lower()
        == "true"
    )
    if pending:
        return [
            Check(
                "wiring",
                "SNS subscription",
                FAIL,
                "the events queue's subscription to the topic is not confirmed: SNS delivers nothing to it, "
                "so statuses stay at sent",
                "confirm it with the SubscribeURL of the SubscriptionConfirmation message on the events queue "
                f"(aws sns confirm-subscription --topic-arn {wiring.topic_arn} --token TOKEN), or delete it "
                "and deploy again",
            )
        ]
    return [Check("wiring", "SNS subscription", PASS, "the events queue's subscription to the topic is confirmed")]


def dead_letter_checks(sqs, wiring: Wiring) -> list[Check]:
    deep = {}
    for name, url in sorted(wiring.dead_letter_queues.items()):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        depth = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
        if depth:
            deep[name] = depth
    if not deep:
        return [Check("wiring", "dead-letter queues", PASS, f"all {len(wiring.dead_letter_queues)} empty")]
    return [
        Check(
            "wiring",
            f"dead-letter queue {name}",
            WARN,
            f"{depth} messages wait there",
            f"read why (each carries its reason): aws sqs receive-message --queue-url "
            f"{wiring.dead_letter_queues[name]} --message-attribute-names All",
        )
        for name, depth in deep.items()
    ]


# ----------------------------------------------------------------------------------------------------- round trip
def round_trip(
    sesv2,
    dynamodb,
    wiring: Wiring,
    stream: str,
    bound_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Check:
    """One email to SES's mailbox simulator through ``stream``'s configuration set; its Delivery event must be
    applied by postline's events function (a ``delivered`` row under the email's message id) within the bound."""
    message_id = ROUND_TRIP_PREFIX + secrets.token_hex(8)
    email = EmailMessage()
    email["From"], email["To"], email["Subject"] = wiring.sender, SIMULATOR_SUCCESS, "postline doctor round trip"
    email.set_content("A test email from postline doctor to SES's mailbox simulator.\n")
    started = clock()
    try:
        sent = sesv2.send_email(
            FromEmailAddress=wiring.sender,
            Destination={"ToAddresses": [SIMULATOR_SUCCESS]},
            Content={"Raw": {"Data": email.as_bytes()}},
            ConfigurationSetName=wiring.configuration_sets[stream],
            EmailTags=[{"Name": MESSAGE_ID_TAG, "Value": message_id}],
        )
    except ClientError as error:
        return Check(
            "wiring",
            "round trip",
            FAIL,
            f"SES refused the test email: {error.response['Error']}",
            "fix the failing checks above and run the doctor again",
        )
    while clock() - started < bound_seconds:
        rows = dynamodb.query(
            TableName=wiring.events_table,
            KeyConditionExpression="message_id = :id",
            ExpressionAttributeValues={":id": {"S": message_id}},
            ConsistentRead=True,
        )["Items"]
        if any(row.get("type", {}).get("S") == "delivered" for row in rows):
            return Check(
                "wiring",
                "round trip",
                PASS,
                f"SES accepted a test email to {SIMULATOR_SUCCESS} ({sent['MessageId']}) and its Delivery "
                f"event reached postline in {clock() - started:.1f} s",
            )
        sleep(0.5)
    return Check(
        "wiring",
        "round trip",
        FAIL,
        f"SES accepted a test email to {SIMULATOR_SUCCESS} ({sent['MessageId']}), but postline saw no "
        f"Delivery event for it within {bound_seconds:g} s",
        "fix the failing wiring checks above; if they pass, read the ses_events function's logs and the "
        "SES events queue's DLQ",
    )
