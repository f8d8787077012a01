"""Deploy-time custom resource: activates postline's SES receipt rule set, never at the cost of another one.

SES allows one active receipt rule set per account and region, and activating one silently deactivates the one
active before (an Amazon WorkMail organisation's, a team's own inbound processing), which breaks their mail. So
Create and Update activate postline's rule set only when none is active (or postline's already is), and otherwise
fail the deploy, naming the active rule set and the config setting that adds postline's rule to it instead. Delete
deactivates only when postline's rule set is the active one: a rule set activated since is left alone.

Self-contained (standard library and the runtime's boto3), like infra/layer_compiler: it needs nothing else.
"""

from __future__ import annotations

import functools
import json
import urllib.request

import boto3


class AnotherRuleSetActive(Exception):
    """Another receipt rule set is active: activating postline's would deactivate it."""


@functools.cache
def _default_ses():
    return boto3.client("ses")


def active_rule_set(ses) -> str | None:
    """The name of the account's active receipt rule set in this region, or None."""
    return ses.describe_active_receipt_rule_set().get("Metadata", {}).get("Name")


def activate(rule_set: str, ses=None) -> None:
    """Make ``rule_set`` the active one if nothing is active; nothing to do if it already is."""
    ses = ses or _default_ses()
    active = active_rule_set(ses)
    if active == rule_set:
        return
    if active is not None:
        raise AnotherRuleSetActive(
            f"The SES receipt rule set {active} is active in this account and region; activating postline's "
            f'({rule_set}) would deactivate it and stop the mail it receives. Set "receipt_rule_set": "{active}" '
            "in the deploy config so postline adds its rule to it, then deploy again (docs/deploy.md)."
        )
    ses.set_active_receipt_rule_set(RuleSetName=rule_set)


def deactivate(rule_set: str, ses=None) -> bool:
    """Deactivate ``rule_set`` if it is the active one (SES refuses to delete an active rule set); True if it was."""
    ses = ses or _default_ses()
    if active_rule_set(ses) != rule_set:
        return False
    ses.set_active_receipt_rule_set()  # no name: no rule set active
    return True


def handler(event: dict, context) -> None:
    """CloudFormation's custom resource protocol: always answer, or the stack waits until the service timeout."""
    rule_set = event["ResourceProperties"]["RuleSetName"]
    physical_id = f"{rule_set}-active"
    try:
        if event["RequestType"] == "Delete":
            # Also the rollback of a Create that failed: then another rule set is active and stays so.
            deactivate(rule_set)
        else:
            activate(rule_set)
        _answer(event, "SUCCESS", physical_id)
    except Exception as error:  # noqa: BLE001 - reported to CloudFormation, which rolls back
        reason = str(error) if isinstance(error, AnotherRuleSetActive) else f"{type(error).__name__}: {error}"
        print(json.dumps({"level": "ERROR", "message": "receipt rule set request failed", "error": reason}))
        _answer(event, "FAILED", physical_id, reason=reason[:1000])


def _answer(event: dict, status: str, physical_id: str, reason: str = "") -> None:
    # Twin of infra/layer_compiler's: each asset is app.py alone (no bundling, no layer), so they share no module.
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or status,
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": {},
        }
    ).encode()
    # CloudFormation's own presigned https URL for this custom resource's answer
    request = urllib.request.Request(  # noqa: S310
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - CloudFormation's presigned https URL
        response.read()
