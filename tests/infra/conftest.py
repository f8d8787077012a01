"""Synthesizes the postline stack once per session (in-process, no CDK CLI, no AWS credentials).

``synth`` is the default configuration (infra/config/example.json), built exactly as `make synth` builds it,
cdk-nag included: SES's events through SNS. ``variant`` turns on everything optional (hosted zone, custom links
domain, IP pools, alarm email), takes the other route for SES's events (EventBridge) and skips the layer bundling
to stay fast. ``warmed`` is a minimal configuration with standard dedicated IP pools, an IP warm-up and the
sending-rate overrides (no bundling either). ``adopted`` uses an SES identity that exists already and a CDK bootstrap
bucket with a customer-managed key (no bundling). ``largest`` gives the functions the largest environment the config
allows: the longest stack name, the longest warm-up plan, every override and application event (no bundling).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]
# Appended, not prepended: infra/app.py must never shadow a function's app module in other tests.
for path in (ROOT / "infra", ROOT / "layers" / "common"):
    if str(path) not in sys.path:
        sys.path.append(str(path))

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from stacks.app_builder import build  # noqa: E402
from stacks.config import (  # noqa: E402
    EXAMPLE_CONFIG,
    MAX_WARMUP_CURVE_POINTS,
    MAX_WARMUP_DAY,
    MAX_WARMUP_EMAILS_PER_DAY,
    Config,
    load_config,
    parse_config,
)
from stacks.constants import MAX_STACK_NAME_LENGTH  # noqa: E402
from stacks.postline_stack import PostlineStack  # noqa: E402

VARIANT_CONFIG = {
    "stack_name": "postline-variant",
    "mirror_ses_suppressions": True,
    "tracing": True,
    "backup_history": True,
    "app_events": "all",
    "event_ttl_days": 90,
    "message_ttl_days": 90,
    "domain": "mail.example.org",
    "from_address": "Example Org <news@mail.example.org>",
    "hosted_zone": {"zone_id": "Z0123456789ABCDEFGHIJ", "zone_name": "example.org"},
    "dmarc_policy": "quarantine",
    "dmarc_report_address": "dmarc@example.org",
    "alarm_email": "ops@example.org",
    "ip_pools": "managed",
    "api_domain": {"domain_name": "links.example.org"},
    "send_concurrency": {"critical": 20, "transactional": 10, "marketing": 3},
    "retain_data": False,
    "sandbox_recipients": ["tester@example.net"],
    "ses_event_route": "eventbridge",
}

WARMED_CONFIG = {
    "stack_name": "postline-warmed",
    "domain": "mail.example.net",
    "from_address": "news@mail.example.net",
    "ip_pools": "standard",
    "max_send_rate": 14.5,
    "max_24_hour_send": 50_000,
    "marketing_rate_share": 0.5,
    "warmup": {"start": "2025-03-01", "pools": ["transactional", "marketing"],
               "curve": [[1, 200], [3, 1_000], [7, 10_000], [14, 50_000]]},
}

# A domain verified in SES before (by hand, or by another stack) and DNS in Route 53; the CDK bootstrap bucket
# encrypted with a customer-managed key.
ADOPTED_CONFIG = {
    "stack_name": "postline-adopted",
    "domain": "mail.example.io",
    "from_address": "news@mail.example.io",
    "adopt_existing_identity": True,
    "hosted_zone": {"zone_id": "Z0123456789ABCDEFGHIJ", "zone_name": "example.io"},
    "bootstrap_kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}

# Every value at its longest: the stack name (it is in every queue's name), the warm-up curve (the most points, each
# with the most digits), the limiter's overrides and alert thresholds, "false" over "true", WARNING. Only the
# sender's and the domain's names are free in length; they are long ones here.
LARGEST_CONFIG = {
    "stack_name": "postline-" + "x" * (MAX_STACK_NAME_LENGTH - len("postline-")),
    "domain": "notifications.mail.example-company.com",
    "from_address": "Example Company Notifications <notifications@notifications.mail.example-company.com>",
    "ip_pools": "standard",
    "max_send_rate": 1234.5678901234,
    "max_24_hour_send": 100_000_000,
    "marketing_rate_share": 0.3333333333333333,
    "app_events": "all",
    "tracing": True,
    "event_ttl_days": 3_650,
    "message_ttl_days": 3_650,
    "log_level": "WARNING",
    "ses_event_route": "eventbridge",
    "alerts": {"bounce_rate": 0.0123456789012345, "complaint_rate": 0.0009876543210987, "min_sample": 1_000_000_000,
               "window_hours": 336},
    "warmup": {"start": "2025-03-01", "pools": ["transactional", "marketing"],
               "curve": [[day, MAX_WARMUP_EMAILS_PER_DAY] for day in range(
                   MAX_WARMUP_DAY - MAX_WARMUP_CURVE_POINTS + 1, MAX_WARMUP_DAY + 1)]},
    # Every stream through its own relay, each secret by a complete ARN with a 64-character name: the relays travel
    # in the send function's environment.
    "transports": {stream: {"type": "smtp", "host": "email-smtp.ap-southeast-2.amazonaws.com", "port": 587,
                            "tls": "starttls", "secret": "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:"
                            + f"postline/{stream}/".ljust(64, "x") + "-AbCdEf"}
                   for stream in ("critical", "transactional", "marketing")},
}


@dataclass
class Synth:
    config: Config
    stack: PostlineStack
    template: dict[str, Any]
    assertions: Template
    outdir: Path

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == kind}

    def postline_functions(self) -> dict[str, dict[str, Any]]:
        """postline's own functions (not the deploy-time layer compiler)."""
        ids = {self.logical_id(f) for f in self.stack.functions.functions.values()}
        return {k: v for k, v in self.resources("AWS::Lambda::Function").items() if k in ids}

    def logical_id(self, construct: Any) -> str:
        """Logical id of an L2 construct's resource (or of an L1)."""
        return self.stack.get_logical_id(getattr(construct.node, "default_child", None) or construct)

    def resource(self, construct: Any) -> dict[str, Any]:
        return self.template["Resources"][self.logical_id(construct)]

    def policy_statements(self, function_name: str) -> list[dict[str, Any]]:
        """Every statement of the policies attached to a function's role."""
        role = self.logical_id(self.stack.functions.functions[function_name].role)
        statements = []
        for policy in self.resources("AWS::IAM::Policy").values():
            if {"Ref": role} in policy["Properties"]["Roles"]:
                statements += policy["Properties"]["PolicyDocument"]["Statement"]
        return statements


