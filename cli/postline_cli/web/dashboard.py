"""``postline dashboard``: a live page over the stack the CLI points at (docs/dashboard.md).

``/`` shows the streams (today and the last N days), the campaigns with their rates, state and a pause or resume
button, every queue's backlog beside its dead-letter queue's depth, and the recent alerts, campaign moves and
hours. ``/campaigns/NAME`` shows one campaign with the report's charts (``postline_cli.analytics.charts``), each
served as its own SVG document so that the page's policy need not allow inline styles. ``/api/summary.json`` and
``/api/campaigns/NAME.json`` are the data the pages are drawn from. With the local stack, the outbox viewer is
mounted at ``/outbox``.

Live: ``static/dashboard.js`` fetches the page again every few seconds and puts the new ``<main>`` in place of the
old one when anything in it changed, so a new campaign, a state moved by an alert or a queue filling all show
without a reload, and the figures are only ever drawn here, by the server. Every figure on a page carries
``data-figure``, its path in the page's JSON, for tests and scripts that check one against the other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import campaigns
from ..analytics.tables import number, percent
from ..views import iso
from .server import DEFAULT_PORT, Request, Response, Route, csrf_input, escape, page, redirect, url_part

if TYPE_CHECKING:
    from .dashboard_data import Sources

# What it reads (dashboard_data), the charts (pygal) and the outbox viewer are imported when first used: this
# module is imported with the CLI, and every command should start fast.

STYLESHEETS = ("/static/dashboard.css",)
SCRIPTS = ("/static/dashboard.js",)
STREAM_COUNTS = (
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("hard_bounced", "bounced"),
    ("complained", "complained"),
    ("opened_unique", "opened"),
    ("clicked_unique", "clicked"),
    ("unsubscribed", "unsub."),
)
TODAY_COUNTS = (("sent", "sent"), ("delivered", "delivered"))
RATES = (("bounce", "bounce"), ("complaint", "complaint"), ("human_open", "open"), ("click_through", "click"))
HOUR_COUNTS = (("sent", "sent"), ("delivered", "deliv."), ("hard_bounced", "bounced"))
CAMPAIGN_COUNTS = (
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("hard_bounced", "bounced (hard)"),
    ("soft_bounced", "bounced (soft)"),
    ("complained", "complained"),
    ("opened_unique", "opened (people)"),
    ("machine_opened_unique", "opened by machines"),
    ("clicked_unique", "clicked (people)"),
    ("unsubscribed", "unsubscribed"),
    ("suppressed", "suppressed"),
    ("failed", "failed"),
)
CAMPAIGN_RATES = (("delivery", "delivery"), *RATES, ("click_to_open", "click-to-open"), ("unsubscribe", "unsubscribe"))
# (the chart, what its picture says, whether the campaign's figures have something for it to draw)
CHARTS = (
    ("timeline", "Sent, delivered, opened and clicked over time", lambda view: True),
    ("funnel", "Sent, delivered, opened, clicked", lambda view: True),
    ("opens", "Opens by people and by machines", lambda view: True),
    ("links", "People who clicked each link", lambda view: bool(view["links"])),
    ("reasons", "Bounces and complaints by reason", lambda view: any(view["reasons"].values())),
)
# A chart is a document of its own: its style sheet is inline (pygal's), it runs and loads nothing.
CHART_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def _page(title: str, body: str) -> Response:
    """A live dashboard page (``dashboard.js`` refreshes it)."""
    return page(title, body, stylesheets=STYLESHEETS, scripts=SCRIPTS)


def _when(moment: str | None) -> str:
    """``2027-01-15 08:00 UTC`` from an ISO 8601 UTC time; empty for None."""
    return f"{moment[:16].replace('T', ' ')} UTC" if moment else ""


def _cell(path: str, text: str) -> str:
    """A figure: ``path`` is where it is in the page's JSON (``streams.marketing.totals.sent``)."""
    return f'<td class="number" data-figure="{escape(path)}">{escape(text)}</td>'


