"""The public HTTP API for tracking and unsubscribing, optionally on a custom domain.

The API and its stage come first so that every function can be given the base URL to sign links with; the
routes are added once the functions exist (the URL refers only to the API, never to a route, so no cycle).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as rest
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

from .config import Config, within
from .constants import ROUTES, Outputs
from .nag import accept
from .outputs import stack_output

# The route key, never the path: paths carry tokens. No IP address either, links are personal data enough.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationError": "$context.integrationErrorMessage",
}


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogSettings:
    def __init__(self, destination: apigw.IAccessLogDestination) -> None:
        self._destination = destination

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> rest.AccessLogFormat:
        return rest.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS, separators=(",", ":")))


class TrackingApi(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config) -> None:
        super().__init__(scope, id)
        self.api = apigw.HttpApi(
            self, "HttpApi", description="postline tracking and unsubscribe links", create_default_stage=False
        )
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=config.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        domain = self._custom_domain(config)
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            # A link in a forwarded newsletter must not let anyone run up the bill or flood the tables.
            throttle=apigw.ThrottleSettings(rate_limit=config.api_rate_limit, burst_limit=config.api_burst_limit),
            access_log_settings=_AccessLogSettings(apigw.LogGroupLogDestination(access_logs)),
            domain_mapping=apigw.DomainMappingOptions(domain_name=domain) if domain else None,
        )
        # What links are signed with: the custom domain when there is one, else the API's own endpoint.
        self.base_url = f"https://{config.api_domain.domain_name}" if config.api_domain else self.api.api_endpoint
        stack_output(self, Outputs.API_URL, self.api.api_endpoint, "HTTP API endpoint")
        stack_output(self, Outputs.TRACKING_BASE_URL, self.base_url, "Base URL of tracking and unsubscribe links")

    def add_routes(self, functions: Mapping[str, lambda_.IFunction]) -> None:
        integrations_by_function: dict[str, integrations.HttpLambdaIntegration] = {}
        for method, path, name in ROUTES:
            integration = integrations_by_function.setdefault(
                name, integrations.HttpLambdaIntegration(f"{name}Integration", functions[name])
            )
            self.api.add_routes(path=path, methods=[apigw.HttpMethod[method]], integration=integration)
        accept(
            self.api,
            "AwsSolutions-APIG4",
            "The routes are opened from emails by anyone holding a link: the "
            "token in the path is the authorization (HMAC-signed, checked in constant time by the function).",
        )

    def _custom_domain(self, config: Config) -> apigw.DomainName | None:
        if config.api_domain is None:
            return None
        zone = None
        if config.hosted_zone is not None:
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=config.hosted_zone.zone_id, zone_name=config.hosted_zone.zone_name
            )
        if config.api_domain.certificate_arn:
            certificate = acm.Certificate.from_certificate_arn(self, "Certificate", config.api_domain.certificate_arn)
        else:
            certificate = acm.Certificate(
                self,
                "Certificate",
                domain_name=config.api_domain.domain_name,
                validation=acm.CertificateValidation.from_dns(zone),
            )
        domain = apigw.DomainName(
            self, "DomainName", domain_name=config.api_domain.domain_name, certificate=certificate
        )
        if zone is not None and within(config.api_domain.domain_name, config.hosted_zone.zone_name):
            route53.ARecord(
                self,
                "AliasRecord",
                zone=zone,
                record_name=f"{config.api_domain.domain_name}.",
                target=route53.RecordTarget.from_alias(
                    targets.ApiGatewayv2DomainProperties(domain.regional_domain_name, domain.regional_hosted_zone_id)
                ),
            )
        else:
            stack_output(
                self,
                f"{Outputs.DNS_RECORD_PREFIX}ApiDomainRecord",
                f"{config.api_domain.domain_name} CNAME {domain.regional_domain_name}",
                "DNS record to create for the links domain (name type value)",
            )
        return domain
