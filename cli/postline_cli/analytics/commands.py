"""``postline stats`` and ``postline report`` (docs/analytics.md): the counters read as a table, as JSON, or as a
self-contained HTML report with charts."""

from __future__ import annotations

import json
from pathlib import Path

import click

DAYS_HELP = (
    "The last N days (UTC, today's so far included). Default: 7 for the streams, 30 for a campaign, a "
    "template and the lists."
)


def _emit(value) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


def _one_of(**given) -> str | None:
    """The one option given among ``given`` (None when none is); a usage error when several are."""
    named = [f"--{name.replace('_', '-')}" for name, value in given.items() if value]
    if len(named) > 1:
        raise click.UsageError(f"give one of {', '.join(named)}, not several")
    return next((name for name, value in given.items() if value), None)


@click.command("stats")
@click.option("--campaign", metavar="NAME", help="One campaign: totals, rates, days, links, bounce reasons.")
@click.option("--template", metavar="NAME", help="One template, the same way.")
@click.option("--campaigns", "list_campaigns", is_flag=True, help="List the campaigns that have counts.")
@click.option("--templates", "list_templates", is_flag=True, help="List the templates that have counts.")
@click.option("--days", type=click.IntRange(min=1), metavar="N", help=DAYS_HELP)
@click.option("--json", "as_json", is_flag=True, help="The data instead of the table (docs/analytics.md).")
def stats(campaign, template, list_campaigns, list_templates, days, as_json) -> None:
    """What was sent and what came of it: per stream (the default), for one --campaign or --template, or the
    list of --campaigns or --templates with counts."""
    from . import reading, tables

    chosen = _one_of(campaign=campaign, template=template, campaigns=list_campaigns, templates=list_templates)
    days = days or (reading.STREAM_DAYS if chosen is None else reading.SCOPE_DAYS)
    if chosen in ("campaign", "template"):
        name = campaign or template
        view = reading.scope(chosen, name, days)
        if as_json:
            _emit(view)
        else:
            _echo(tables.scope_lines(view, days, reading.campaign_state(name) if chosen == "campaign" else None))
    elif chosen in ("campaigns", "templates"):
        kind = chosen[:-1]
        rows = reading.listing(kind, days)
        if as_json:
            _emit(rows)
        else:
            _echo(tables.listing_lines(kind, rows))
    else:
        views = reading.streams(days)
        if as_json:
            _emit(views)
        else:
            _echo(tables.streams_lines(views, days))


@click.command("report")
@click.option("--campaign", metavar="NAME", help="The campaign to report on.")
@click.option("--template", metavar="NAME", help="Or the template.")
@click.option(
    "--html",
    "html_file",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the report to this file (- for standard output).",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    metavar="N",
    help="The last N days (UTC, today's so far included). Default: 30.",
)
def report(campaign, template, html_file, days) -> None:
    """One self-contained HTML page with a campaign's (or template's) figures and charts: it opens offline, in any
    browser, and prints."""
    from ..views import iso
    from . import reading
    from .report import report_html

    kind = _one_of(campaign=campaign, template=template)
    if kind is None:
        raise click.UsageError("say what to report on: --campaign NAME or --template NAME")
    name, days = campaign or template, days or reading.SCOPE_DAYS
    view = reading.scope(kind, name, days)
    page = report_html(
        view,
        state=reading.campaign_state(name) if kind == "campaign" else None,
        generated=iso(reading.now()),
        days=days,
    )
    if str(html_file) == "-":
        click.echo(page, nl=False)
        return
    html_file.write_text(page, encoding="utf-8")
    totals = view["totals"]
    click.echo(
        f"wrote {html_file}: {kind} {name}, {totals['sent']:,} sent, {totals['delivered']:,} delivered"
        if any(totals.values())
        else f"wrote {html_file}: nothing was counted for {kind} {name} in this period"
    )
