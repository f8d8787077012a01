"""The EventBridge bus the user's applications subscribe to: postline publishes every status change on it
(email.sent, email.delivered, email.bounced, ...; docs/events.md). Applications add their own rules."""
from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_events as events
from constructs import Construct

from .constants import Outputs
from .outputs import stack_output


class ApplicationEvents(Construct):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"{Stack.of(self).stack_name}-events")
        stack_output(self, Outputs.EVENT_BUS_NAME, self.bus.event_bus_name, "EventBridge bus with postline's events")
        stack_output(self, Outputs.EVENT_BUS_ARN, self.bus.event_bus_arn, "ARN of the bus with postline's events")
