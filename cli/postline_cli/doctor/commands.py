"""``postline doctor [DOMAIN] [--json]`` and ``postline doctor --records DOMAIN``."""

from __future__ import annotations

import json
from typing import NoReturn

import click

from postline.settings import STREAMS

from .dns_checks import DMARC_POLICIES, Identity, dns_checks, records_to_create
from .report import FAIL, PASS, WARN, Check, failed
from .ses_checks import (
    Wiring,
    account_checks,
    configuration_set_checks,
    dead_letter_checks,
    identity_checks,
    identity_of,
    round_trip,
    subscription_check,
)

_STYLE = {PASS: ("pass", "green"), WARN: ("warn", "yellow"), FAIL: ("FAIL", "red")}


def _fail(message: str, code: int = 1) -> NoReturn:
    from ..main import fail

    fail(message, code)


@click.command()
@click.argument("domain", required=False)
@click.option(
    "--records",
    "records_only",
    is_flag=True,
    help="Print every DNS record DOMAIN needs, in zone-file form, and check nothing.",
)
@click.option(
    "--nameserver", metavar="HOST[:PORT]", default="", help="Ask this DNS server (default: the system's resolver)."
)
@click.option(
    "--dns-timeout",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    help="Seconds each DNS question may take.",
)
@click.option(
    "--stream",
    type=click.Choice(STREAMS),
    default="transactional",
    show_default=True,
    help="The configuration set the round trip's email goes through.",
)
@click.option(
    "--round-trip-timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds the round trip's Delivery event may take to come back; 0 skips the round trip.",
)
@click.option(
    "--dmarc-policy",
    type=click.Choice(DMARC_POLICIES),
    default="none",
    show_default=True,
    help="With --records: the DMARC policy to publish.",
)
@click.option("--dmarc-report", metavar="ADDRESS", help="With --records: where DMARC aggregate reports go.")
@click.option(
    "--unsubscribe-domain",
    metavar="DOMAIN",
    help="The List-Unsubscribe mailto address's domain, whose MX SES receives on (default: unsubscribe."
    "DOMAIN, as the stack's default; '' when the deployment does not receive that mail).",
)
@click.option("--json", "as_json", is_flag=True)
def doctor(
    domain,
    records_only,
    nameserver,
    dns_timeout,
    stream,
    round_trip_timeout,
    dmarc_policy,
    dmarc_report,
    unsubscribe_domain,
    as_json,
) -> None:
    """Check the sending DOMAIN's DNS (SPF, DKIM, DMARC, MAIL FROM), the SES account and postline's wiring.

    Each check says pass, warn or fail, what it found and the record or step that fixes it; the exit status is 1
    when any check fails, so it can gate a deploy. Without DOMAIN: the local stack's, or the AWS account's only
    domain identity."""
    from postline.clients import client
    from postline.domains import make_resolver

    from ..target import target

    if records_only and not domain:
        _fail("--records needs the DOMAIN whose records to print", 2)
    where = target()
    sesv2 = client("sesv2")
    region = sesv2.meta.region_name
    domain = (domain or _default_domain(where, sesv2)).lower().rstrip(".")
    identity, answer = identity_of(sesv2, domain, region)
    if unsubscribe_domain is None:
        unsubscribe_domain = f"unsubscribe.{domain}"
    unsubscribe_domain = unsubscribe_domain.lower().rstrip(".") or None
    if records_only:
        if identity is None:
            _fail(
                f"SES holds no identity for {domain} in {region}: deploy the stack first (it creates the identity "
                "and the DKIM keys its records name)"
            )
        lines = records_to_create(identity, dmarc_policy, dmarc_report, unsubscribe_domain)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "domain": domain,
                        "region": region,
                        "records": [line for line in lines if not line.startswith(";")],
                    },
                    indent=2,
                )
            )
        else:
            click.echo("\n".join(lines))
        return

    checks, warmed_up = account_checks(sesv2)
    checks += identity_checks(domain, answer)
    resolver = make_resolver(nameserver, dns_timeout)
    checks += dns_checks(resolver, identity or Identity(domain, region), warmed_up, unsubscribe_domain)
    wiring = _wiring(where, domain, region)
    checks += configuration_set_checks(sesv2, wiring)
    checks += subscription_check(client("sns"), wiring)
    checks += dead_letter_checks(client("sqs"), wiring)
    if round_trip_timeout:
        blocking = [c for c in checks if c.status == FAIL and c.area in ("ses", "wiring")]
        if blocking:
            checks.append(
                Check(
                    "wiring",
                    "round trip",
                    WARN,
                    "not tried: the account or wiring checks above fail",
                    "fix them and run the doctor again",
                )
            )
        else:
            checks.append(round_trip(sesv2, client("dynamodb"), wiring, stream, round_trip_timeout))
    _report(domain, region, checks, as_json)
    raise SystemExit(1 if failed(checks) else 0)


def _default_domain(where, sesv2) -> str:
    if where.endpoint:
        from ..local import resources

        return resources.SENDING_DOMAIN
    domains = sorted(
        i["IdentityName"]
        for i in sesv2.list_email_identities().get("EmailIdentities", [])
        if i.get("IdentityType") == "DOMAIN"
    )
    if len(domains) == 1:
        return domains[0]
    _fail(
        "name the DOMAIN to check: SES holds "
        + (f"several domain identities here ({', '.join(domains)})" if domains else "no domain identity here"),
        2,
    )


def _wiring(where, domain: str, region: str) -> Wiring:
    if where.endpoint:
        return Wiring.local(where.endpoint)
    import os

    from postline.clients import client

    stack = os.environ.get("POSTLINE_STACK", "postline")
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    }
    missing = [key for key in ("SesEventsQueueUrl", "TableEmailEvents") if key not in outputs]
    if missing:
        _fail(f"the stack {stack!r} lacks the outputs {', '.join(missing)}: deploy it again (cdk deploy)")
    return Wiring.from_stack(outputs, domain, region)


def _report(domain: str, region: str, checks: list[Check], as_json: bool) -> None:
    counts = {status: sum(1 for c in checks if c.status == status) for status in (PASS, WARN, FAIL)}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "domain": domain,
                    "region": region,
                    "checks": [c.as_json() for c in checks],
                    "passed": counts[PASS],
                    "warnings": counts[WARN],
                    "failed": counts[FAIL],
                },
                indent=2,
            )
        )
        return
    click.echo(f"postline doctor: {domain} ({region})")
    area = None
    for check in checks:
        if check.area != area:
            area = check.area
            click.echo(f"\n{area.replace('_', ' ').upper()}")
        word, colour = _STYLE[check.status]
        click.echo(f"  {click.style(word, fg=colour, bold=check.status == FAIL)}  {check.name}: {check.found}")
        if check.fix:
            click.echo(f"        fix: {check.fix}")
    click.echo(f"\n{counts[PASS]} passed, {counts[WARN]} warnings, {counts[FAIL]} failed")
