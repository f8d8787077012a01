"""EventBridge Scheduler: the group and the role postline's one-time schedules run under.

A schedule puts one message on a queue: a soft-bounce retry on an inbound queue (created by ses_events,
postline.retries), or a campaign's start or next window on the control queue (created by the CLI and the campaign
function, postline.campaigns.control). Whoever creates schedules in this group passes this role to them, and names
the schedules' dead-letter queue (``dead_letters``), where Scheduler puts a call it could not make once its retries
ran out (the role refused, the queue gone), so a lost retry or campaign start is seen (its alarm) and can be sent by
hand.
"""

from __future__ import annotations

from typing import cast

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from postline import queue_names

from .constants import DLQ_RETENTION, SCHEDULE_GROUP, SCHEDULES_DLQ_SUFFIX, Outputs
from .nag import accept
from .outputs import stack_output


class Scheduling(Construct):
    def __init__(self, scope: Construct, id: str, *, target_queues: list[sqs.IQueue]) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        group_name = f"{stack.stack_name}-{SCHEDULE_GROUP}"
        self.group = scheduler.CfnScheduleGroup(self, "Group", name=group_name)
        self.role = iam.Role(
            self,
            "Role",
            description="Runs postline's schedules (soft-bounce retries, campaigns)",
            # Only schedules of this group may assume it (confused deputy protection). Scheduler gives the group's
            # ARN as the source, never a schedule's: a condition on schedule ARNs would match no schedule at all.
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={
                    "StringEquals": {
                        "aws:SourceAccount": stack.account,
                        "aws:SourceArn": stack.format_arn(
                            service="scheduler", resource="schedule-group", resource_name=group_name
                        ),
                    },
                },
            ),
        )
        self.dead_letters = sqs.Queue(
            self,
            "Dlq",
            queue_name=queue_names.name(stack.stack_name, SCHEDULES_DLQ_SUFFIX),
            retention_period=DLQ_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        accept(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "It is itself a dead-letter queue, of postline's EventBridge "
            "Scheduler schedules (no queue redrives to it; its alarm is in Monitoring).",
        )
        # Scheduler sends to the dead-letter queue as the schedule's role.
        for queue in [*target_queues, self.dead_letters]:
            queue.grant_send_messages(self.role)
        self.group_name = group_name
        stack_output(self, Outputs.SCHEDULER_ROLE, self.role.role_arn, "Role for postline's schedules")
        stack_output(self, Outputs.SCHEDULE_GROUP, self.group.ref, "EventBridge Scheduler group for postline")
        stack_output(
            self,
            Outputs.SCHEDULE_DLQ_ARN,
            self.dead_letters.queue_arn,
            "Dead-letter queue of postline's schedules (each schedule names it)",
        )
        stack_output(
            self,
            Outputs.SCHEDULE_DLQ_URL,
            self.dead_letters.queue_url,
            "Dead-letter queue of postline's schedules: calls a schedule could not make, with the error",
        )

    def grant_create(self, grantee: iam.IGrantable) -> None:
        """Create schedules in this group, handing them this role (and no other)."""
        stack = Stack.of(self)
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["scheduler:CreateSchedule"],
            resource_arns=[
                stack.format_arn(service="scheduler", resource="schedule", resource_name=f"{self.group_name}/*")
            ],
        )
        self.role.grant_pass_role(grantee.grant_principal)
        principal = cast(IConstruct, grantee.grant_principal)  # a role or a function's role: a construct
        accept(
            principal,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:"
            f"<AWS::AccountId>:schedule/{self.group_name}/*]",
            "Schedules are named per message and retry or per campaign and time, unknown in advance; creation "
            "is limited to postline's own schedule group.",
        )
