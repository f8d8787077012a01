"""SES: the domain identity with Easy DKIM and MAIL FROM, a configuration set per stream with reputation metrics
and an event destination (the SNS topic by default, the default event bus on the EventBridge route), identity
notifications to the topic, IP pools only when configured, and the DNS records."""
from __future__ import annotations

import json

import pytest

from stacks.constants import SES_EVENT_TYPES, SNS_EVENT_TYPES, STREAMS

SES_EVENT_NAMES = {  # EmailSendingEvent -> CloudFormation's matching event type
    "SEND": "send", "REJECT": "reject", "BOUNCE": "bounce", "COMPLAINT": "complaint", "DELIVERY": "delivery",
    "DELIVERY_DELAY": "deliveryDelay", "RENDERING_FAILURE": "renderingFailure", "SUBSCRIPTION": "subscription",
}


def test_domain_identity_with_easy_dkim_and_mail_from(synth):
    synth.assertions.has_resource_properties("AWS::SES::EmailIdentity", {
        "EmailIdentity": "mail.example.com",
        "DkimSigningAttributes": {"NextSigningKeyLength": "RSA_2048_BIT"},
        "MailFromAttributes": {"MailFromDomain": "bounce.mail.example.com", "BehaviorOnMxFailure": "USE_DEFAULT_VALUE"},
    })


def test_a_configuration_set_per_stream_with_reputation_metrics(synth):
    sets = synth.resources("AWS::SES::ConfigurationSet")
    assert len(sets) == len(STREAMS)
    for configuration_set in sets.values():
        assert configuration_set["Properties"]["ReputationOptions"] == {"ReputationMetricsEnabled": True}
        assert "DeliveryOptions" not in configuration_set["Properties"]  # shared IPs unless configured
    assert not synth.resources("AWS::SES::DedicatedIpPool")


def _destinations(synth, kind: str) -> dict[str, dict]:
    """Each configuration set's event destination of ``kind`` (SnsDestination, EventBridgeDestination)."""
    found = {}
    for destination in synth.resources("AWS::SES::ConfigurationSetEventDestination").values():
        properties = destination["Properties"]
        if kind in properties["EventDestination"]:
            found[properties["ConfigurationSetName"]["Ref"]] = properties["EventDestination"]
    return found


def test_every_configuration_set_publishes_its_events_but_send_to_the_topic(synth):
    topic = {"Ref": synth.logical_id(synth.stack.ses.topic)}
    published = _destinations(synth, "SnsDestination")
    assert set(published) == set(synth.resources("AWS::SES::ConfigurationSet"))
    for destination in published.values():
        assert destination["Enabled"] is True and destination["SnsDestination"] == {"TopicARN": topic}
        assert set(destination["MatchingEventTypes"]) == {SES_EVENT_NAMES[name] for name in SNS_EVENT_TYPES}
        assert "send" not in destination["MatchingEventTypes"]  # the send stage records sent; SNS bills a publish
        assert not {"open", "click"} & set(destination["MatchingEventTypes"])
    assert not _destinations(synth, "EventBridgeDestination") and not synth.resources("AWS::Events::Rule")


