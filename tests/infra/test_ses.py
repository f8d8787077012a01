"""SES: the domain identity with Easy DKIM and MAIL FROM, a configuration set per stream with reputation metrics
and an event destination to the default event bus, IP pools only when configured, and the DNS records."""
from __future__ import annotations

import json

from stacks.constants import SES_EVENT_TYPES, STREAMS

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


def test_every_configuration_set_publishes_every_event_type_to_the_default_bus(synth):
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
    assert not synth.resources("AWS::SNS::TopicPolicy") or all(  # no topic for SES events any more
        "ses.amazonaws.com" not in json.dumps(p) for p in synth.resources("AWS::SNS::TopicPolicy").values())


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