def _synthesize(config: Config, outdir: Path, context: dict[str, Any] | None = None) -> Synth:
    app = App(outdir=str(outdir), context=context)
    stack = build(app, config)
    assembly = app.synth()  # raises if cdk-nag reports an unacknowledged finding
    template = assembly.get_stack_by_name(stack.stack_name).template
    return Synth(config, stack, template, Template.from_json(template), outdir)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synthesize(load_config(EXAMPLE_CONFIG), tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synthesize(parse_config(VARIANT_CONFIG, "variant"), tmp_path_factory.mktemp("cdk.out.variant"),
                       context={"aws:cdk:bundling-stacks": []})


@pytest.fixture(scope="session")
def warmed(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synthesize(parse_config(WARMED_CONFIG, "warmed"), tmp_path_factory.mktemp("cdk.out.warmed"),
                       context={"aws:cdk:bundling-stacks": []})


@pytest.fixture(scope="session")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synthesize(parse_config(ADOPTED_CONFIG, "adopted"), tmp_path_factory.mktemp("cdk.out.adopted"),
                       context={"aws:cdk:bundling-stacks": []})


@pytest.fixture(scope="session")
def largest(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return _synthesize(parse_config(LARGEST_CONFIG, "largest"), tmp_path_factory.mktemp("cdk.out.largest"),
                       context={"aws:cdk:bundling-stacks": []})
