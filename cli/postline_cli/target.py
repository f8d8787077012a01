"""Where the CLI's commands go: the local stack or an AWS account.

``AWS_ENDPOINT_URL`` set: that endpoint, with the local stack's fixed resource names (and, on loopback, the local
stack's dummy credentials where the environment names none). Otherwise, a local stack that is up (started from
this folder). Otherwise AWS, with the normal AWS credentials and the resource names read from the CloudFormation
stack's outputs (stack ``postline``, or ``POSTLINE_STACK``). The ``POSTLINE_*`` variables the functions use
override any name.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError

from postline.models import bind_table_names
from postline.settings import STREAMS

from .local import resources
from .local.stack import LocalPaths, read_state, running_state


@dataclass(frozen=True)
class Target:
    endpoint: str | None
    tables: dict[str, str]
    queue_urls: dict[str, str]
    signing_keys_secret: str
    claim_check_bucket: str
    schedule_group: str
    scheduler_role_arn: str = ""  # handed to the schedules a campaign's start creates
    event_bus: str = ""  # where a campaign's moves are announced
    schedule_dlq_arn: str = ""  # where a schedule that cannot deliver leaves its message (none locally)

    def _queue_url(self, variable: str, local_name: str) -> str:
        explicit = os.environ.get(variable) or self.queue_urls.get(variable)
        if explicit:
            return explicit
        from postline.clients import client

        return client("sqs").get_queue_url(QueueName=local_name)["QueueUrl"]

    def inbound_queue_url(self, stream: str) -> str:
        return self._queue_url(f"POSTLINE_INBOUND_QUEUE_URL_{stream.upper()}", resources.INBOUND_QUEUES[stream])

    def send_queue_url(self, stream: str) -> str:
        return self._queue_url(f"POSTLINE_SEND_QUEUE_URL_{stream.upper()}", resources.SEND_QUEUES[stream])

    def send_dlq_url(self, stream: str) -> str:
        return self._queue_url(f"POSTLINE_SEND_DLQ_URL_{stream.upper()}", f"{resources.SEND_QUEUES[stream]}-dlq")

    def inbound_queue_urls(self) -> dict[str, str]:
        return {stream: self.inbound_queue_url(stream) for stream in STREAMS}


@lru_cache(maxsize=1)
def target() -> Target:
    if not os.environ.get("AWS_ENDPOINT_URL"):
        paths = LocalPaths.default()
        state = running_state(paths)
        if state:
            os.environ.update(
                {
                    "AWS_ENDPOINT_URL": state["endpoint"],
                    "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing",
                }
            )
        elif (read_state(paths) or {}).get("ready"):
            # A stack that stops cleanly removes its state: this one died (or hangs). Going to AWS instead would
            # answer about another place than the one the operator is working with.
            raise TargetError(
                f"the local stack started in this folder is not answering (it died? its log: "
                f"{paths.log_file}): `postline local down`, then `postline local up` starts it again"
            )
    if os.environ.get("AWS_ENDPOINT_URL"):
        os.environ.setdefault("AWS_DEFAULT_REGION", resources.REGION)
        if is_loopback(os.environ["AWS_ENDPOINT_URL"]):
            _default_to_local_credentials()
    names = (
        _local_names()
        if os.environ.get("AWS_ENDPOINT_URL")
        else _names_from_stack(os.environ.get("POSTLINE_STACK", "postline"))
    )
    tables = {variable: os.environ.get(variable, names[variable]) for variable in resources.TABLES}
    bind_table_names(
        *(
            tables[v]
            for v in (
                "POSTLINE_MESSAGES_TABLE",
                "POSTLINE_EVENTS_TABLE",
                "POSTLINE_SUPPRESSIONS_TABLE",
                "POSTLINE_TEMPLATES_TABLE",
            )
        )
    )
    queue_urls = {
        k: v
        for k, v in names.items()
        if k.startswith(("POSTLINE_INBOUND_QUEUE_URL_", "POSTLINE_SEND_QUEUE_URL_", "POSTLINE_SEND_DLQ_URL_"))
    }
    return Target(
        os.environ.get("AWS_ENDPOINT_URL"),
        tables,
        queue_urls,
        os.environ.get("POSTLINE_SIGNING_KEYS_SECRET", names["POSTLINE_SIGNING_KEYS_SECRET"]),
        os.environ.get("POSTLINE_CLAIM_CHECK_BUCKET", names["POSTLINE_CLAIM_CHECK_BUCKET"]),
        os.environ.get("POSTLINE_SCHEDULE_GROUP", names["POSTLINE_SCHEDULE_GROUP"]),
        os.environ.get("POSTLINE_SCHEDULER_ROLE_ARN", names["POSTLINE_SCHEDULER_ROLE_ARN"]),
        os.environ.get("POSTLINE_EVENT_BUS", names["POSTLINE_EVENT_BUS"]),
        os.environ.get("POSTLINE_SCHEDULE_DLQ_ARN", names.get("POSTLINE_SCHEDULE_DLQ_ARN", "")),
    )


def is_loopback(url: str) -> bool:
    """Whether ``url`` is on this machine (the local stack's endpoint is)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_to_local_credentials() -> None:
    """The local stack takes any credentials, but botocore refuses to sign without some: where the environment
    names none (no keys, no AWS_PROFILE), the local stack's dummy ones, which its functions use too. The default
    profile's are not looked for: against the local stack they (an expired SSO session, say) only get in the way."""
    if not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})


