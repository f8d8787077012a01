"""EventBridge Scheduler: the group and the role campaign schedules run under.

A schedule starts a campaign by putting one message on the marketing queue; the campaign function (added by
the campaign work) creates schedules in this group and passes this role to them.
"""
from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .constants import SCHEDULE_GROUP, Outputs
from .outputs import stack_output


class Scheduling(Construct):
    def __init__(self, scope: Construct, id: str, *, marketing_queue: sqs.IQueue) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        group_name = f"{stack.stack_name}-{SCHEDULE_GROUP}"
        self.group = scheduler.CfnScheduleGroup(self, "Group", name=group_name)
        self.role = iam.Role(
            self, "Role", description="Runs postline campaign schedules",
            # Only schedules of this account may assume it (confused deputy protection).
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": stack.format_arn(
                    service="scheduler", resource="schedule", resource_name=f"{group_name}/*")},
            }),
        )
        marketing_queue.grant_send_messages(self.role)
        stack_output(self, Outputs.SCHEDULER_ROLE, self.role.role_arn, "Role for campaign schedules")
        stack_output(self, Outputs.SCHEDULE_GROUP, self.group.ref, "EventBridge Scheduler group for campaigns")
