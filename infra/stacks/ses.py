"""SES: the sending domain, one configuration set per stream, optional dedicated IP pools, and DNS."""
from __future__ import annotations

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from constructs import Construct

from .config import Config
from .constants import (
    IP_POOL_OF_STREAM,
    SES_CONFIGURATION_SET_DIMENSION,
    SES_EVENT_TYPES,
    SES_METRIC_EVENT_TYPES,
    STREAMS,
    Outputs,
    pascal,
)
from .outputs import stack_output

DNS_TTL = Duration.minutes(30)


class Ses(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config, events_topic: sns.ITopic) -> None:
        super().__init__(scope, id)
        self.identity = ses.EmailIdentity(
            self, "Identity",
            identity=ses.Identity.domain(config.domain),
            dkim_identity=ses.DkimIdentity.easy_dkim(ses.EasyDkimSigningKeyLength.RSA_2048_BIT),
            mail_from_domain=config.mail_from_domain,
            # If the MAIL FROM MX record goes missing, keep sending from amazonses.com rather than bounce.
            mail_from_behavior_on_mx_failure=ses.MailFromBehaviorOnMxFailure.USE_DEFAULT_VALUE,
        )
        self.identity_arn = Stack.of(self).format_arn(
            service="ses", resource="identity", resource_name=config.domain)

        pools = self._ip_pools(config.ip_pools)
        self.configuration_sets: dict[str, ses.ConfigurationSet] = {}
        for stream in STREAMS:
            configuration_set = ses.ConfigurationSet(
                self, f"{pascal(stream)}ConfigurationSet",
                reputation_metrics=True,
                dedicated_ip_pool=pools.get(IP_POOL_OF_STREAM[stream]),
            )
            configuration_set.add_event_destination(
                "Events", destination=ses.EventDestination.sns_topic(events_topic),
                events=[ses.EmailSendingEvent[name] for name in SES_EVENT_TYPES],
            )
            # Counts per stream for the dashboard, without any code in the pipeline.
            configuration_set.add_event_destination(
                "Metrics",
                destination=ses.EventDestination.cloud_watch_dimensions([ses.CloudWatchDimension(
                    name=SES_CONFIGURATION_SET_DIMENSION, source=ses.CloudWatchDimensionSource.MESSAGE_TAG,
                    default_value="none")]),
                events=[ses.EmailSendingEvent[name] for name in SES_METRIC_EVENT_TYPES],
            )
            self.configuration_sets[stream] = configuration_set
            stack_output(self, Outputs.configuration_set(stream), configuration_set.configuration_set_name,
                         f"SES configuration set of the {stream} stream")

        self._dns(config)

    def configuration_set_arn(self, stream: str) -> str:
        return Stack.of(self).format_arn(service="ses", resource="configuration-set",
                                         resource_name=self.configuration_sets[stream].configuration_set_name)

    def _ip_pools(self, mode: str) -> dict[str, ses.DedicatedIpPool]:
        """Dedicated IPs cost money, so they are off unless configured; marketing never shares a pool."""
        if mode == "none":
            return {}
        scaling = ses.ScalingMode.MANAGED if mode == "managed" else ses.ScalingMode.STANDARD
        return {name: ses.DedicatedIpPool(self, f"{pascal(name)}IpPool", scaling_mode=scaling)
                for name in sorted(set(IP_POOL_OF_STREAM.values()))}

    def _dns(self, config: Config) -> None:
        """DKIM, MAIL FROM (MX + SPF) and DMARC: in the hosted zone when given, else as outputs to copy."""
        region = Aws.REGION
        dmarc = f"v=DMARC1; p={config.dmarc_policy}" + (
            f"; rua=mailto:{config.dmarc_report_address}" if config.dmarc_report_address else "")
        mx_host = f"feedback-smtp.{region}.amazonses.com"
        spf = "v=spf1 include:amazonses.com ~all"
        dkim = [(record.name, record.value) for record in self.identity.dkim_records]

        if config.hosted_zone is None:
            rows = [(f"DkimRecord{i}", name, "CNAME", value) for i, (name, value) in enumerate(dkim, 1)]
            rows += [
                ("MailFromMxRecord", config.mail_from_domain, "MX", f"10 {mx_host}"),
                ("MailFromSpfRecord", config.mail_from_domain, "TXT", f'"{spf}"'),
                ("DmarcRecord", f"_dmarc.{config.domain}", "TXT", f'"{dmarc}"'),
            ]
            for key, name, kind, value in rows:
                stack_output(self, f"{Outputs.DNS_RECORD_PREFIX}{key}", f"{name} {kind} {value}",
                             "DNS record to create for the sending domain (name type value)")
            return

        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.hosted_zone.zone_id, zone_name=config.hosted_zone.zone_name)
        for i, (name, value) in enumerate(dkim, 1):
            # SES gives fully qualified names as tokens, which the L2 record would suffix with the zone.
            route53.CfnRecordSet(self, f"DkimRecord{i}", hosted_zone_id=zone.hosted_zone_id, name=name,
                                 type="CNAME", resource_records=[value], ttl=str(int(DNS_TTL.to_seconds())))
        route53.MxRecord(self, "MailFromMx", zone=zone, record_name=f"{config.mail_from_domain}.",
                         values=[route53.MxRecordValue(priority=10, host_name=mx_host)],
                         ttl=DNS_TTL)
        route53.TxtRecord(self, "MailFromSpf", zone=zone, record_name=f"{config.mail_from_domain}.",
                          values=[spf], ttl=DNS_TTL)
        route53.TxtRecord(self, "Dmarc", zone=zone, record_name=f"_dmarc.{config.domain}.", values=[dmarc],
                          ttl=DNS_TTL)