def _json(value: Any) -> Response:
    return Response(json.dumps(value, indent=1), content_type="application/json; charset=utf-8")


def _header(title: str, subtitle: str, at: str, links: list[tuple[str, str]]) -> str:
    nav = " · ".join(f'<a href="{escape(href)}">{escape(text)}</a>' for href, text in links)
    return (
        f'<header><nav class="muted">{nav}</nav><h1>{escape(title)}</h1>'
        f'<p class="muted">{escape(subtitle)} · <span id="updated" class="live">figures of {escape(_when(at))}'
        f"</span></p></header>"
    )


# -- the buttons -----------------------------------------------------------------------------------------------------
def _buttons(request: Request, name: str, can_pause: bool, can_resume: bool, back: str) -> str:
    """Pause or resume forms (posting the server's token), coming back to ``back`` when done."""
    forms = []
    for action, allowed, label in (("pause", can_pause, "Pause"), ("resume", can_resume, "Resume")):
        if allowed:
            forms.append(
                f'<form method="post" action="/campaigns/{url_part(name)}/{action}" class="inline">'
                f'{csrf_input(request)}<input type="hidden" name="back" value="{escape(back)}">'
                f'<button class="{action}" type="submit">{label}</button></form>'
            )
    return "".join(forms)


# -- the dashboard ---------------------------------------------------------------------------------------------------
def _streams_section(summary: dict[str, Any]) -> str:
    views, days = summary["streams"], summary["days"]
    first = next(iter(views.values()))
    head = (
        '<tr><th rowspan="2">stream</th>'
        f'<th colspan="{len(TODAY_COUNTS)}" class="group">today</th>'
        f'<th colspan="{len(STREAM_COUNTS)}" class="group">last {days} days</th>'
        f'<th colspan="{len(RATES)}" class="group">rates, last {days} days</th></tr><tr>'
        + "".join(f'<th class="number">{label}</th>' for _, label in (*TODAY_COUNTS, *STREAM_COUNTS, *RATES))
        + "</tr>"
    )
    rows = []
    for stream, view in views.items():
        cells = [_cell(f"today.{stream}.{name}", number(summary["today"][stream][name])) for name, _ in TODAY_COUNTS]
        cells += [_cell(f"streams.{stream}.totals.{name}", number(view["totals"][name])) for name, _ in STREAM_COUNTS]
        cells += [_cell(f"streams.{stream}.rates.{name}", percent(view["rates"][name])) for name, _ in RATES]
        rows.append(f'<tr data-stream="{escape(stream)}"><th>{escape(stream)}</th>{"".join(cells)}</tr>')
    return (
        '<section id="streams"><h2>Streams</h2>'
        f'<p class="muted">Counted {escape(first["since"].replace("T", " "))}:00 to '
        f"{escape(first['until'].replace('T', ' '))}:59 UTC (<code>postline stats --days {days}</code>). "
        "Bounce and complaint rates are per email sent; open and click rates per email delivered, people's "
        "only.</p>"
        f'<table class="figures"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></section>'
    )


def _state(row: dict[str, Any]) -> str:
    if row["state"] is None:
        return '<span class="muted">no record</span>'
    return (
        f'<span class="state state-{escape(row["state"])}">{escape(row["state"])}</span>'
        f'<br><span class="muted small">since {escape(_when(row["state_since"]))}</span>'
    )