def _local_names() -> dict[str, str]:
    return {
        **resources.TABLES,
        "POSTLINE_SIGNING_KEYS_SECRET": resources.SIGNING_SECRET,
        "POSTLINE_CLAIM_CHECK_BUCKET": resources.CLAIM_CHECK_BUCKET,
        "POSTLINE_SCHEDULE_GROUP": resources.SCHEDULE_GROUP,
        "POSTLINE_SCHEDULER_ROLE_ARN": resources.function_environment("", "")["POSTLINE_SCHEDULER_ROLE_ARN"],
        "POSTLINE_EVENT_BUS": resources.EVENT_BUS,
    }


# Stack output key -> the variable it fills (see infra/stacks/constants.py, Outputs).
STACK_OUTPUTS = {
    "TableMessages": "POSTLINE_MESSAGES_TABLE",
    "TableEmailEvents": "POSTLINE_EVENTS_TABLE",
    "TableEmailSuppressions": "POSTLINE_SUPPRESSIONS_TABLE",
    "TableTemplates": "POSTLINE_TEMPLATES_TABLE",
    "TableRateLimits": "POSTLINE_RATE_LIMITS_TABLE",
    "TableCampaigns": "POSTLINE_CAMPAIGNS_TABLE",
    "TableStats": "POSTLINE_STATS_TABLE",
    "ScheduleDlqArn": "POSTLINE_SCHEDULE_DLQ_ARN",
    **{f"InboundQueueUrl{s.capitalize()}": f"POSTLINE_INBOUND_QUEUE_URL_{s.upper()}" for s in STREAMS},
    **{f"SendQueueUrl{s.capitalize()}": f"POSTLINE_SEND_QUEUE_URL_{s.upper()}" for s in STREAMS},
    **{f"SendDlqUrl{s.capitalize()}": f"POSTLINE_SEND_DLQ_URL_{s.upper()}" for s in STREAMS},
    "ScheduleGroupName": "POSTLINE_SCHEDULE_GROUP",
    "SchedulerRoleArn": "POSTLINE_SCHEDULER_ROLE_ARN",
    "EventBusName": "POSTLINE_EVENT_BUS",
    "SigningKeysSecretArn": "POSTLINE_SIGNING_KEYS_SECRET",
    "ClaimCheckBucket": "POSTLINE_CLAIM_CHECK_BUCKET",
}


class TargetError(RuntimeError):
    pass


def _names_from_stack(stack_name: str, cloudformation=None) -> dict[str, str]:
    from postline.clients import client

    cloudformation = cloudformation or client("cloudformation")
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except BotoCoreError:
        raise  # no credentials, no region, no network: the CLI says what to do about each (errors.explain)
    except Exception as error:  # noqa: BLE001 - no stack, no permission: one clear message
        raise TargetError(
            f"no local stack is up here and the AWS stack {stack_name!r} could not be read ({error}). "
            "Start the local stack with `postline local up`, or deploy (docs/deploy.md)."
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [key for key in STACK_OUTPUTS if key not in outputs]
    if missing:
        raise TargetError(f"the stack {stack_name!r} lacks the outputs {', '.join(missing)}")
    return {variable: outputs[key] for key, variable in STACK_OUTPUTS.items()}
