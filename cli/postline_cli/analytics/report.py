"""``postline report``: one campaign's or template's counts as one self-contained HTML file.

Everything is in the file: the styles inline, the charts as inline SVG drawn here (``charts.py``), no script to
run, no font or file from anywhere else (its own policy forbids fetching any), so it opens offline, can be mailed
around, and prints. The figures are those ``postline stats --campaign NAME --json`` prints, and the page carries
that very JSON in ``<script type="application/json" id="stats">`` for whoever wants the numbers back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from . import charts
from .tables import DAY_COLUMNS, MORE_COUNTS, RATES, RATES_NOTE, REASON_KINDS, counted, counted_text, number, percent

# Where SES reviews an account (and postline's alerts start by default): a rate at or past it is marked.
SES_REVIEW = {"bounce": 0.05, "complaint": 0.001}
# Nothing from elsewhere: no script, no font, no image but inline data, nowhere to send a form.
POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'"
# The headline cards: (counter, label, rate under it or None).
HEADLINE = (
    ("sent", "sent", None),
    ("delivered", "delivered", "delivery"),
    ("hard_bounced", "bounced", "bounce"),
    ("complained", "complained", "complaint"),
    ("opened_unique", "opened", "human_open"),
    ("clicked_unique", "clicked", "click_through"),
    ("unsubscribed", "unsubscribed", "unsubscribe"),
)
# The other counts, in a line under the cards.
OTHER_COUNTS = (("suppressed", "suppressed"), ("failed", "failed"), *MORE_COUNTS)
STYLE = """
:root { color-scheme: light; --ink: #1f2937; --soft: #6b7280; --line: #e5e7eb; --warn: #b91c1c; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 24px; color: var(--ink); background: #fff;
       font: 15px/1.45 system-ui, "Segoe UI", Roboto, "Helvetica Neue", "Liberation Sans", Arial, sans-serif; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; }
header p, .note, figcaption { color: var(--soft); margin: 2px 0; font-size: 13px; }
.nothing { border: 1px solid var(--line); border-left: 4px solid var(--soft); padding: 10px 14px; margin: 20px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; margin: 20px 0 6px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .label { color: var(--soft); font-size: 13px; }
.card .figure { display: block; font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .rate { font-size: 13px; font-variant-numeric: tabular-nums; }
.warn, .card.warn .rate { color: var(--warn); font-weight: 600; }
.card.warn { border-color: var(--warn); }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 24px; }
figure { margin: 0; } figure svg { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); }
th { color: var(--soft); font-weight: 500; }
td.n, th.n { text-align: right; }
td.url { overflow-wrap: anywhere; }
footer { margin-top: 40px; color: var(--soft); font-size: 12px; }
@media print { body { padding: 0; max-width: none; } section, figure, .card { break-inside: avoid; } }
"""


def report_html(view: dict[str, Any], *, days: int, state: dict[str, str] | None, generated: str) -> str:
    """The page for ``view`` (``Stats.as_dict()`` of a campaign or template) over the last ``days``, with the
    campaign's ``state`` (``{"state", "since"}``, or None) and when it was made (``generated``, ISO 8601)."""
    kind, name = view["kind"], view["name"]
    title = f"{kind.capitalize()} {name}"
    subtitle = [f"Counted {counted_text(view, days)}"]
    if state:
        subtitle.append(f"{state['state']} since {state['since']}")
    body = [f"<header><h1>{escape(title)}</h1><p>{escape(' · '.join(subtitle))}</p></header>"]
    if counted(view):
        body += [
            _headline(view),
            _over_time(view),
            _funnel_and_opens(view),
            _links(view["links"]),
            _reasons(view["reasons"]),
            _days(view["days"]),
        ]
    else:  # no chart of nothing
        body += [
            f'<p class="nothing">Nothing was counted for {escape(kind)} {escape(name)} in this period: no '
            "email of it was sent, and no event about one came back.</p>",
            _headline(view),
        ]
    body.append(
        f"<footer>Made by postline report at {escape(generated)}. Times are UTC. "
        "The data of this page is in its <code>script#stats</code> element, as "
        f"<code>postline stats --{escape(kind)} {escape(name)} --days {days} --json</code> prints it.</footer>"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}: postline report</title><style>{STYLE}</style></head><body>"
        + "\n".join(body)
        + f'\n<script type="application/json" id="stats">{_json_in_html(view)}</script>\n</body></html>\n'
    )