def _campaigns_section(request: Request, summary: dict[str, Any]) -> str:
    rows = []
    for index, row in enumerate(summary["campaigns"]):
        path = f"campaigns.{index}"
        progress = row["progress"]
        handed_on = f"{number(progress['position'])} of {number(progress['rows'])}" if progress else ""
        firing = [alert["metric"] for alert in row["alerts"] if alert["state"] == "firing"]
        rows.append(
            f'<tr data-campaign="{escape(row["name"])}"{" class=alarm" if firing else ""}>'
            f'<td><a href="/campaigns/{url_part(row["name"])}">{escape(row["name"])}</a></td>'
            f"<td>{_state(row)}</td>"
            f'<td class="number">{escape(handed_on)}</td>'
            + "".join(_cell(f"{path}.totals.{name}", number(row["totals"][name])) for name in ("sent", "delivered"))
            + "".join(_cell(f"{path}.rates.{name}", percent(row["rates"][name])) for name, _ in RATES)
            + f"<td>{escape(', '.join(f'{metric} alert' for metric in firing))}</td>"
            f'<td class="actions">{_buttons(request, row["name"], row["can_pause"], row["can_resume"], "/")}</td>'
            "</tr>"
        )
    if not rows:
        return (
            '<section id="campaigns"><h2>Campaigns</h2><p class="muted">No campaign yet: <code>postline '
            "campaigns create</code> makes one; emails an application sends with a <code>campaign</code> "
            "show here once counted.</p></section>"
        )
    more = (
        f'<p class="muted">And {summary["more_campaigns"]} less recently active: <code>postline stats '
        "--campaigns</code> lists them all.</p>"
        if summary["more_campaigns"]
        else ""
    )
    head = (
        "<tr><th>campaign</th><th>state</th><th class=number>handed on</th><th class=number>sent</th>"
        "<th class=number>delivered</th>"
        + "".join(f'<th class="number">{label}</th>' for _, label in RATES)
        + "<th>alerts</th><th></th></tr>"
    )
    return (
        '<section id="campaigns"><h2>Campaigns</h2>'
        f'<p class="muted">The most recently active first; figures of the last {summary["campaign_days"]} days '
        "(<code>postline stats --campaigns</code>). Pausing stops the campaign's fan-out and holds its queued "
        "emails within about a minute; resuming goes on from where it stopped, without sending anyone a second "
        "email.</p>"
        f'<table class="figures"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>{more}</section>'
    )


