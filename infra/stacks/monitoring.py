"""Alarms (to one topic, optionally emailed) and a dashboard: flow, backlogs, latency, sending rate, and what
happened to each stream's emails.

The topic comes first: the functions publish campaign and stream alerts to it (postline.analytics.alerts), so it
exists before them; the alarms and the dashboard, which watch the functions, come once they do (``watch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .config import Config
from .constants import (
    BOUNCE_RATE_ALARM,
    COMPLAINT_RATE_ALARM,
    EMAIL_ENGAGEMENT_METRICS,
    EMAIL_OUTCOME_METRICS,
    METRIC_HELD_UNVERIFIED,
    METRIC_QUOTA_USED_PERCENT,
    METRIC_RATE_LIMITER_WAITS,
    METRIC_SERVICE_DIMENSION,
    METRIC_STREAM_DIMENSION,
    METRIC_THROTTLED_SENDS,
    METRICS_NAMESPACE,
    POWERTOOLS_SERVICE_NAME,
    QUOTA_ALARM_PERCENT,
    SES_CONFIGURATION_SET_DIMENSION,
    STREAMS,
    Outputs,
    pascal,
)
from .keys import topic_key
from .outputs import stack_output
from .queues import Queues
from .ses import Ses

PERIOD = Duration.minutes(5)
REPUTATION_PERIOD = Duration.hours(1)


class Monitoring(Construct):
    def __init__(self, scope: Construct, id: str, *, config: Config) -> None:
        super().__init__(scope, id)
        key = topic_key(
            self, "AlarmTopicKey", description="Encrypts the postline alarm topic", service="cloudwatch.amazonaws.com"
        )
        self.topic = sns.Topic(self, "AlarmTopic", display_name="postline alarms", master_key=key, enforce_ssl=True)
        self._allow_alarms_to_publish()
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self._action = actions.SnsAction(self.topic)
        stack_output(self, Outputs.ALARM_TOPIC, self.topic.topic_arn, "SNS topic every postline alarm goes to")

    def _allow_alarms_to_publish(self) -> None:
        """The topic's policy replaces SNS's default one, which let the account publish: beside the TLS Deny it
        needs an Allow for CloudWatch, or no alarm action can publish. Only alarms of this account, in its region.
        (The functions publish alerts through their roles' grants: within the account an IAM Allow suffices.)"""
        stack = Stack.of(self)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )

    def watch(
        self,
        *,
        config: Config,
        queues: Queues,
        ses_resources: Ses,
        functions: dict[str, lambda_.Function],
        api: apigw.HttpApi,
        schedules_dlq: sqs.IQueue,
        app_events_dlq: sqs.IQueue | None = None,
    ) -> None:
        """The alarms and the dashboard, once everything they watch exists."""
        for name, _, dlq in queues.all_with_dlq:
            self._alarm(
                f"{pascal(name)}DlqNotEmpty",
                f"{name}: messages in the dead-letter queue",
                dlq.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                1,
            )
        self._alarm(
            "SchedulesDlqNotEmpty",
            "schedules: a soft-bounce retry or campaign start EventBridge Scheduler "
            "could not deliver (each message holds the SendMessage call and the error; docs/deploy.md)",
            schedules_dlq.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
            1,
        )
        if app_events_dlq is not None:  # the config's app_events_queue
            self._alarm(
                "AppEventsDlqNotEmpty",
                "app-events: postline events EventBridge could not deliver to the app-events queue, or that its "
                "reader received too often without deleting (`postline events` and your application miss them)",
                app_events_dlq.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                1,
            )
        for stream in STREAMS:
            # Not the age of any message: postline delays an email it makes wait (up to 15 minutes at a time, as a
            # new message), so only a message older than that and a visibility timeout is one nobody is handling.
            self._alarm(
                f"SendQueue{pascal(stream)}Age",
                (
                    f"{stream}: an email has waited to be sent for more than {config.send_queue_age_alarm_seconds} s, "
                    "longer than postline ever delays one on purpose: the send function is failing, throttled or "
                    "stopped"
                ),
                queues.send[stream].metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum"),
                config.send_queue_age_alarm_seconds,
            )
        for name, function in functions.items():
            self._alarm(
                f"{pascal(name)}Errors",
                f"{name}: invocation errors",
                function.metric_errors(period=PERIOD, statistic="Sum"),
                1,
            )
            self._alarm(
                f"{pascal(name)}Throttles",
                f"{name}: throttled invocations",
                function.metric_throttles(period=PERIOD, statistic="Sum"),
                1,
            )
        # Account-level reputation as SES computes it: AWS reviews an account past these rates.
        bounce_rate = _reputation("Reputation.BounceRate")
        complaint_rate = _reputation("Reputation.ComplaintRate")
        self._alarm(
            "SesBounceRate", f"SES bounce rate at or above {BOUNCE_RATE_ALARM:.0%}", bounce_rate, BOUNCE_RATE_ALARM
        )
        self._alarm(
            "SesComplaintRate",
            f"SES complaint rate at or above {COMPLAINT_RATE_ALARM:.1%}",
            complaint_rate,
            COMPLAINT_RATE_ALARM,
        )
        # The send function's limiter publishes how much of SES's 24-hour quota is used at each refresh.
        quota_used = _own(METRIC_QUOTA_USED_PERCENT, "Maximum")
        self._alarm(
            "SesQuotaLow",
            (
                f"{QUOTA_ALARM_PERCENT}% or more of the account's SES 24-hour sending quota is used: postline has "
                "stopped sending marketing (it waits on its queue, nothing is lost) to keep the rest for transactional "
                "and critical mail. Request a sending quota increase in the SES console (Account dashboard) or wait "
                "for the 24-hour window to free quota; marketing resumes by itself. See docs/deploy.md, 'Sending rate, "
                "quota and IP warm-up'."
            ),
            quota_used,
            QUOTA_ALARM_PERCENT,
        )
        for stream in STREAMS:  # the send function counts each email it holds for an identity SES has not verified
            self._alarm(
                f"HeldUnverified{pascal(stream)}",
                (
                    f"{stream}: emails are held because SES has not verified the sending domain yet (DKIM can take up "
                    "to 72 hours after a deploy) or, in the SES sandbox, their recipient. They wait on their queue and "
                    "go once it verifies, or fail after waiting 72 hours. `postline status MESSAGE` says which "
                    "identity; see docs/deploy.md, '3. DNS' and '4. Leave the SES sandbox'."
                ),
                cloudwatch.Metric(
                    namespace=METRICS_NAMESPACE,
                    metric_name=METRIC_HELD_UNVERIFIED,
                    statistic="Sum",
                    period=PERIOD,
                    dimensions_map={METRIC_SERVICE_DIMENSION: POWERTOOLS_SERVICE_NAME, METRIC_STREAM_DIMENSION: stream},
                ),
                1,
            )

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(6))
        self.dashboard.add_widgets(*[self._flow(stream, queues, ses_resources) for stream in STREAMS])
        self.dashboard.add_widgets(
            *[
                _graph(f"Emails: {stream}", [_per_stream(name, stream) for name in EMAIL_OUTCOME_METRICS])
                for stream in STREAMS
            ]
        )
        self.dashboard.add_widgets(
            *[
                _graph(f"Engagement: {stream}", [_per_stream(name, stream) for name in EMAIL_ENGAGEMENT_METRICS])
                for stream in STREAMS
            ]
        )
        self.dashboard.add_widgets(
            _graph(
                "Backlog: inbound queues (visible messages)",
                [
                    queues.inbound[s].metric_approximate_number_of_messages_visible(label=s, statistic="Maximum")
                    for s in STREAMS
                ],
            ),
            _graph(
                "Backlog: send queues (visible messages)",
                [
                    queues.send[s].metric_approximate_number_of_messages_visible(label=s, statistic="Maximum")
                    for s in STREAMS
                ],
            ),
            _graph(
                "Dead-letter queues (visible messages)",
                [
                    dlq.metric_approximate_number_of_messages_visible(label=name, statistic="Maximum")
                    for name, _, dlq in queues.all_with_dlq
                ]
                + [schedules_dlq.metric_approximate_number_of_messages_visible(label="schedules", statistic="Maximum")],
            ),
        )
        self.dashboard.add_widgets(
            _graph(
                "Latency: oldest inbound message (s)",
                [
                    queues.inbound[s].metric_approximate_age_of_oldest_message(label=s, statistic="Maximum")
                    for s in STREAMS
                ],
            ),
            _graph(
                "Latency: oldest message waiting to be sent (s)",
                [
                    queues.send[s].metric_approximate_age_of_oldest_message(label=s, statistic="Maximum")
                    for s in STREAMS
                ],
            ),
            _graph(
                "Function duration p90 (ms)",
                [f.metric_duration(label=name, statistic="p90") for name, f in functions.items()],
            ),
        )
        self.dashboard.add_widgets(
            _graph(
                "SES reputation (account)",
                [bounce_rate, complaint_rate],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=BOUNCE_RATE_ALARM, label="bounce alarm"),
                    cloudwatch.HorizontalAnnotation(value=COMPLAINT_RATE_ALARM, label="complaint alarm"),
                ],
            ),
            _graph(
                "Function errors and throttles",
                [f.metric_errors(label=f"{name} errors", statistic="Sum") for name, f in functions.items()]
                + [f.metric_throttles(label=f"{name} throttles", statistic="Sum") for name, f in functions.items()],
            ),
            _graph(
                "Tracking API",
                [
                    api.metric_count(label="requests"),
                    api.metric_client_error(label="4xx"),
                    api.metric_server_error(label="5xx"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            _graph(
                "Sending rate: SES 24-hour quota used (%)",
                [quota_used.with_(label="quota used")],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=QUOTA_ALARM_PERCENT, label="marketing stops, alarm")
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
            ),
            _graph(
                "Sending rate: sends SES throttled",
                [_own(METRIC_THROTTLED_SENDS, "Sum").with_(label="throttled sends")],
            ),
            _graph(
                "Sending rate: emails that waited for tokens",
                [_own(METRIC_RATE_LIMITER_WAITS, "Sum").with_(label="waited")],
            ),
        )
        stack_output(self, Outputs.DASHBOARD, self.dashboard.dashboard_name, "CloudWatch dashboard")

    def _alarm(self, id: str, description: str, metric: cloudwatch.Metric, threshold: float) -> None:
        alarm = metric.create_alarm(
            self,
            id,
            alarm_description=description,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)

    def _flow(self, stream: str, queues: Queues, ses_resources: Ses) -> cloudwatch.GraphWidget:
        """queued -> rendered -> sent -> delivered / bounced / complained, for one stream."""
        configuration_set = ses_resources.configuration_sets[stream].configuration_set_name
        ses_metrics = [
            cloudwatch.Metric(
                namespace="AWS/SES",
                metric_name=event,
                label=label,
                statistic="Sum",
                dimensions_map={SES_CONFIGURATION_SET_DIMENSION: configuration_set},
            )
            for event, label in (
                ("Send", "sent"),
                ("Delivery", "delivered"),
                ("Bounce", "bounced"),
                ("Complaint", "complained"),
            )
        ]
        return _graph(
            f"Flow: {stream}",
            [
                queues.inbound[stream].metric_number_of_messages_sent(label="queued", statistic="Sum"),
                queues.send[stream].metric_number_of_messages_sent(label="rendered", statistic="Sum"),
                *ses_metrics,
            ],
        )


def _reputation(name: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(namespace="AWS/SES", metric_name=name, statistic="Maximum", period=REPUTATION_PERIOD)


def _own(name: str, statistic: str) -> cloudwatch.Metric:
    """A metric the functions publish (Powertools' embedded metric format, with its default service dimension)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        statistic=statistic,
        period=PERIOD,
        dimensions_map={METRIC_SERVICE_DIMENSION: POWERTOOLS_SERVICE_NAME},
    )


def _per_stream(name: str, stream: str) -> cloudwatch.Metric:
    """A count the functions publish per stream (postline.analytics), summed per period."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        label=name,
        statistic="Sum",
        period=PERIOD,
        dimensions_map={METRIC_SERVICE_DIMENSION: POWERTOOLS_SERVICE_NAME, METRIC_STREAM_DIMENSION: stream},
    )


def _graph(title: str, metrics: Sequence[cloudwatch.IMetric], **options: Any) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=metrics, width=8, height=6, **options)
