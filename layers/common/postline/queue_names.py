"""The pipeline's queue names, in one place for the library, the CDK stack (infra/stacks/constants.py) and the local
stack (cli/postline_cli/local/resources.py).

Every queue is named ``<stack name>-<suffix>``, its dead-letter queue ``<stack name>-<suffix>-dlq``, so a function
derives each queue's URL from one prefix, ``POSTLINE_QUEUE_URL_PREFIX`` =
``https://sqs.<region>.<url suffix>/<account>/<stack name>-`` (locally ``<endpoint>/<account>/postline-``), instead of
carrying a dozen URLs in an environment Lambda limits to 4 KB (docs/decisions.md). None is FIFO.

Nothing but the standard library here: the CDK app imports this module without the rest of the layer.
"""

from __future__ import annotations

DLQ = "-dlq"
SES_EVENTS = "ses-events"  # SES's events (the EventBridge rule or the SNS topic deliver them here)
SES_SEND_EVENTS = "ses-send-events"  # SES's Send events, held back (the EventBridge route only)
CAMPAIGNS = "campaigns"  # campaign control messages (postline.campaigns.control), read by the campaign function
SQS_MAX_NAME = 80  # SQS's limit on a queue's name


def inbound(stream: str) -> str:
    """Suffix of the stream's inbound queue (applications send to it)."""
    return stream


def send(stream: str) -> str:
    """Suffix of the stream's send queue (the render function writes to it)."""
    return f"send-{stream}"


def dead_letters(suffix: str) -> str:
    """Suffix of a queue's dead-letter queue."""
    return suffix + DLQ


def suffixes(streams: tuple[str, ...]) -> list[str]:
    """Every queue's suffix, dead-letter queues included."""
    queues = [*map(inbound, streams), *map(send, streams), SES_EVENTS, SES_SEND_EVENTS, CAMPAIGNS]
    return queues + [dead_letters(suffix) for suffix in queues]


def name(stack_name: str, suffix: str) -> str:
    """A queue's physical name: ``postline-send-critical`` in the stack ``postline``."""
    return f"{stack_name}-{suffix}"


def max_stack_name(streams: tuple[str, ...]) -> int:
    """The longest stack name that keeps every queue's name within SQS's limit."""
    return SQS_MAX_NAME - len(name("", max(suffixes(streams), key=len)))


def url_prefix(endpoint: str, account: str, stack_name: str) -> str:
    """What every queue's URL starts with: ``<endpoint>/<account>/<stack name>-``."""
    return f"{endpoint}/{account}/{name(stack_name, '')}"
