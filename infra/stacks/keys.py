"""KMS keys for SNS topics an AWS service publishes to: an AWS managed key cannot let the service use it."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


def topic_key(scope: Construct, id: str, *, description: str, service: str) -> kms.Key:
    """A rotating key that ``service`` (e.g. ``ses.amazonaws.com``), acting for this account only, may use to
    publish to the topic it encrypts."""
    key = kms.Key(scope, id, enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY, description=description)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            actions=["kms:GenerateDataKey*", "kms:Decrypt"],
            principals=[iam.ServicePrincipal(service)],
            resources=["*"],  # in a key policy "*" means this key
            conditions={"StringEquals": {"aws:SourceAccount": Stack.of(scope).account}},
        )
    )
    return key
