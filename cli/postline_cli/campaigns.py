"""``postline campaigns``: create a campaign from an audience file, see where it stands and when it will finish,
pause, resume and cancel it (docs/campaigns.md; the design in docs/campaigns-design.md).

The work is the library's (``postline.campaigns``); this module reads the user's files and the deployment's
figures, and says what happened in a line or a table (or JSON with ``--json``).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from postline import queue_names

from .rate import TABLE as RATE_LIMITS_TABLE
from .rate import load_plan, now, rate_view, warmup_view
from .target import Target, target
from .views import iso

CAMPAIGNS_TABLE = "POSTLINE_CAMPAIGNS_TABLE"
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")  # docs/campaigns-design.md, Modules


class CampaignInputError(ValueError):
    """An option or file the user gave cannot be used (said in one line)."""


class NoPlan(ValueError):
    """No finish time can be given (the limits would never let it finish, or a setting cannot be used)."""


# -- clients and resources (tests replace the clients) ---------------------------------------------------------------
def _client(service: str):
    from postline.clients import client

    return client(service)


def _campaigns_table(where: Target) -> str:
    return where.tables[CAMPAIGNS_TABLE]


def _control_queue_url(where: Target) -> str:
    """The control queue: its URL is the queues' prefix and its suffix, as the functions derive it; the marketing
    inbound queue's URL (known wherever the CLI points) gives the prefix."""
    marketing = where.inbound_queue_url("marketing")
    return marketing[: -len(queue_names.inbound("marketing"))] + queue_names.CAMPAIGNS


# -- reading the user's input ----------------------------------------------------------------------------------------
def parse_name(name: str) -> str:
    if not NAME.match(name):
        raise CampaignInputError(
            f"{name!r} is not a campaign name: use 1 to 40 lower-case letters, digits and "
            "hyphens, starting with a letter or digit (june-newsletter)"
        )
    return name


def parse_start(value: str | None, at: float) -> float:
    """Epoch seconds of ``--at``: an ISO 8601 time with an offset, or "now" (also when not given)."""
    if value is None or value.strip().lower() == "now":
        return at
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CampaignInputError(
            f"--at {value!r} is not a time: give ISO 8601 with an offset "
            "(2026-12-05T02:00:00+01:00, or ...Z for UTC), or now"
        ) from None
    if moment.tzinfo is None:
        raise CampaignInputError(
            f"--at {value!r} has no offset: add one (+01:00, or Z for UTC) so the time is not a guess"
        )
    start = moment.timestamp()
    if start < at:
        raise CampaignInputError(f"--at {value!r} is in the past (it is {iso(at)}): give a later time, or now")
    return start


def parse_zone(name: str) -> str:
    from postline.campaigns.windows import time_zone

    try:
        time_zone(name)
    except ValueError as error:
        raise CampaignInputError(f"--timezone: {error}") from None
    return name


def parse_window(value: str | None, zone: str):
    from postline.campaigns.windows import Window

    if value is None:
        return None
    try:
        return Window.parse(value, zone)
    except ValueError as error:
        raise CampaignInputError(f"--window: {error}") from None


