"""The postline stack: composes one construct per concern and wires them together, nothing else."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from .api import TrackingApi
from .app_events import ApplicationEvents
from .config import Config
from .constants import FUNCTIONS, VISIBILITY_TIMEOUT_FACTOR
from .functions import Functions
from .monitoring import Monitoring
from .queues import Queues
from .receiving import UnsubscribeMailReceiving
from .scheduling import Scheduling
from .secrets import SigningKeys
from .ses import Ses
from .storage import ClaimCheckStorage
from .tables import Tables


class PostlineStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: Config, **kwargs) -> None:
        super().__init__(scope, id, description="postline: serverless email delivery on Amazon SES", **kwargs)
        self.tables = Tables(self, "Tables", retain_data=config.retain_data, backup_history=config.backup_history)
        self.queues = Queues(
            self,
            "Queues",
            inbound_visibility=_visibility("render"),
            send_visibility=_visibility("send"),
            events_visibility=_visibility("ses_events"),
            campaign_visibility=_visibility("campaign"),
            held_back_send_events=config.ses_event_route == "eventbridge",
        )
        # An application's client may read a template's stream from its record (postline.client, templates_table=).
        self.queues.producer_policy.add_statements(
            iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[self.tables.templates.table_arn])
        )
        self.storage = ClaimCheckStorage(self, "ClaimCheck")
        self.signing_keys = SigningKeys(self, "SigningKeys", retain_data=config.retain_data)
        self.ses = Ses(self, "Ses", config=config, queues=self.queues)
        # The API exists before the functions (they sign links with its URL); its routes come after them.
        self.api = TrackingApi(self, "Api", config=config)
        self.app_events = ApplicationEvents(self, "ApplicationEvents", with_queue=config.app_events_queue)
        # Schedules put soft-bounce retries on the inbound queues and start campaigns through the control queue.
        self.scheduling = Scheduling(
            self, "Scheduling", target_queues=[*self.queues.inbound.values(), self.queues.campaigns]
        )
        # The alarm topic before the functions (they publish alerts to it); its alarms once they exist.
        self.monitoring = Monitoring(self, "Monitoring", config=config)
        self.functions = Functions(
            self,
            "Functions",
            config=config,
            tables=self.tables,
            queues=self.queues,
            claim_check=self.storage.bucket,
            signing_keys=self.signing_keys.secret,
            ses_resources=self.ses,
            tracking_base_url=self.api.base_url,
            event_bus=self.app_events.bus,
            scheduling=self.scheduling,
            alarm_topic=self.monitoring.topic,
        )
        self.api.add_routes(self.functions.functions)
        # Unsubscribe by email: SES receives the mailto address's mail and the unsubscribe_mail function applies it.
        self.receiving = None
        if config.receive_unsubscribe_mail:
            self.receiving = UnsubscribeMailReceiving(self, "UnsubscribeMail", config=config)
            self.receiving.connect(
                self.functions.functions["unsubscribe_mail"],
                messages=self.tables.messages,
                events_table=self.tables.events,
                suppressions=self.tables.suppressions,
                stats=self.tables.stats,
                signing_keys=self.signing_keys.secret,
                event_bus=self.app_events.bus,
                alarm_topic=self.monitoring.topic,
            )
        self.monitoring.watch(
            config=config,
            queues=self.queues,
            ses_resources=self.ses,
            functions=self.functions.functions,
            api=self.api.api,
            schedules_dlq=self.scheduling.dead_letters,
            app_events_dlq=self.app_events.dead_letters,
        )


def _visibility(consumer: str) -> Duration:
    """Six times the consuming function's timeout (constants.VISIBILITY_TIMEOUT_FACTOR says why)."""
    return Duration.seconds(FUNCTIONS[consumer].timeout.to_seconds() * VISIBILITY_TIMEOUT_FACTOR)
