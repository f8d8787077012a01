"""How many bytes a function's environment takes once CloudFormation has resolved it (Lambda refuses more than 4 KB,
names and values together), and the synth-time check that keeps every function well below that.

Most values are references resolved only at deploy. Each is counted at the longest its resource type's naming rules
allow: a name given in the template as it is written (the stack name in it is the synthesized stack's real one),
a generated one as CloudFormation makes it, ``<stack name>-<logical id>-<13 random characters>`` cut to the
service's limit (a secret's: ``<logical id>-<12 random characters>``), in the longest region, partition and URL
suffix there are. A reference of a kind not listed here is an error, so that a new one is given its rule instead of
a guess.

``tests/infra/environment_size.py`` prints the sizes for the example config and the largest one the config accepts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
)

LAMBDA_ENVIRONMENT_LIMIT = 4096
# What postline allows a function's environment at its longest: a quarter of Lambda's limit is kept for what the next
# settings add, and for names a little longer than the estimate's.
ENVIRONMENT_BUDGET = 3072
RULE = "postline-Lambda-environment-4KB"

ACCOUNT = "123456789012"
LONGEST_REGION = "us-isof-south-1"  # 15; the longest commercial ones (ap-southeast-1, ...) have 14
LONGEST_PARTITION = "aws-us-gov"  # aws, aws-cn, aws-iso-b, ...
LONGEST_URL_SUFFIX = "amazonaws.com.cn"  # amazonaws.com elsewhere
GENERATED_SUFFIX = 13  # the random part CloudFormation appends to a name it generates
SECRET_SUFFIX = 7  # Secrets Manager appends -XXXXXX to a secret's name in its ARN
API_ID = 10  # an HTTP API's id

PSEUDO_PARAMETERS = {
    "AWS::Region": len(LONGEST_REGION),
    "AWS::AccountId": len(ACCOUNT),
    "AWS::Partition": len(LONGEST_PARTITION),
    "AWS::URLSuffix": len(LONGEST_URL_SUFFIX),
}
# The most characters a generated physical name may have, per resource type.
NAME_LIMITS = {
    "AWS::SQS::Queue": 80,
    "AWS::DynamoDB::Table": 255,
    "AWS::S3::Bucket": 63,
    "AWS::IAM::Role": 64,
    "AWS::SES::ConfigurationSet": 64,
    "AWS::Events::EventBus": 256,
    "AWS::SecretsManager::Secret": 512,
    "AWS::Scheduler::ScheduleGroup": 64,
    "AWS::SNS::Topic": 256,
}
# The template property that names a resource, where the stack gives one.
NAME_PROPERTIES = {
    "AWS::SQS::Queue": "QueueName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::IAM::Role": "RoleName",
    "AWS::SES::ConfigurationSet": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Scheduler::ScheduleGroup": "Name",
    "AWS::SNS::Topic": "TopicName",
}


class Resolver:
    """Resolved lengths of a synthesized template's values, for the stack named ``stack_name``."""

    def __init__(self, template: Mapping[str, Any], stack_name: str) -> None:
        self.template = template
        self.resources = template["Resources"]
        self.stack_name = stack_name

    def length(self, value: Any) -> int:
        if isinstance(value, str):
            return len(value.encode())
        if isinstance(value, (int, float)):
            return len(str(value))
        ((function, argument),) = value.items()
        if function == "Fn::Join":
            separator, parts = argument
            return sum(self.length(part) for part in parts) + len(separator) * max(len(parts) - 1, 0)
        if function == "Ref":
            if argument in PSEUDO_PARAMETERS:
                return PSEUDO_PARAMETERS[argument]
            if argument == "AWS::StackName":
                return len(self.stack_name)
            return self._ref(argument)
        if function == "Fn::GetAtt":
            return self._attribute(*argument)
        raise ValueError(f"no rule for {function}: give environment_size.py one")

    def name(self, logical_id: str) -> int:
        """Length of the resource's physical name: the one the template gives, or the one CloudFormation makes."""
        kind, properties = self._resource(logical_id)
        given = properties.get(NAME_PROPERTIES.get(kind, ""))
        if given is not None:
            return self.length(given)
        if kind == "AWS::SecretsManager::Secret":  # <logical id>-<12 random characters>
            return len(logical_id) + 1 + 12
        if kind not in NAME_LIMITS:
            raise ValueError(f"no naming rule for {kind} ({logical_id}): give environment_size.py one")
        return min(len(self.stack_name) + 1 + len(logical_id) + 1 + GENERATED_SUFFIX, NAME_LIMITS[kind])

    def _resource(self, logical_id: str) -> tuple[str, Mapping[str, Any]]:
        resource = self.resources[logical_id]
        return resource["Type"], resource.get("Properties", {})

    def _ref(self, logical_id: str) -> int:
        kind, _ = self._resource(logical_id)
        if kind == "AWS::SQS::Queue":  # the queue's URL
            return len(f"https://sqs.{LONGEST_REGION}.{LONGEST_URL_SUFFIX}/{ACCOUNT}/") + self.name(logical_id)
        if kind == "AWS::SecretsManager::Secret":  # the secret's ARN
            return self._arn("secretsmanager", ACCOUNT, "secret:") + self.name(logical_id) + SECRET_SUFFIX
        if kind == "AWS::SNS::Topic":  # the topic's ARN
            return self._arn("sns", ACCOUNT, "") + self.name(logical_id)
        if kind in NAME_PROPERTIES:  # the others' Ref is their name
            return self.name(logical_id)
        raise ValueError(f"no rule for a Ref to {kind} ({logical_id}): give environment_size.py one")

    def _attribute(self, logical_id: str, attribute: str) -> int:
        kind, properties = self._resource(logical_id)
        if (kind, attribute) == ("AWS::SQS::Queue", "QueueName"):
            return self.name(logical_id)
        if (kind, attribute) == ("AWS::SQS::Queue", "Arn"):
            return self._arn("sqs", ACCOUNT, "") + self.name(logical_id)
        if (kind, attribute) == ("AWS::IAM::Role", "Arn"):
            path = properties.get("Path", "/")
            return len(f"arn:{LONGEST_PARTITION}:iam::{ACCOUNT}:role") + self.length(path) + self.name(logical_id)
        if (kind, attribute) == ("AWS::ApiGatewayV2::Api", "ApiEndpoint"):
            return len(f"https://{'x' * API_ID}.execute-api.{LONGEST_REGION}.{LONGEST_URL_SUFFIX}")
        raise ValueError(f"no rule for {kind}.{attribute} ({logical_id}): give environment_size.py one")

    @staticmethod
    def _arn(service: str, account: str, resource_prefix: str) -> int:
        return len(f"arn:{LONGEST_PARTITION}:{service}:{LONGEST_REGION}:{account}:{resource_prefix}")


