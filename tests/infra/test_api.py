"""The HTTP API: its routes, throttling, access logs without tokens, and the optional custom domain."""
from __future__ import annotations


def test_routes_go_to_their_functions(synth):
    functions = synth.stack.functions.functions
    integrations = synth.resources("AWS::ApiGatewayV2::Integration")
    routes = {}
    for route in synth.resources("AWS::ApiGatewayV2::Route").values():
        target = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        uri = integrations[target]["Properties"]["IntegrationUri"]["Fn::GetAtt"][0]
        routes[route["Properties"]["RouteKey"]] = uri
    assert routes == {
        "GET /o/{token}": synth.logical_id(functions["track_open"]),
        "GET /c/{token}": synth.logical_id(functions["track_click"]),
        "GET /u/{token}": synth.logical_id(functions["unsubscribe"]),
        "POST /u/{token}": synth.logical_id(functions["unsubscribe"]),
        # the rest (HEAD, OPTIONS, 405 with Allow) answered by the same functions, not API Gateway's bare 404
        "ANY /o/{token}": synth.logical_id(functions["track_open"]),
        "ANY /c/{token}": synth.logical_id(functions["track_click"]),
        "ANY /u/{token}": synth.logical_id(functions["unsubscribe"]),
    }


def test_stage_is_throttled_and_logged(synth):
    stage = next(iter(synth.resources("AWS::ApiGatewayV2::Stage").values()))["Properties"]
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 200, "ThrottlingRateLimit": 100}
    log_format = stage["AccessLogSettings"]["Format"]
    assert "$context.routeKey" in log_format
    assert "$context.path" not in log_format  # paths carry tokens


def test_custom_domain_with_certificate_and_alias(variant):
    variant.assertions.has_resource_properties("AWS::CertificateManager::Certificate", {
        "DomainName": "links.example.org", "ValidationMethod": "DNS"})
    variant.assertions.has_resource_properties("AWS::ApiGatewayV2::DomainName", {"DomainName": "links.example.org"})
    variant.assertions.resource_count_is("AWS::ApiGatewayV2::ApiMapping", 1)
    variant.assertions.has_resource_properties("AWS::Route53::RecordSet", {
        "Name": "links.example.org.", "Type": "A"})
    assert variant.template["Outputs"]["TrackingBaseUrl"]["Value"] == "https://links.example.org"
