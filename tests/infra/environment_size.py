"""How many bytes a function's environment takes once CloudFormation has resolved it (Lambda refuses more than 4 KB,
names and values together).

Most values are references resolved only at deploy. Each is counted at the longest its resource type's naming rules
allow: a name given in the template as it is written (the stack name in it is the synthesized stack's real one),
a generated one as CloudFormation makes it, ``<stack name>-<logical id>-<13 random characters>`` cut to the
service's limit (a secret's: ``<logical id>-<12 random characters>``), in the longest region, partition and URL
suffix there are. A reference of a kind not listed here is an error, so that a new one is given its rule instead of
a guess.

Run as a script (``.venv/bin/python -m tests.infra.environment_size``) it prints the sizes for the example config,
the infra tests' ``warmed`` one and the largest one the config accepts (conftest.LARGEST_CONFIG).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LAMBDA_ENVIRONMENT_LIMIT = 4096

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
}


class Resolver:
    """Resolved lengths of a synthesized template's values, for the stack named ``stack_name``."""

    def __init__(self, template: Mapping[str, Any], stack_name: str) -> None:
        self.resources = template["Resources"]
        self.stack_name = stack_name

    def length(self, value: Any) -> int:
        if isinstance(value, str):
            return len(value.encode())
        if isinstance(value, (int, float)):
            return len(str(value))
        (function, argument), = value.items()
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


def environment_sizes(synth: Any) -> dict[str, int]:
    """Function name -> resolved environment size, for a tests.infra.conftest.Synth."""
    resolver = Resolver(synth.template, synth.stack.stack_name)
    return {name: environment_size(synth.resource(function)["Properties"]["Environment"]["Variables"], resolver)
            for name, function in synth.stack.functions.functions.items()}


def largest_values(synth: Any) -> dict[str, tuple[str, int]]:
    """Function name -> its largest variable and that variable's resolved size (to say what to shrink)."""
    resolver = Resolver(synth.template, synth.stack.stack_name)
    largest = {}
    for name, function in synth.stack.functions.functions.items():
        variables = synth.resource(function)["Properties"]["Environment"]["Variables"]
        sizes = {v: len(v) + resolver.length(value) for v, value in variables.items()}
        top = max(sizes, key=sizes.__getitem__)
        largest[name] = (top, sizes[top])
    return largest


def main() -> None:
    import tempfile
    from pathlib import Path

    from . import conftest  # puts infra/ and the layer on the path, as for the tests

    configs = {"example": conftest.load_config(conftest.EXAMPLE_CONFIG),
               "warmed": conftest.parse_config(conftest.WARMED_CONFIG, "warmed"),
               "largest": conftest.parse_config(conftest.LARGEST_CONFIG, "largest")}
    with tempfile.TemporaryDirectory() as out:
        for label, config in configs.items():
            synth = conftest._synthesize(config, Path(out) / label, context={"aws:cdk:bundling-stacks": []})
            print(f"{label} (stack {synth.stack.stack_name!r}, {len(synth.stack.stack_name)} characters):")
            for name, size in environment_sizes(synth).items():
                print(f"  {name:<12} {size:>5} bytes, {LAMBDA_ENVIRONMENT_LIMIT - size:>5} to spare")


if __name__ == "__main__":
    main()