def test_the_topic_is_encrypted_tls_only_and_only_ses_of_this_account_publishes(synth):
    ses = synth.stack.ses
    topic = synth.resource(ses.topic)["Properties"]
    key = synth.resource(ses.topic.master_key)["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [synth.logical_id(ses.topic.master_key), "Arn"]}
    assert key["EnableKeyRotation"] is True
    key_statements = key["KeyPolicy"]["Statement"]
    (for_ses,) = [s for s in key_statements if s.get("Principal") == {"Service": "ses.amazonaws.com"}]
    assert set(for_ses["Action"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    assert for_ses["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = [p["Properties"]["PolicyDocument"]["Statement"]
                 for p in synth.resources("AWS::SNS::TopicPolicy").values()
                 if p["Properties"]["Topics"] == [{"Ref": synth.logical_id(ses.topic)}]]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in policy)
    allowed = [s for s in policy if s["Effect"] == "Allow"]
    assert len(allowed) == len(STREAMS) + 1  # each configuration set, and the identity's notifications
    sources = []
    for statement in allowed:
        assert statement["Principal"] == {"Service": "ses.amazonaws.com"} and statement["Action"] == "sns:Publish"
        condition = {key.lower(): value for key, value in statement["Condition"]["StringEquals"].items()}
        assert condition["aws:sourceaccount"] == {"Ref": "AWS::AccountId"}
        sources.append(json.dumps(condition["aws:sourcearn"]))
    for stream in STREAMS:
        assert sum(synth.logical_id(ses.configuration_sets[stream]) in source for source in sources) == 1
    assert sum(":identity/mail.example.com" in source for source in sources) == 1


def test_the_topic_delivers_to_the_events_queue_in_its_envelope_and_the_rest_to_its_dlq(synth):
    queues = synth.stack.queues
    ses_events = {"Ref": synth.logical_id(synth.stack.ses.topic)}
    (subscription,) = [s for s in synth.resources("AWS::SNS::Subscription").values()
                       if s["Properties"]["TopicArn"] == ses_events]
    properties = subscription["Properties"]
    assert properties["Protocol"] == "sqs" and properties["RawMessageDelivery"] is False
    assert properties["TopicArn"] == {"Ref": synth.logical_id(synth.stack.ses.topic)}
    assert properties["Endpoint"] == {"Fn::GetAtt": [synth.logical_id(queues.ses_events), "Arn"]}
    assert properties["RedrivePolicy"] == {"deadLetterTargetArn": {
        "Fn::GetAtt": [synth.logical_id(queues.dead_letter_queues["postline-ses-events"]), "Arn"]}}
    assert "FilterPolicy" not in properties  # every event, Bounce to Subscription, and the identity notifications


@pytest.mark.parametrize("kind", ["Bounce", "Complaint"])
def test_the_identity_sends_its_feedback_notifications_to_the_topic_with_the_original_headers(synth, kind):
    calls = [json.dumps(r["Properties"]["Create"]) for r in synth.resources("Custom::AWS").values()]
    topic = synth.logical_id(synth.stack.ses.topic)
    assert any("setIdentityNotificationTopic" in c and f'\\"NotificationType\\":\\"{kind}\\"' in c and topic in c
               for c in calls)
    assert any("setIdentityHeadersInNotificationsEnabled" in c and f'\\"NotificationType\\":\\"{kind}\\"' in c
               and '\\"Enabled\\":true' in c for c in calls)
    # on request only: it doubles every delivery
    assert not any('\\"NotificationType\\":\\"Delivery\\"' in c for c in calls)


def test_the_eventbridge_route_publishes_every_event_type_to_the_default_bus(variant):
    synth = variant
    assert synth.stack.ses.topic is None and not synth.resources("Custom::AWS")
    published = {}
    for destination in synth.resources("AWS::SES::ConfigurationSetEventDestination").values():
        properties = destination["Properties"]
        event_destination = properties["EventDestination"]
        if "EventBridgeDestination" in event_destination:
            assert ":event-bus/default" in json.dumps(event_destination["EventBridgeDestination"]["EventBusArn"])
            assert event_destination["Enabled"] is True
            published[properties["ConfigurationSetName"]["Ref"]] = set(event_destination["MatchingEventTypes"])
    assert set(published) == set(synth.resources("AWS::SES::ConfigurationSet"))
    expected = {SES_EVENT_NAMES[name] for name in SES_EVENT_TYPES}
    assert all(types == expected for types in published.values())
    # SES's own open and click tracking would rewrite postline's signed links
    assert not any({"open", "click"} & types for types in published.values())
    unsubscribe_mail = {"Ref": synth.logical_id(synth.stack.receiving.topic)}  # SES receiving publishes there
    assert all("ses.amazonaws.com" not in json.dumps(p)  # no topic for SES events any more
               for p in synth.resources("AWS::SNS::TopicPolicy").values()
               if p["Properties"]["Topics"] != [unsubscribe_mail])


def test_dns_records_are_output_when_there_is_no_hosted_zone(synth):
    outputs = synth.template["Outputs"]
    assert not synth.resources("AWS::Route53::RecordSet")
    for key in ("DnsDkimRecord1", "DnsDkimRecord2", "DnsDkimRecord3"):
        assert "CNAME" in str(outputs[key]["Value"])
    assert "bounce.mail.example.com MX 10 feedback-smtp." in str(outputs["DnsMailFromMxRecord"]["Value"])
    assert outputs["DnsMailFromSpfRecord"]["Value"] == 'bounce.mail.example.com TXT "v=spf1 include:amazonses.com ~all"'
    assert outputs["DnsDmarcRecord"]["Value"] == (
        '_dmarc.mail.example.com TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.com"')


def test_dns_records_in_the_hosted_zone(variant):
    records = [r["Properties"] for r in variant.resources("AWS::Route53::RecordSet").values()]
    by_type = {}
    for record in records:
        assert record["HostedZoneId"] == "Z0123456789ABCDEFGHIJ"
        by_type.setdefault(record["Type"], []).append(record)
    assert len(by_type["CNAME"]) == 3  # DKIM
    assert by_type["MX"][0]["Name"] == "bounce.mail.example.org."
    txt = {r["Name"]: r["ResourceRecords"] for r in by_type["TXT"]}
    assert txt["bounce.mail.example.org."] == ['"v=spf1 include:amazonses.com ~all"']
    assert txt["_dmarc.mail.example.org."] == ['"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org"']
    assert not any(key.startswith("Dns") for key in variant.template["Outputs"])


def test_dedicated_ip_pools_keep_marketing_apart(variant):
    pools = variant.resources("AWS::SES::DedicatedIpPool")
    assert len(pools) == 2
    assert all(p["Properties"]["ScalingMode"] == "MANAGED" for p in pools.values())
    ses = variant.stack.ses
    pool_of = {s: variant.resource(ses.configuration_sets[s])["Properties"]["DeliveryOptions"]["SendingPoolName"]
               for s in STREAMS}
    assert pool_of["critical"] == pool_of["transactional"] != pool_of["marketing"]


def test_standard_pools_for_a_warmup(warmed):
    pools = warmed.resources("AWS::SES::DedicatedIpPool")
    assert len(pools) == 2
    assert all(p["Properties"]["ScalingMode"] == "STANDARD" for p in pools.values())


def test_an_existing_identity_is_adopted_not_created(adopted, synth):
    # Creating an identity SES already has fails the deploy with AlreadyExists and rolls the stack back.
    assert not adopted.resources("AWS::SES::EmailIdentity")
    assert len(synth.resources("AWS::SES::EmailIdentity")) == 1  # the default creates it
    # Its DKIM keys are SES's already: no DKIM record in the zone (they are there, or SES lists them) ...
    records = [r["Properties"] for r in adopted.resources("AWS::Route53::RecordSet").values()]
    assert not [r for r in records if r["Type"] == "CNAME"]
    assert {(r["Type"], r["Name"]) for r in records} == {("MX", "bounce.mail.example.io."),
                                                         ("TXT", "bounce.mail.example.io."),
                                                         ("TXT", "_dmarc.mail.example.io."),
                                                         ("MX", "unsubscribe.mail.example.io.")}
    # ... and an output says how to read them from SES.
    command = adopted.template["Outputs"]["DkimRecordsCommand"]["Value"]
    assert command.startswith("aws sesv2 get-email-identity --email-identity mail.example.io --query DkimAttributes")
    assert "DkimRecordsCommand" not in synth.template["Outputs"]


def test_an_adopted_identity_still_sends_its_notifications_and_may_send(adopted):
    calls = [json.dumps(r["Properties"]["Create"]) for r in adopted.resources("Custom::AWS").values()]
    assert any("setIdentityNotificationTopic" in c and '\\"Identity\\":\\"mail.example.io\\"' in c for c in calls)
    ses_statement = next(s for s in adopted.policy_statements("send") if "ses:SendEmail" in json.dumps(s["Action"]))
    assert ":identity/mail.example.io" in json.dumps(ses_statement["Resource"])