def parse_data(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        data = json.loads(value)
    except json.JSONDecodeError as error:
        raise CampaignInputError(f"--data is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise CampaignInputError('--data must be a JSON object, such as \'{"issue_title": "June"}\'')
    return data


def marketing_template(reference: str):
    """The template a campaign sends (its active version, or NAME@VERSION), which must be a marketing one:
    a campaign's emails go through the marketing stream, its IP pool, and carry an unsubscribe link."""
    from postline.contract import TEMPLATE_REF
    from postline.models import Template
    from postline.templates import TemplateProblem, TemplateStore

    match = TEMPLATE_REF.match(reference)
    if not match:
        raise CampaignInputError(f"--template {reference!r} is not a template name like 'newsletter' or 'newsletter@3'")
    ref = (match["name"], int(match["version"]) if match["version"] else None)
    compiled = TemplateStore(Template.Meta.table_name, _client("dynamodb"), 0).resolve([ref])[ref]
    if isinstance(compiled, TemplateProblem):
        raise CampaignInputError(
            f"{compiled}: publish it with `postline templates push`, or see `postline templates list`"
        )
    if compiled.stream != "marketing":
        raise CampaignInputError(
            f"template {compiled.name!r} is a {compiled.stream} template: a campaign sends "
            'marketing templates only ("stream": "marketing" in its template.json)'
        )
    return compiled


# -- the plan --------------------------------------------------------------------------------------------------------
def _utc_day(t: float) -> date:
    return datetime.fromtimestamp(t, timezone.utc).date()


def _marketing_warmup(where: Target, at: float, start_at: float) -> list[int] | None:
    """Marketing's warm-up caps for each UTC day from ``start_at``'s (today's: what is left of it), as ``postline
    warmup status`` reads them; None when marketing's pool is not warming then."""
    from postline.limiter import budget_share

    plan, source = load_plan(None, os.environ)
    pool = plan.pool_of("marketing") if plan else None
    if pool is None:
        return None
    share = budget_share("marketing", plan.pools[pool])  # marketing stops at its share of a shared pool's cap
    caps, day = [], _utc_day(start_at)
    while (cap := plan.cap(day)) is not None:
        caps.append(math.floor(cap * share))
        day += timedelta(days=1)
    if caps and _utc_day(start_at) == _utc_day(at):
        today = next(
            p
            for p in warmup_view(_client("dynamodb"), where.tables[RATE_LIMITS_TABLE], plan, source, at)["pools"]
            if p["pool"] == pool
        )
        caps[0] = max(0, caps[0] - today["used"])
    return caps or None


def plan_for(where: Target, recipients: int, start_at: float, window, at: float):
    """When ``recipients`` more emails will have gone, from the limiter's figures as ``postline rate status``
    reads them (the rate it uses, marketing's share, the 24-hour quota and what was sent) and the warm-up caps;
    returns the plan and the figures it used."""
    from postline.campaigns.planner import plan

    start_at = max(start_at, at)
    try:
        rates = rate_view(_client("dynamodb"), _client("sesv2"), where.tables[RATE_LIMITS_TABLE], at, os.environ)
        inputs = {
            "rate": rates["usable_rate"],
            "marketing_share": rates["marketing_rate_share"],
            "max_24_hour_send": rates["limits"]["max_24_hour_send"],
            "sent_last_24_hours": rates["quota"]["sent_last_24_hours"],
            "warmup": _marketing_warmup(where, at, start_at),
        }
        quota = -1 if inputs["max_24_hour_send"] is None else inputs["max_24_hour_send"]  # (the planner's "none")
        return plan(recipients, start_at=start_at, window=window, **{**inputs, "max_24_hour_send": quota}), inputs
    except ValueError as error:  # (RateViewError is one)
        raise NoPlan(f"no finish time: {error}") from None


def plan_view(result, inputs: dict[str, Any], recipients: int, zone: str, at: float) -> dict[str, Any]:
    return {
        "recipients": recipients,
        "start_at": iso(result.start_at),
        "finish_at": iso(result.finish_at),
        "windows": result.windows,
        "binding": result.binding,
        "description": result.describe(zone, now=at),
        "spans": [{"start": iso(start), "end": iso(end), "emails": emails} for start, end, emails in result.spans],
        "inputs": inputs,
    }


# -- what the read commands show -------------------------------------------------------------------------------------
def _zone_of(campaign) -> str:
    return campaign.window.timezone if campaign.window else "UTC"


def _left(campaign) -> int:
    """Recipients not handed on yet."""
    return max(0, campaign.audience_rows - campaign.position)


def campaign_view(campaign) -> dict[str, Any]:
    rows, position = campaign.audience_rows, campaign.position
    return {
        "campaign": campaign.campaign_id,
        "state": campaign.state,
        "state_since": iso(campaign.state_at),
        "template": campaign.template,
        "start_at": iso(campaign.start_at),
        "window": campaign.window.as_dict() if campaign.window else None,
        "audience": {"key": campaign.audience_key, "rows": rows, "bytes": campaign.audience_bytes},
        "progress": {"position": position, "rows": rows, "percent": round(100 * position / rows, 1) if rows else 100.0},
        "counts": dict(campaign.counts),
        "history": [{"state": entry["state"], "at": iso(entry["at"])} for entry in campaign.history],
        "created_at": iso(campaign.created_at),
    }


def _many(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _window_text(window: dict[str, str] | None) -> str:
    return f"{window['start']}-{window['end']} {window['timezone']}" if window else "any time"


def show_lines(view: dict[str, Any]) -> list[str]:
    progress = view["progress"]
    rows = [
        ("state", f"{view['state']} since {view['state_since']}"),
        ("template", view["template"]),
        ("starts", view["start_at"]),
        ("window", _window_text(view["window"])),
        ("audience", f"{_many(view['audience']['rows'], 'recipient')} ({view['audience']['bytes']:,} bytes)"),
        ("progress", f"{progress['position']:,} of {progress['rows']:,} handed on ({progress['percent']:g} %)"),
        ("counts", ", ".join(f"{name} {value:,}" for name, value in view["counts"].items())),
    ]
    if "never_sent" in view:
        rows.append(
            ("never sent", f"{view['never_sent']:,} (never handed on, or dropped from the queues by the cancel)")
        )
    if "plan" in view:
        rows.append(("plan", view["plan"]["description"] + (" if resumed now" if view["state"] == "paused" else "")))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    return lines + ["history"] + [f"  {entry['at']}  {entry['state']}" for entry in view["history"]]


def plan_lines(view: dict[str, Any]) -> list[str]:
    inputs = view["inputs"]
    quota = inputs["max_24_hour_send"]
    lines = [
        f"{_many(view['recipients'], 'recipient')}: {view['description']}",
        f"  marketing rate {inputs['rate'] * inputs['marketing_share']:,.1f}/s "
        f"({inputs['marketing_share'] * 100:g} % of the {inputs['rate']:,.1f}/s postline uses)",
        f"  24-hour quota {'unlimited' if quota is None else f'{quota:,.0f}'}; "
        f"{inputs['sent_last_24_hours']:,.0f} sent in the last 24 hours",
    ]
    if inputs["warmup"]:
        lines.append(
            f"  warm-up: marketing capped for {_many(len(inputs['warmup']), 'more day')}, "
            f"{inputs['warmup'][0]:,} on the first"
        )
    lines.append(f"  what sets the pace: {view['binding']}")
    lines += [f"  {span['start']} to {span['end']}: {_many(span['emails'], 'email')}" for span in view["spans"]]
    return lines


def report_view(report) -> dict[str, Any]:
    return {
        "rows": report.rows,
        "valid": report.valid,
        "invalid": report.invalid,
        "duplicates": report.duplicates,
        "missing_data": report.missing_data,
        "problems": [{"line": line, "reason": reason} for line, reason in report.problems],
    }


def report_lines(view: dict[str, Any]) -> list[str]:
    lines = [
        f"audience: {view['rows']:,} rows: {view['valid']:,} valid, {view['invalid']:,} invalid "
        f"({view['missing_data']:,} of them missing template data), {_many(view['duplicates'], 'duplicate')}"
    ]
    return lines + [f"  line {problem['line']}: {problem['reason']}" for problem in view["problems"]]


# -- commands --------------------------------------------------------------------------------------------------------
def _fail(message: str, code: int = 1):
    from .main import fail

    fail(message, code)


def _emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


def _no_campaign(name: str) -> str:
    return f"there is no campaign named {name!r}: `postline campaigns list` shows them"


def _get(where: Target, name: str):
    from postline.campaigns import store

    campaign = store.get(_client("dynamodb"), _campaigns_table(where), name)
    if campaign is None:
        _fail(_no_campaign(name))
    return campaign


class CampaignRefused(Exception):
    """A move the campaign cannot make (there is none of that name, or its state does not allow it): the message
    says why, in a line."""


def move(where: Target, name: str, to: str):
    """Move the campaign and announce it; ``CampaignRefused``, naming the state it is in, when it cannot move."""
    from postline.campaigns import control, store

    try:
        campaign = store.move(_client("dynamodb"), _campaigns_table(where), name, to, now=now())
    except store.CampaignNotFound:
        raise CampaignRefused(_no_campaign(name)) from None
    except store.CampaignStateError as error:
        raise CampaignRefused(str(error)) from None
    control.announce(_client("events"), where.event_bus, campaign)
    return campaign


def _move(where: Target, name: str, to: str):
    try:
        return move(where, name, to)
    except CampaignRefused as error:
        _fail(str(error))


# Pause and resume, for the CLI and the dashboard (postline_cli.web.dashboard): each returns what it did, in a line.
def pause(where: Target, name: str) -> str:
    """Stop handing NAME's recipients on and hold its emails on the queues; ``CampaignRefused`` when it cannot."""
    campaign = move(where, name, "paused")
    return (
        f"campaign {name} paused at {campaign.position:,} of {campaign.audience_rows:,}: its queued emails "
        f"wait (`postline campaigns resume {name}` goes on)"
    )


def resume(where: Target, name: str) -> str:
    """Go on with a paused NAME: scheduled again before its start time, else running from where it stopped (an
    application's own campaign: its held emails go on); ``CampaignRefused`` when it is not paused."""
    from postline.campaigns import control, store

    campaign = store.get(_client("dynamodb"), _campaigns_table(where), name)
    if campaign is None:
        raise CampaignRefused(_no_campaign(name))
    if campaign.state != "paused":
        raise CampaignRefused(f"campaign {name!r} is {campaign.state}, not paused: there is nothing to resume")
    if campaign.external:  # sent by an application, held after an alert: its held emails go on
        move(where, name, "running")
        return f"campaign {name} resumed: its held emails go on"
    if now() < campaign.start_at:  # its start schedule is still to fire
        campaign = move(where, name, "scheduled")
        return f"campaign {name} resumed: starts {iso(campaign.start_at)}"
    campaign = move(where, name, "running")
    control.start_now(_client("sqs"), _control_queue_url(where), campaign)  # a run from its checkpoint
    return f"campaign {name} resumed: running from {campaign.position:,} of {campaign.audience_rows:,}"


def _plan_or_fail(where: Target, recipients: int, start_at: float, window, at: float, zone: str) -> dict[str, Any]:
    try:
        result, inputs = plan_for(where, recipients, start_at, window, at)
    except NoPlan as error:
        _fail(str(error))
    return plan_view(result, inputs, recipients, zone, at)


@click.group("campaigns")
def campaigns() -> None:
    """Newsletters: a marketing template sent to an audience file, at a time, within a daily window
    (docs/campaigns.md)."""


def _progress(quiet: bool):
    """A progress bar on stderr when someone watches it (not with --json, nor into a file or a pipe)."""
    from rich.progress import Progress

    from .main import errors

    return Progress(console=errors, transient=True, disable=quiet or not errors.is_terminal)


def _normalise(audience: Path, template, base_data: dict[str, Any], out, quiet: bool):
    """The audience checked and written to ``out`` in the normalised form, with a progress bar."""
    from postline.campaigns.audience import AudienceError, kind_of, normalise

    try:
        kind = kind_of(audience)
        with audience.open("rb") as source, _progress(quiet) as bar:
            task = bar.add_task("checking the audience", total=audience.stat().st_size)
            return normalise(
                source,
                kind=kind,
                required=template.required,
                base_data=base_data,
                out=out,
                progress=lambda done: bar.update(task, completed=done),
            )
    except AudienceError as error:
        raise CampaignInputError(f"--audience {audience.name}: {error}") from None


def _upload(normalised, size: int, bucket: str, key: str, quiet: bool) -> None:
    normalised.seek(0)
    with _progress(quiet) as bar:
        task = bar.add_task("uploading", total=size)
        _client("s3").upload_fileobj(
            normalised,
            bucket,
            key,
            ExtraArgs={"ContentType": "application/x-ndjson"},
            Callback=lambda sent: bar.advance(task, sent),
        )


@campaigns.command("create")
@click.argument("name")
@click.option("--template", "template_ref", required=True, help="A marketing template: NAME, or NAME@VERSION.")
@click.option(
    "--audience",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV (a header row with an email column; other columns are data) or JSONL (email and data).",
)
@click.option("--data", help="JSON object of data for every recipient (a recipient's own keys win).")
@click.option("--at", "at_text", metavar="TIME", help="When to start: ISO 8601 with an offset, or now (the default).")
@click.option("--window", metavar="HH:MM-HH:MM", help="Send only inside this daily window (02:00-06:00).")
@click.option("--timezone", "zone", default="UTC", show_default=True, help="The window's time zone (IANA name).")
@click.option("--dry-run", is_flag=True, help="Check the audience and report; create nothing.")
@click.option("--plan", "with_plan", is_flag=True, help="Also say when it will finish.")
@click.option("--json", "as_json", is_flag=True)
def campaigns_create(name, template_ref, audience, data, at_text, window, zone, dry_run, with_plan, as_json) -> None:
    """Create campaign NAME: check and upload the audience, then start it now or schedule it --at a time."""
    from postline.campaigns import control, store

    where = target()
    created_at = now()
    try:
        name = parse_name(name)
        start_at = parse_start(at_text, created_at)
        window = parse_window(window, parse_zone(zone))
        base_data = parse_data(data)
        template = marketing_template(template_ref)
    except CampaignInputError as error:
        _fail(str(error), 2)
    dynamodb, table = _client("dynamodb"), _campaigns_table(where)
    # Checked before the upload, which would replace the existing campaign's audience.
    if not dry_run and store.get(dynamodb, table, name) is not None:
        _fail(f"a campaign named {name!r} exists already: choose another name")

    key = f"campaigns/{name}/audience.jsonl"
    with tempfile.TemporaryFile() as normalised:
        try:
            report = _normalise(audience, template, base_data, normalised, as_json)
        except CampaignInputError as error:
            _fail(str(error), 2)
        view = {"campaign": name, "template": template_ref, "audience": report_view(report), "dry_run": dry_run}
        if not as_json:
            _echo(report_lines(view["audience"]))
        elif report.valid == 0:
            _emit(view)  # the rows' problems, for the script
        if report.valid == 0:
            _fail(f"{audience.name} has no valid recipient: nothing to send", 2)
        if with_plan:
            view["plan"] = _plan_or_fail(where, report.valid, start_at, window, created_at, zone)
            if not as_json:
                click.echo(f"plan: {view['plan']['description']}")
        if dry_run:
            if as_json:
                _emit(view)
            else:
                click.echo("dry run: nothing was created")
            return
        _upload(normalised, report.bytes_written, where.claim_check_bucket, key, as_json)

    campaign = store.Campaign(
        campaign_id=name,
        template=template_ref,
        audience_key=key,
        start_at=start_at,
        state=store.SCHEDULED,
        data=base_data,
        audience_bytes=report.bytes_written,
        audience_rows=report.valid,
        window=window,
        state_at=created_at,
        history=[{"state": store.SCHEDULED, "at": created_at}],
        counts={**dict.fromkeys(store.COUNTS, 0), "invalid": report.invalid, "duplicate": report.duplicates},
        created_at=created_at,
        updated_at=created_at,
    )
    try:
        store.create(dynamodb, table, campaign)
    except store.CampaignExists as error:
        _fail(f"{error}: choose another name")
    control.announce(_client("events"), where.event_bus, campaign)
    if start_at == created_at:
        control.start_now(_client("sqs"), _control_queue_url(where), campaign)
        starts = "starting now"
    else:
        control.schedule_start(
            _client("scheduler"),
            group=where.schedule_group,
            role_arn=where.scheduler_role_arn,
            queue_url=_control_queue_url(where),
            campaign=campaign,
            at=start_at,
            dead_letter_arn=where.schedule_dlq_arn or None,
        )
        starts = f"starts {iso(start_at)}"
    view |= {"state": campaign.state, "start_at": iso(start_at), "audience_key": key}
    if as_json:
        _emit(view)
    else:
        click.echo(
            f"campaign {name}: {_many(report.valid, 'recipient')}, {starts}"
            + (f", sending {_window_text(window.as_dict())}" if window else "")
        )


@campaigns.command("list")
@click.option("--json", "as_json", is_flag=True)
def campaigns_list(as_json: bool) -> None:
    """Every campaign, oldest first: state, start, window, progress."""
    from rich.table import Table

    from postline.campaigns import store

    from .main import console

    where = target()
    views = [campaign_view(c) for c in store.list_all(_client("dynamodb"), _campaigns_table(where))]
    if as_json:
        _emit(views)
        return
    if not views:
        click.echo("no campaigns yet: `postline campaigns create` makes one")
        return
    table = Table("campaign", "state", "since", "starts", "window", "handed on")
    for view in views:
        progress = view["progress"]
        table.add_row(
            view["campaign"],
            view["state"],
            view["state_since"],
            view["start_at"],
            _window_text(view["window"]),
            f"{progress['position']:,} of {progress['rows']:,}",
        )
    console.print(table)


@campaigns.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def campaigns_show(name: str, as_json: bool) -> None:
    """NAME's state, schedule, window, progress, counts, history and, until it ends, when it will finish."""
    where = target()
    campaign = _get(where, name)
    view = campaign_view(campaign)
    if campaign.state == "cancelled":
        view["never_sent"] = _left(campaign) + campaign.counts.get("cancelled", 0)
    elif campaign.state != "done":
        view["plan"] = _plan_or_fail(
            where, _left(campaign), campaign.start_at, campaign.window, now(), _zone_of(campaign)
        )
    if as_json:
        _emit(view)
    else:
        _echo([f"campaign {campaign.campaign_id}", *show_lines(view)])


@campaigns.command("plan")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def campaigns_plan(name: str, as_json: bool) -> None:
    """When NAME will have sent what it has left: from the rate, its reserve for other mail, the 24-hour quota,
    the window and any warm-up (a paused campaign: if resumed now)."""
    where = target()
    campaign = _get(where, name)
    if campaign.state in ("done", "cancelled"):
        _fail(f"campaign {name!r} is {campaign.state}: it has nothing left to send")
    view = {
        "campaign": name,
        "state": campaign.state,
        **_plan_or_fail(where, _left(campaign), campaign.start_at, campaign.window, now(), _zone_of(campaign)),
    }
    if as_json:
        _emit(view)
    else:
        _echo(plan_lines(view))


@campaigns.command("pause")
@click.argument("name")
def campaigns_pause(name: str) -> None:
    """Stop handing NAME's recipients on and hold its emails on the queues (within about a minute)."""
    try:
        click.echo(pause(target(), name))
    except CampaignRefused as error:
        _fail(str(error))


@campaigns.command("resume")
@click.argument("name")
def campaigns_resume(name: str) -> None:
    """Go on with a paused NAME: scheduled again before its start time, else running from where it stopped."""
    try:
        click.echo(resume(target(), name))
    except CampaignRefused as error:
        _fail(str(error))


@campaigns.command("cancel")
@click.argument("name")
def campaigns_cancel(name: str) -> None:
    """Send nothing more of NAME; says how many recipients were never handed on."""
    campaign = _move(target(), name, "cancelled")
    click.echo(
        f"campaign {name} cancelled: {_left(campaign):,} of {campaign.audience_rows:,} recipients were never "
        "handed on; its emails still on the queues are dropped (`postline campaigns show` counts them)"
    )
