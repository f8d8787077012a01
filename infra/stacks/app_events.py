"""The EventBridge bus the user's applications subscribe to: postline publishes every status change on it
(email.sent, email.delivered, email.bounced, ...; docs/events.md). Applications add their own rules.

With the config's ``app_events_queue``, the stack also keeps a queue of its own fed by a rule taking every postline
event, ``<stack name>-app-events``, as the local stack's ``postline-app-events``: ``postline events`` reads it, and
so may one application (with the reader policy). Events that cannot be delivered to it, or are received too often,
go to its DLQ."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from postline import queue_names

from .constants import APP_EVENTS_QUEUE_SUFFIX, DLQ_RETENTION, MAX_RECEIVE_COUNT, QUEUE_RETENTION, Outputs
from .outputs import stack_output


class ApplicationEvents(Construct):
    def __init__(self, scope: Construct, id: str, *, with_queue: bool = False) -> None:
        super().__init__(scope, id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"{Stack.of(self).stack_name}-events")
        stack_output(self, Outputs.EVENT_BUS_NAME, self.bus.event_bus_name, "EventBridge bus with postline's events")
        stack_output(self, Outputs.EVENT_BUS_ARN, self.bus.event_bus_arn, "ARN of the bus with postline's events")
        self.queue: sqs.Queue | None = None
        self.dead_letters: sqs.Queue | None = None
        if with_queue:
            self._queue()

    def _queue(self) -> None:
        stack_name = Stack.of(self).stack_name
        # SQS-managed encryption, as the pipeline's queues: EventBridge delivers to it with no KMS key policy.
        dlq_name = queue_names.name(stack_name, queue_names.dead_letters(APP_EVENTS_QUEUE_SUFFIX))
        self.dead_letters = sqs.Queue(
            self,
            "QueueDlq",
            queue_name=dlq_name,
            retention_period=DLQ_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=queue_names.name(stack_name, APP_EVENTS_QUEUE_SUFFIX),
            retention_period=QUEUE_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=MAX_RECEIVE_COUNT),
        )
        # Every postline event (email.*, campaign.*, sending.*): which are published at all is app_events.
        events.Rule(
            self,
            "ToQueue",
            event_bus=self.bus,
            description="postline's events to its app-events queue",
            event_pattern=events.EventPattern(source=["postline"]),
            targets=[targets.SqsQueue(self.queue, dead_letter_queue=self.dead_letters)],
        )
        self.reader_policy = iam.ManagedPolicy(
            self,
            "ReaderPolicy",
            description="Read postline's events from its app-events queue",
            statements=[
                iam.PolicyStatement(
                    actions=[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "sqs:GetQueueUrl",
                        "sqs:GetQueueAttributes",
                    ],
                    resources=[self.queue.queue_arn],
                )
            ],
        )
        stack_output(
            self,
            Outputs.APP_EVENTS_QUEUE_URL,
            self.queue.queue_url,
            "Queue of postline's events (postline events reads it)",
        )
        stack_output(
            self, Outputs.APP_EVENTS_DLQ_URL, self.dead_letters.queue_url, "Dead-letter queue of the app-events queue"
        )
        stack_output(
            self,
            Outputs.APP_EVENTS_READER_POLICY,
            self.reader_policy.managed_policy_arn,
            "Managed policy that lets a role read the app-events queue",
        )