def environment_size(variables: Mapping[str, Any], resolver: Resolver) -> int:
    """Bytes of the environment as Lambda counts them: every name and every resolved value."""
    return sum(len(name.encode()) + resolver.length(value) for name, value in variables.items())


def function_environments(template: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Logical id -> environment variables, for every function of the template that has some."""
    return {
        logical_id: resource["Properties"]["Environment"]["Variables"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
        and "Variables" in resource.get("Properties", {}).get("Environment", {})
    }


@jsii.implements(IPolicyValidationPlugin)
class EnvironmentSizeCheck:
    """Fails the synth when a function's environment, resolved at its longest, passes ``limit`` bytes: a deploy would
    fail on Lambda's 4 KB (CREATE_FAILED, then a rollback), and the margin is room for the next setting."""

    def __init__(self, stack_name: str, limit: int = ENVIRONMENT_BUDGET) -> None:
        self._stack_name, self._limit = stack_name, limit

    @property
    def name(self) -> str:
        return "postline-lambda-environment-size"

    @property
    def rule_ids(self) -> list[str] | None:
        return [RULE]

    @property
    def version(self) -> str | None:
        return "1.0.0"

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        violations = []
        for path in context.template_paths:
            resolver = Resolver(json.loads(Path(path).read_text()), self._stack_name)
            for logical_id, variables in function_environments(resolver.template).items():
                try:
                    size = environment_size(variables, resolver)
                except ValueError as error:  # a new kind of reference: say so rather than guess
                    problem = str(error)
                else:
                    if size <= self._limit:
                        continue
                    problem = (
                        f"The function's environment may take {size} bytes once deployed (stack name "
                        f"{self._stack_name!r}, every name at its longest), over the {self._limit} postline "
                        f"allows itself under Lambda's {LAMBDA_ENVIRONMENT_LIMIT}"
                    )
                violations.append(
                    PolicyViolation(
                        rule_name=RULE,
                        description=problem,
                        fix="Shorten stack_name, from_address or the warm-up curve in the config (docs/deploy.md)",
                        violating_resources=[
                            PolicyViolatingResource(
                                resource_logical_id=logical_id,
                                template_path=path,
                                locations=["Properties/Environment/Variables"],
                            )
                        ],
                    )
                )
        return PolicyValidationPluginReport(success=not violations, violations=violations)