def _queues_section(summary: dict[str, Any]) -> str:
    queues = summary["queues"]
    index = {queue["queue"]: position for position, queue in enumerate(queues)}
    rows = []
    for position, queue in enumerate(queues):
        if queue["dead_letter"]:
            continue
        path = f"queues.{position}"
        cells = "".join(_cell(f"{path}.{name}", number(queue[name])) for name in ("messages", "in_flight", "delayed"))
        dead = index.get(queue["queue"] + "-dlq")
        if dead is None:
            dlq, alarm = '<td class="number muted">-</td>', False
        else:
            depth = queues[dead]["messages"] + queues[dead]["in_flight"] + queues[dead]["delayed"]
            dlq, alarm = _cell(f"queues.{dead}.messages", number(queues[dead]["messages"])), depth > 0
        rows.append(
            f'<tr data-queue="{escape(queue["queue"])}"{" class=alarm" if alarm else ""}>'
            f"<td>{escape(queue['queue'])}</td>{cells}{dlq}</tr>"
        )
    return (
        '<section id="queues"><h2>Queues</h2>'
        '<p class="muted">Messages waiting, in flight (being handled) and delayed on each queue, and waiting on '
        "its dead-letter queue: a message there failed five times and waits for a person (highlighted).</p>"
        '<table class="figures"><thead><tr><th>queue</th><th class="number">waiting</th>'
        '<th class="number">in flight</th><th class="number">delayed</th><th class="number">dead letters</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _recent_section(summary: dict[str, Any]) -> str:
    alerts = "".join(
        f"<tr{' class=alarm' if alert['state'] == 'firing' else ''}><td>{escape(_when(alert['changed_at']))}</td>"
        f"<td>{escape(alert['kind'])} {escape(alert['name'])}</td><td>{escape(alert['metric'])} rate</td>"
        f"<td>{escape(alert['state'])}</td></tr>"
        for alert in summary["alerts"]
    )
    alerts_table = (
        f"<table><thead><tr><th>changed</th><th>of</th><th>alert</th><th>state</th></tr></thead>"
        f"<tbody>{alerts}</tbody></table>"
        if alerts
        else '<p class="muted">No bounce or complaint alert has fired.</p>'
    )
    moves = "".join(
        f'<tr><td>{escape(_when(move["at"]))}</td><td><a href="/campaigns/{url_part(move["campaign"])}">'
        f"{escape(move['campaign'])}</a></td><td>{escape(move['state'])}</td></tr>"
        for move in summary["moves"]
    )
    moves_table = (
        f"<table><thead><tr><th>at</th><th>campaign</th><th>became</th></tr></thead><tbody>{moves}</tbody></table>"
        if moves
        else '<p class="muted">No campaign has moved.</p>'
    )
    streams = list(summary["streams"])
    hours_head = (
        '<tr><th rowspan="2">hour (UTC)</th>'
        + "".join(f'<th colspan="{len(HOUR_COUNTS)}" class="group">{escape(s)}</th>' for s in streams)
        + "</tr><tr>"
        + "".join(f'<th class="number">{label}</th>' for _ in streams for _, label in HOUR_COUNTS)
        + "</tr>"
    )
    hours = "".join(
        f'<tr><td class="nowrap">{escape(slot["hour"].replace("T", " "))}:00</td>'
        + "".join(
            f'<td class="number">{number(slot["streams"][s][name])}</td>' for s in streams for name, _ in HOUR_COUNTS
        )
        + "</tr>"
        for slot in summary["recent_hours"]
    )
    return (
        '<section id="recent"><h2>Recent events</h2><div class="pair">'
        f"<div><h3>Alerts</h3>{alerts_table}</div><div><h3>Campaign moves</h3>{moves_table}</div></div>"
        f'<h3>The last hours</h3><table class="figures"><thead>{hours_head}</thead><tbody>{hours}</tbody></table>'
        "</section>"
    )


def dashboard_page(request: Request, summary: dict[str, Any], where: str) -> Response:
    links = [("Outbox", "/outbox")] if summary["local"] else []
    links.append(("JSON", "/api/summary.json"))
    body = (
        _header("postline dashboard", where, summary["at"], [(href, text) for text, href in links])
        + f"<main>{_streams_section(summary)}{_campaigns_section(request, summary)}{_queues_section(summary)}"
        f"{_recent_section(summary)}</main>"
    )
    return _page("Dashboard", body)


# -- one campaign ----------------------------------------------------------------------------------------------------
def campaign_data(sources: Sources, name: str) -> dict[str, Any] | None:
    """``/api/campaigns/NAME.json``: its counts (``postline stats --campaign NAME --json``), its record as
    ``postline campaigns show --json`` has it (None without one) and its alerts; None when it has neither a
    record nor a count."""
    from postline.campaigns import store

    from . import dashboard_data as data

    at = sources.clock()
    record = store.get(sources.dynamodb, sources.campaigns_table, name)
    stats = data.campaign_stats(sources, name, at)
    if record is None and not any(stats["totals"].values()):
        return None
    return {
        "at": iso(at),
        "stats": stats,
        "campaign": campaigns.campaign_view(record) if record else None,
        "can_pause": data.can_pause(record.state if record else None),
        "can_resume": record is not None and record.state == store.PAUSED,
        "alerts": data.alerts(sources, "campaign", name),
    }


def campaign_page(request: Request, found: dict[str, Any], where: str) -> Response:
    stats, record = found["stats"], found["campaign"]
    name = stats["name"]
    link = f"/campaigns/{url_part(name)}"
    if record is None:
        about = "An application's own campaign: its emails carry its name; it has no record until it is paused."
    else:
        progress = record["progress"]
        about = f"{record['state']} since {_when(record['state_since'])} · template {record['template']} · " + (
            f"handed on {number(progress['position'])} of {number(progress['rows'])}"
            if record["audience"]["key"]
            else "sent by an application, held while paused"
        )
    figures = "".join(
        f"<tr><th>{escape(label)}</th>{_cell(f'stats.totals.{name}', number(stats['totals'][name]))}</tr>"
        for name, label in CAMPAIGN_COUNTS
    )
    rates = "".join(
        f"<tr><th>{escape(label)} rate</th>{_cell(f'stats.rates.{rate}', percent(stats['rates'][rate]))}</tr>"
        for rate, label in CAMPAIGN_RATES
    )
    charts = "".join(
        f'<figure class="{chart}"><img class="chart" src="{link}/charts/{chart}.svg" '
        f'alt="{escape(title)}"><figcaption>{escape(title)}</figcaption></figure>'
        for chart, title, drawn in CHARTS
        if drawn(stats)
    )
    alerts = "".join(
        f"<li{' class=alarm' if alert['state'] == 'firing' else ''}>{escape(alert['metric'])} rate "
        f"alert {escape(alert['state'])} since {escape(_when(alert['changed_at']))}</li>"
        for alert in found["alerts"]
    )
    history = (
        "".join(
            f"<li>{escape(_when(entry['at']))}: {escape(entry['state'])}</li>" for entry in reversed(record["history"])
        )
        if record
        else ""
    )
    body = (
        _header(f"Campaign {name}", where, found["at"], [("/", "← Dashboard"), (f"/api{link}.json", "JSON")])
        + f'<main><p class="about">{escape(about)}</p>'
        f"<p>{_buttons(request, name, found['can_pause'], found['can_resume'], link)}</p>"
        f'<div class="pair"><table class="figures compact"><tbody>{figures}</tbody></table>'
        f'<table class="figures compact"><tbody>{rates}</tbody></table></div>'
        f'<p class="muted">Counted {escape(stats["since"].replace("T", " "))}:00 to '
        f"{escape(stats['until'].replace('T', ' '))}:59 UTC, as <code>postline stats --campaign "
        f"{escape(name)}</code> counts; <code>postline report</code> makes a file of this page to keep.</p>"
        f'<section id="charts"><h2>Charts</h2><div class="charts">{charts}</div></section>'
        f'<section id="alerts"><h2>Alerts</h2>{f"<ul>{alerts}</ul>" if alerts else "<p class=muted>None.</p>"}'
        "</section>"
        + (f'<section id="history"><h2>History</h2><ul>{history}</ul></section>' if record else "")
        + "</main>"
    )
    return _page(f"Campaign {name}", body)


def chart_svg(stats: dict[str, Any], chart: str) -> str | None:
    """One of the report's charts of the campaign's ``Stats.as_dict()``; None for a chart there is not."""
    from ..analytics import charts

    draw = {
        "timeline": lambda: charts.timeline_svg(stats),
        "funnel": lambda: charts.funnel_svg(stats["totals"]),
        "opens": lambda: charts.opens_svg(stats["totals"]),
        "links": lambda: charts.links_svg(stats["links"]),
        "reasons": lambda: charts.reasons_svg(stats["reasons"]),
    }.get(chart)
    return draw() if draw else None


# -- routes ----------------------------------------------------------------------------------------------------------
def _not_found(what: str) -> Response:
    return page(
        "Not found",
        f'<header><nav><a href="/">← Dashboard</a></nav><h1>Not found</h1><p>{escape(what)}</p></header>',
        status=404,
    )


def dashboard_routes(
    sources: Sources, days: int, *, where: str = "", outbox: Path | None = None, send_log: Path | None = None
) -> list[Route]:
    """The dashboard's pages for ``sources`` (``dashboard_data.Sources``), the streams over ``days``; ``where``
    names the stack in the pages' header. With ``outbox``, the outbox viewer too."""
    from . import dashboard_data as data

    def summary_json(request: Request) -> Response:
        return _json(data.summary(sources, days))

    def index(request: Request) -> Response:
        return dashboard_page(request, data.summary(sources, days), where)

    def one_campaign(request: Request) -> Response:
        found = campaign_data(sources, request.params["name"])
        return (
            campaign_page(request, found, where)
            if found
            else _not_found(f"No campaign {request.params['name']}: it has no record and nothing was counted for it.")
        )

    def campaign_json(request: Request) -> Response:
        name = request.params["file"].removesuffix(".json")
        found = campaign_data(sources, name) if request.params["file"].endswith(".json") else None
        return _json(found) if found else Response('{"error": "no such campaign"}\n', 404, "application/json")

    def chart(request: Request) -> Response:
        stats = data.campaign_stats(sources, request.params["name"], sources.clock())
        svg = chart_svg(stats, request.params["file"].removesuffix(".svg"))
        if svg is None or not request.params["file"].endswith(".svg"):
            return _not_found(f"No chart {request.params['file']}.")
        return Response(
            svg, content_type="image/svg+xml; charset=utf-8", headers={"Content-Security-Policy": CHART_POLICY}
        )

    def move(action: str):
        def handler(request: Request) -> Response:
            name = request.params["name"]
            back = request.form.get("back", "/")
            if back not in ("/", f"/campaigns/{url_part(name)}"):
                back = "/"
            try:
                getattr(campaigns, action)(sources.where, name)
            except campaigns.CampaignRefused as error:
                return page(
                    "Not done",
                    f'<header><nav><a href="{escape(back)}">← Back</a></nav>'
                    f"<h1>Not done</h1><p>{escape(error)}</p></header>",
                    status=409,
                )
            return redirect(back)

        return handler

    routes = [
        Route("GET", "/", index),
        Route("GET", "/api/summary.json", summary_json),
        Route("GET", "/api/campaigns/{file}", campaign_json),
        Route("GET", "/campaigns/{name}", one_campaign),
        Route("GET", "/campaigns/{name}/charts/{file}", chart),
        Route("POST", "/campaigns/{name}/pause", move("pause")),
        Route("POST", "/campaigns/{name}/resume", move("resume")),
    ]
    if outbox is not None:
        from .outbox import outbox_routes

        routes += outbox_routes(outbox, send_log)
    return routes


def describe(sources: Sources) -> str:
    """Which stack the dashboard shows, for its header and the command's first line."""
    if sources.local:
        return f"the local stack at {sources.where.endpoint}"
    if sources.where.endpoint:
        return f"the AWS endpoint {sources.where.endpoint}"
    return f"the AWS stack {os.environ.get('POSTLINE_STACK', 'postline')} in {sources.dynamodb.meta.region_name}"


# -- the command -----------------------------------------------------------------------------------------------------
@click.command("dashboard")
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="Port on 127.0.0.1 (0: any free port).")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    metavar="N",
    help="The streams' figures over the last N days (UTC, today's so far included); by default those of "
    "`postline stats`, the last 7.",
)
def dashboard(port: int, days: int | None) -> None:
    """Serve a live dashboard of the stack the CLI points at (the local one, or AWS) on http://127.0.0.1:PORT/
    until Ctrl-C: streams, campaigns with pause and resume, queues, alerts. It opens no browser itself."""
    from ..analytics.reading import STREAM_DAYS
    from ..local.stack import LocalPaths
    from ..main import fail
    from .dashboard_data import Sources, summary
    from .server import make_server, serve

    days = days or STREAM_DAYS
    sources = Sources.of_cli()
    summary(sources, days)  # read once before serving: a stack that cannot be read fails here, in one line
    where = describe(sources)
    paths = LocalPaths.default() if sources.local else None
    routes = dashboard_routes(
        sources, days, where=where, outbox=paths.outbox if paths else None, send_log=paths.send_log if paths else None
    )
    try:
        server = make_server(routes, port)
    except OSError as error:
        fail(
            f"cannot listen on 127.0.0.1:{port} ({error.strerror}): is another dashboard or the outbox viewer "
            "running? --port picks another port"
        )
    click.echo(f"dashboard: {server.url}/  ({where}; Ctrl-C stops it)")
    serve(server)
