"""The pipeline's queues: inbound per priority, send per stream, the SES events queues (Send events held back in
their own, ``SEND_EVENT_DELAY``) and the campaigns' control queue. Each is named ``<stack name>-<suffix>``, its DLQ
``<...>-dlq`` (postline.queue_names): the functions derive their URLs from one prefix (functions.py,
Env.QUEUE_URL_PREFIX)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from postline import queue_names

from .constants import (
    CAMPAIGN_QUEUE,
    DLQ_RETENTION,
    INBOUND_QUEUES,
    MAX_RECEIVE_COUNT,
    QUEUE_RETENTION,
    QUEUE_SUFFIXES,
    SEND_EVENT_DELAY,
    SEND_QUEUES,
    SES_EVENTS,
    SES_SEND_EVENTS,
    STREAMS,
    Outputs,
    pascal,
)
from .outputs import stack_output


class Queues(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        inbound_visibility: Duration,
        send_visibility: Duration,
        events_visibility: Duration,
        campaign_visibility: Duration,
        held_back_send_events: bool,
    ) -> None:
        super().__init__(scope, id)
        self.inbound: dict[str, sqs.Queue] = {}
        self.send: dict[str, sqs.Queue] = {}
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        for stream in STREAMS:
            self.inbound[stream] = self._queue_with_dlq(INBOUND_QUEUES[stream], inbound_visibility)
            self.send[stream] = self._queue_with_dlq(SEND_QUEUES[stream], send_visibility)
        self.ses_events = self._queue_with_dlq(SES_EVENTS, events_visibility)
        # Only the EventBridge route publishes SES's Send events (constants.SNS_EVENT_TYPES), and holds them back.
        self.ses_send_events = (
            self._queue_with_dlq(SES_SEND_EVENTS, events_visibility, delay=SEND_EVENT_DELAY)
            if held_back_send_events
            else None
        )
        self.campaigns = self._queue_with_dlq(CAMPAIGN_QUEUE, campaign_visibility)

        # What an application attaches to its role to drop messages on the inbound queues.
        self.producer_policy = iam.ManagedPolicy(
            self,
            "ProducerPolicy",
            description="Send emails through postline (SendMessage to its inbound queues)",
            statements=[
                iam.PolicyStatement(
                    actions=["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
                    resources=[queue.queue_arn for queue in self.inbound.values()],
                )
            ],
        )
        self._outputs()

    def _outputs(self) -> None:
        for stream in STREAMS:
            stack_output(
                self,
                Outputs.inbound_queue_url(stream),
                self.inbound[stream].queue_url,
                f"Inbound queue for {stream} emails: applications send here",
            )
            stack_output(
                self,
                Outputs.inbound_dlq_url(stream),
                self.dead_letter_queues[INBOUND_QUEUES[stream]].queue_url,
                f"Dead-letter queue of the {stream} inbound queue (rejected messages, with reasons)",
            )
            stack_output(
                self, Outputs.send_queue_url(stream), self.send[stream].queue_url, f"Send queue of the {stream} stream"
            )
            stack_output(
                self,
                Outputs.send_dlq_url(stream),
                self.dead_letter_queues[SEND_QUEUES[stream]].queue_url,
                f"Dead-letter queue of the {stream} send queue (parked and given-up emails, with reasons)",
            )
        stack_output(self, Outputs.SES_EVENTS_QUEUE_URL, self.ses_events.queue_url, "Queue of SES events")
        if self.ses_send_events is not None:
            stack_output(
                self,
                Outputs.SES_SEND_EVENTS_QUEUE_URL,
                self.ses_send_events.queue_url,
                "Queue of SES Send events, each held back for a minute",
            )
        stack_output(
            self,
            Outputs.CAMPAIGN_QUEUE_URL,
            self.campaigns.queue_url,
            "Control queue of the campaign function (starts and continues campaigns)",
        )
        stack_output(
            self,
            Outputs.CAMPAIGN_DLQ_URL,
            self.dead_letter_queues[CAMPAIGN_QUEUE].queue_url,
            "Dead-letter queue of the campaigns' control queue",
        )
        stack_output(
            self,
            Outputs.PRODUCER_POLICY,
            self.producer_policy.managed_policy_arn,
            "Managed policy that lets an application queue emails",
        )

    @property
    def all_with_dlq(self) -> list[tuple[str, sqs.Queue, sqs.Queue]]:
        """(logical name, queue, its DLQ) for every pipeline queue."""
        queues = [(INBOUND_QUEUES[s], self.inbound[s]) for s in STREAMS]
        queues += [(SEND_QUEUES[s], self.send[s]) for s in STREAMS]
        queues += [(SES_EVENTS, self.ses_events)]
        if self.ses_send_events is not None:
            queues.append((SES_SEND_EVENTS, self.ses_send_events))
        queues.append((CAMPAIGN_QUEUE, self.campaigns))
        return [(name, queue, self.dead_letter_queues[name]) for name, queue in queues]

    def _queue_with_dlq(self, name: str, visibility: Duration, delay: Duration | None = None) -> sqs.Queue:
        stack_name, suffix = Stack.of(self).stack_name, QUEUE_SUFFIXES[name]
        # SQS-managed encryption: EventBridge can deliver to it and producers need no KMS permission.
        dlq = sqs.Queue(
            self,
            f"{pascal(name)}Dlq",
            queue_name=queue_names.name(stack_name, queue_names.dead_letters(suffix)),
            retention_period=DLQ_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.dead_letter_queues[name] = dlq
        return sqs.Queue(
            self,
            pascal(name),
            queue_name=queue_names.name(stack_name, suffix),
            visibility_timeout=visibility,
            retention_period=QUEUE_RETENTION,
            delivery_delay=delay,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=MAX_RECEIVE_COUNT),
        )