def _json_in_html(value: Any) -> str:
    """JSON that cannot end its script element, whatever a link or a reason holds (``</script>``, ``<!--``)."""
    text = json.dumps(value, indent=1, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _figure(path: str, text: str, css: str) -> str:
    """A figure on the page, named by its place in the JSON (``totals.sent``, ``rates.bounce``) for tests and
    scripts that check the page against ``postline stats --json``."""
    return f'<span class="{css}" data-figure="{path}">{escape(text)}</span>'


def _headline(view: dict[str, Any]) -> str:
    totals, rates = view["totals"], view["rates"]
    labels = dict(RATES)
    warned = [metric for metric in SES_REVIEW if rates[metric] is not None and rates[metric] >= SES_REVIEW[metric]]
    cards = []
    for counter, label, rate in HEADLINE:
        under = (
            ""
            if rate is None
            else (
                f'<span class="label">{escape(labels[rate])}</span> '
                f"{_figure(f'rates.{rate}', percent(rates[rate]), 'rate')}"
            )
        )
        cards.append(
            f'<div class="card{" warn" if rate in warned else ""}"><span class="label">{escape(label)}</span>'
            f"{_figure(f'totals.{counter}', number(totals[counter]), 'figure')}{under}</div>"
        )
    click_to_open = _figure("rates.click_to_open", percent(rates["click_to_open"]), "rate")
    more = ", ".join(
        f"{escape(label)} {_figure(f'totals.{counter}', number(totals[counter]), 'count')}"
        for counter, label in OTHER_COUNTS
    )
    warning = (
        f'<p class="warn">The {" and ".join(warned)} rate{"s are" if len(warned) > 1 else " is"} at or past '
        "the level SES reviews an account at (5% bounces, 0.1% complaints).</p>"
        if warned
        else ""
    )
    return (
        f'<section id="headline"><div class="cards">{"".join(cards)}</div>{warning}'
        f'<p class="note">Click-to-open rate {click_to_open}. Also: {more}.</p>'
        f'<p class="note">{escape(RATES_NOTE.capitalize())}.</p></section>'
    )


def _chart(chart_id: str, svg: str, caption: str) -> str:
    return f'<figure id="{chart_id}">{svg}<figcaption>{escape(caption)}</figcaption></figure>'


def _over_time(view: dict[str, Any]) -> str:
    unit, _, _ = charts.timeline(view)
    return (
        "<section><h2>Over time</h2>"
        + _chart(
            "chart-timeline",
            charts.timeline_svg(view),
            f"Emails sent, delivered, opened and clicked per {unit} (UTC); opened and clicked: an email's "
            "first open or click by a person.",
        )
        + "</section>"
    )


def _funnel_and_opens(view: dict[str, Any]) -> str:
    totals = view["totals"]
    return (
        '<section class="pair"><div><h2>From sent to clicked</h2>'
        + _chart(
            "chart-funnel",
            charts.funnel_svg(totals),
            "Emails sent, delivered, opened by a person and clicked by a person.",
        )
        + "</div><div><h2>Who opened</h2>"
        + _chart(
            "chart-opens",
            charts.opens_svg(totals),
            f"Every open: {number(totals['opened'])} by people, {number(totals['machine_opened'])} by "
            "machines (privacy proxies and scanners that fetch the pixel; not counted as opens in the rates).",
        )
        + "</div></section>"
    )


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], figures_from: int) -> str:
    """A table whose columns from ``figures_from`` on are right-aligned figures."""

    def cells(tag: str, row: tuple[str, ...]) -> str:
        return "".join(
            f"<{tag}{' class=n' if i >= figures_from else (' class=url' if header[i] == 'link' else '')}>"
            f"{escape(cell)}</{tag}>"
            for i, cell in enumerate(row)
        )

    return (
        f"<table><thead><tr>{cells('th', header)}</tr></thead><tbody>"
        + "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
        + "</tbody></table>"
    )


def _links(links: list[dict[str, Any]]) -> str:
    if not links:
        return '<section><h2>Links</h2><p class="note">No link was clicked.</p></section>'
    return (
        "<section><h2>Links</h2>"
        + _chart(
            "chart-links",
            charts.links_svg(links),
            f"People who clicked each link (the {min(len(links), charts.TOP_LINKS)} most clicked).",
        )
        + _table(
            ("link", "people", "clicks"),
            [(link["url"], number(link["clicked_unique"]), number(link["clicked"])) for link in links],
            1,
        )
        + "</section>"
    )


def _reasons(reasons: dict[str, dict[str, int]]) -> str:
    rows = [
        (REASON_KINDS[kind], reason, number(count))
        for kind in REASON_KINDS
        for reason, count in reasons.get(kind, {}).items()
    ]
    if not rows:
        return '<section><h2>Bounces and complaints</h2><p class="note">None.</p></section>'
    return (
        "<section><h2>Bounces and complaints</h2>"
        + _chart(
            "chart-reasons",
            charts.reasons_svg(reasons),
            "Bounces and complaints by the reason SES gave (its bounce sub-type, the complaint's feedback type).",
        )
        + _table(("what", "reason", "emails"), rows, 2)
        + "</section>"
    )


def _days(days: dict[str, dict[str, int]]) -> str:
    if not days:
        return ""
    return (
        "<section><h2>Day by day</h2>"
        + _table(
            ("day", *("unsubscribed" if name == "unsubscribed" else label for name, label in DAY_COLUMNS)),
            [(day, *(number(counts[name]) for name, _ in DAY_COLUMNS)) for day, counts in days.items()],
            1,
        )
        + "</section>"
    )
