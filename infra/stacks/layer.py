"""The shared layer: built on the deployer's machine without Docker, its bytecode compiled at deploy time by the
functions' own runtime (infra/layer_compiler explains why), so a cold start imports instead of compiling."""

from __future__ import annotations

from typing import cast

from aws_cdk import ArnFormat, CfnResource, CustomResource, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from .bundling import layer_bundling
from .config import REPO_ROOT
from .constants import COMMON_LAYER, HANDLER
from .nag import accept

LAYER_SOURCE = REPO_ROOT / "layers" / "common"
LAYER_CACHE = REPO_ROOT / ".cache" / "layer-deps"
LOCK = REPO_ROOT / "requirements.lock"  # the layer's versions and file hashes: those the tests ran with
COMPILER_SOURCE = REPO_ROOT / "infra" / "layer_compiler"
EXCLUDE = ["**/__pycache__", "**/*.pyc"]
SERVICE_TIMEOUT = Duration.minutes(15)


class CompiledLayer(Construct):
    """``layer``: the library and its dependencies, with bytecode for ``runtime``."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        log_retention: logs.RetentionDays,
        bootstrap_kms_key_arn: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        source = s3_assets.Asset(
            self,
            "Source",
            path=str(LAYER_SOURCE),
            exclude=EXCLUDE,
            bundling=layer_bundling(LAYER_SOURCE / "requirements.txt", LOCK, LAYER_SOURCE / "postline", LAYER_CACHE),
        )
        role = iam.Role(
            self,
            "CompilerRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="postline layer compiler (deploy time)",
        )
        log_group = logs.LogGroup(self, "CompilerLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        log_group.grant_write(role)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    stack.format_arn(
                        service="s3",
                        region="",
                        account="",
                        resource=source.s3_bucket_name,
                        resource_name=source.s3_object_key,
                    )
                ],
            )
        )
        if bootstrap_kms_key_arn:
            # An account bootstrapped with a customer-managed key encrypts the asset bucket's objects with it: reading
            # the source needs it, only through S3 (the default bootstrap encrypts with S3's key, which needs no grant).
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[bootstrap_kms_key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": Fn.join("", ["s3.", stack.region, ".", stack.url_suffix])}
                    },
                )
            )
        layer_arn = stack.format_arn(
            service="lambda", resource="layer", resource_name=COMMON_LAYER, arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
        role.add_to_policy(iam.PolicyStatement(actions=["lambda:PublishLayerVersion"], resources=[layer_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["lambda:DeleteLayerVersion"], resources=[f"{layer_arn}:*"]))
        accept(
            role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:layer:"
            f"{COMMON_LAYER}:*]",
            "Deleting the layer version it published: version numbers are only known once published.",
        )
        compiler = lambda_.Function(
            self,
            "Compiler",
            description="Deploy time: compiles the shared layer's bytecode on the functions' runtime and publishes it",
            runtime=runtime,
            architecture=architecture,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(COMPILER_SOURCE), exclude=EXCLUDE),
            role=role,
            memory_size=1769,  # one full vCPU: about a thousand modules to compile, once per deploy
            timeout=Duration.minutes(10),
            log_group=log_group,
        )
        accept(
            compiler,
            "AwsSolutions-L1",
            "It must run the functions' runtime: the bytecode it compiles is for that Python version.",
        )
        published = CustomResource(
            self,
            "Published",
            service_token=compiler.function_arn,
            properties={
                "SourceBucket": source.s3_bucket_name,
                "SourceKey": source.s3_object_key,
                "LayerName": COMMON_LAYER,
                "Description": "postline shared library and its dependencies, with bytecode",
                "Runtime": runtime.name,
                "Architecture": architecture.name,
            },
        )
        # A compiler that never answers fails the deploy after this long, not after CloudFormation's default hour.
        # Set on the resource as a number: CustomResource's service_timeout writes a string, which cfn-lint flags.
        cast(CfnResource, published.node.default_child).add_property_override(
            "ServiceTimeout", int(SERVICE_TIMEOUT.to_seconds())
        )
        self.layer = lambda_.LayerVersion.from_layer_version_arn(
            self, "Layer", published.get_att_string("LayerVersionArn")
        )
