"""The DynamoDB tables of DESIGN.md, keyed as the library's models (layers/common/postline/models.py)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from .constants import HISTORY_TABLES, TABLES, Outputs, pascal
from .nag import accept
from .outputs import stack_output

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


def _attribute(key: tuple[str, str]) -> dynamodb.Attribute:
    name, kind = key
    return dynamodb.Attribute(name=name, type=_TYPES[kind])


class Tables(Construct):
    def __init__(self, scope: Construct, id: str, *, retain_data: bool, backup_history: bool) -> None:
        super().__init__(scope, id)
        self.tables: dict[str, dynamodb.Table] = {}
        for name, spec in TABLES.items():
            recoverable = backup_history or name not in HISTORY_TABLES
            self.tables[name] = dynamodb.Table(
                self,
                pascal(name),
                partition_key=_attribute(spec.partition_key),
                sort_key=_attribute(spec.sort_key) if spec.sort_key else None,
                time_to_live_attribute=spec.ttl_attribute,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=recoverable
                ),
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                deletion_protection=retain_data,
                removal_policy=RemovalPolicy.RETAIN if retain_data else RemovalPolicy.DESTROY,
            )
            if not recoverable:
                accept(
                    self.tables[name],
                    "AwsSolutions-DDB3",
                    "Sending history with a TTL: losing it loses reports, "
                    "never an email or a suppression, and continuous backups would cost as much as storing it "
                    "(docs/cost-model.md). Config backup_history turns them on.",
                )
        for name, table in self.tables.items():
            stack_output(self, Outputs.table(name), table.table_name, f"DynamoDB table {name}")

    @property
    def messages(self) -> dynamodb.Table:
        return self.tables["messages"]

    @property
    def events(self) -> dynamodb.Table:
        return self.tables["email_events"]

    @property
    def suppressions(self) -> dynamodb.Table:
        return self.tables["email_suppressions"]

    @property
    def templates(self) -> dynamodb.Table:
        return self.tables["templates"]

    @property
    def campaigns(self) -> dynamodb.Table:
        return self.tables["campaigns"]

    @property
    def rate_limits(self) -> dynamodb.Table:
        return self.tables["rate_limits"]

    @property
    def stats(self) -> dynamodb.Table:
        return self.tables["stats"]
