"""Charts of one scope's counts, as SVG strings to put in a page: drawn here by pygal, so a page holding them has no
script and no remote file, opens offline and prints as it shows.

Each function takes a part of ``Stats.as_dict()`` (postline.analytics.stats), the shape ``postline stats --json``
prints: ``timeline_svg(stats)``, ``funnel_svg(totals)``, ``links_svg(links)``, ``reasons_svg(reasons)`` and
``opens_svg(totals)``. The report (``report.py``) and the dashboard draw with them.

Opens and clicks over time and in the funnel are human ones, an email's first (``opened_unique``,
``clicked_unique``): the figures the rates use.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pygal
from pygal.etree import etree
from pygal.style import Style

from .tables import REASON_KINDS

# Each measure keeps its colour in every chart.
COLOURS = {
    "sent": "#64748b",
    "delivered": "#16a34a",
    "opened": "#2563eb",
    "clicked": "#ea580c",
    "hard_bounced": "#dc2626",
    "soft_bounced": "#f59e0b",
    "complained": "#9333ea",
    "machine": "#cbd5e1",
}
FONTS = 'system-ui, "Segoe UI", Roboto, "Helvetica Neue", "Liberation Sans", Arial, sans-serif'  # the reader's own
HOURLY_UP_TO = 72  # hours of activity drawn hour by hour; past that, day by day
WIDE, HALF = 1000, 500  # the charts' widths in the report's px (a chart scales to its box: text stays as set)
TOP_LINKS = 10
TOP_REASONS = 10

STYLE = dict(
    background="transparent",
    plot_background="transparent",
    font_family=FONTS,
    foreground="rgba(0, 0, 0, .8)",
    foreground_strong="rgba(0, 0, 0, .9)",
    foreground_subtle="rgba(0, 0, 0, .2)",
    opacity=".9",
    opacity_hover="1",
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=13,
    value_font_size=12,
    title_font_size=15,
    no_data_font_size=16,
    guide_stroke_color="#d1d5db",
    major_guide_stroke_color="#d1d5db",
    guide_stroke_dasharray="3,3",
    major_guide_stroke_dasharray="3,3",
)


def _chart(kind, title: str, colours: tuple[str, ...] = tuple(COLOURS.values()), **options):
    """A chart with the house settings: no pygal script (its tooltips would fetch one from a CDN), the reader's
    fonts, sized by the page (the SVG has a viewBox and no size); ``colours`` of its series, in order."""
    options = {
        "width": WIDE,
        "height": 300,
        "legend_at_bottom": True,
        "legend_box_size": 11,
        "margin": 8,
        "no_data_text": "nothing counted",
        "truncate_label": -1,
        "truncate_legend": -1,
        **options,
    }
    chart = kind(js=[], disable_xml_declaration=True, style=Style(colors=colours, **STYLE), **options)
    chart.add_xml_filter(_clean(title))
    return chart


def _nothing(title: str, width: int, height: int) -> str:
    """A chart with nothing to draw: its message alone (pygal draws an empty line or bar chart's axes, from 0 to 1
    with their guides; an empty pie is only the message)."""
    return _render(_chart(pygal.Pie, title, width=width, height=height, show_legend=False))


def _clean(title: str):
    """An XML filter: the chart's accessible title is ``title``; pygal's own script (its config, for the tooltips
    script we do not load), comments and the titles on its guides go; each point gets a ``<title>`` with its series,
    its label and its value (``sent, 15 Jan 08:00: 40``), which a browser shows on hover without any script."""

    def clean(root):
        for parent in list(root.iter()):
            for child in list(parent):
                if child.tag == "script" or child.tag is etree.Comment:
                    parent.remove(child)
                elif child.tag == "title":  # the chart's, or pygal's on its guides (their place, 0.125)
                    if parent is root:
                        child.text = title
                    else:
                        parent.remove(child)
        legends = {
            group.get("id", "").rsplit("-", 1)[-1]: "".join(group.itertext()).strip()
            for group in root.iter("g")
            if group.get("id", "").startswith("activate-serie-")
        }
        for series in list(root.iter("g")):
            number = next(
                (name[len("serie-") :] for name in (series.get("class") or "").split() if name.startswith("serie-")),
                None,
            )
            if number is None:
                continue
            for point in series.iter("g"):
                value = _desc(point, "value")
                if value is not None:
                    named = [part for part in (legends.get(number), _desc(point, "x_label")) if part]
                    etree.SubElement(point, "title").text = f"{', '.join(named)}: {value}" if named else value
        root.set("role", "img")
        root.set("aria-label", title)
        return root

    return clean


def _desc(node, name: str) -> str | None:
    for child in node:
        if child.tag == "desc" and (child.get("class") or "").split()[:1] == [name]:
            return child.text
    return None


def _render(chart) -> str:
    return chart.render(is_unicode=True)


def _ticks(top: int) -> list[int]:
    """Whole-number ticks from 0 to ``top`` or just past it, at most 6, a step of 1, 2 or 5 times a power of ten:
    emails are counted whole (pygal's own scale would mark 0.2 of an email)."""
    step = 1
    while top > 5 * step:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2  # 1, 2, 5, 10, 20, 50, ...
    return list(range(0, max(1, -(-top // step)) * step + 1, step))


def _counted(value: int, colour: str, label: str | None = None) -> dict[str, Any]:
    point = {"value": value, "color": colour}
    if label:
        point["label"] = label
    return point


# -- over time -------------------------------------------------------------------------------------------------------
TIMELINE = (("sent", "sent"), ("delivered", "delivered"), ("opened_unique", "opened"), ("clicked_unique", "clicked"))


def timeline(stats: dict[str, Any]) -> tuple[str, list[str], dict[str, list[int]]]:
    """What the timeline draws: ``("hour" | "day", labels, {series: values})`` from the first hour with counts to
    the last, hours without counts as zeros; by the day when that is more than ``HOURLY_UP_TO`` hours."""
    hours = {at: counts for at, counts in stats["hours"].items() if any(counts.values())}
    if not hours:
        return "hour", [], {label: [] for _, label in TIMELINE}
    first, last = (datetime.strptime(at, "%Y-%m-%dT%H") for at in (min(hours), max(hours)))
    if (last - first) / timedelta(hours=1) < HOURLY_UP_TO:
        step, unit, key = timedelta(hours=1), "hour", "%Y-%m-%dT%H"
        rows = hours
    else:
        step, unit, key = timedelta(days=1), "day", "%Y-%m-%d"
        first, last = first.replace(hour=0), last.replace(hour=0)
        rows = stats["days"]
    slots = []
    while first <= last:
        slots.append(first.strftime(key))
        first += step
    series = {label: [rows.get(slot, {}).get(name, 0) for slot in slots] for name, label in TIMELINE}
    return unit, slots, series


def timeline_svg(stats: dict[str, Any]) -> str:
    """Sent, delivered, opened and clicked per hour (per day past three days of activity)."""
    unit, slots, series = timeline(stats)
    title = f"Sent, delivered, opened and clicked per {unit}"
    if not slots:
        return _nothing(title, WIDE, 320)
    labels = [_slot_label(slot, unit) for slot in slots]
    every = -(-len(labels) // 7) or 1  # a label every so many slots: 7 at most, evenly spaced
    chart = _chart(
        pygal.Line,
        title,
        tuple(COLOURS[label] for _, label in TIMELINE),
        height=320,
        margin_right=48,
        x_labels=labels,
        x_labels_major=labels[::every],
        show_minor_x_labels=False,
        dots_size=2.5,
        y_labels=_ticks(max((max(values, default=0) for values in series.values()), default=0)),
    )
    for _, label in TIMELINE:
        chart.add(label, series[label], stroke_style={"width": 2})
    return _render(chart)


def _slot_label(slot: str, unit: str) -> str:
    """``15 Jan 08:00`` for an hour (UTC), the date for a day (a span of days may cross a year)."""
    return datetime.strptime(slot, "%Y-%m-%dT%H").strftime("%d %b %H:00") if unit == "hour" else slot


# -- the funnel ------------------------------------------------------------------------------------------------------
FUNNEL = (("sent", "sent"), ("delivered", "delivered"), ("opened_unique", "opened"), ("clicked_unique", "clicked"))


def funnel_svg(totals: dict[str, int]) -> str:
    """Sent > delivered > opened > clicked, as bars on one scale."""
    title = "Sent, delivered, opened, clicked"
    values = [(totals.get(name, 0), label) for name, label in reversed(FUNNEL)]  # (pygal draws the first lowest)
    if not any(value for value, _ in values):
        return _nothing(title, HALF, 240)
    chart = _chart(
        pygal.HorizontalBar,
        title,
        width=HALF,
        height=240,
        show_legend=False,
        print_values=True,
        print_values_position="top",
        x_labels=[label for _, label in values],
        y_labels=_ticks(max(value for value, _ in values)),
    )
    chart.add("emails", [_counted(value, COLOURS[label]) for value, label in values])
    return _render(chart)


# -- links and reasons -----------------------------------------------------------------------------------------------
def links_svg(links: list[dict[str, Any]]) -> str:
    """The most clicked links (people who clicked each, a person once)."""
    title = "People who clicked each link"
    top = [link for link in links if link["clicked_unique"]][:TOP_LINKS][::-1]  # (pygal draws the first lowest)
    if not top:
        return _nothing(title, WIDE, _bars_height(0))
    chart = _chart(
        pygal.HorizontalBar,
        title,
        height=_bars_height(len(top)),
        show_legend=False,
        print_values=True,
        print_values_position="top",
        truncate_label=48,
        x_labels=[_short_url(link["url"]) for link in top],
        y_labels=_ticks(max(link["clicked_unique"] for link in top)),
    )
    chart.add("people", [_counted(link["clicked_unique"], COLOURS["clicked"], link["url"]) for link in top])
    return _render(chart)


def _bars_height(bars: int) -> int:
    return 70 + 32 * max(bars, 2)


def _short_url(url: str) -> str:
    return url.split("://", 1)[-1]


def reasons_svg(reasons: dict[str, dict[str, int]]) -> str:
    """Bounces and complaints by SES's reason, the most first."""
    title = "Bounces and complaints by reason"
    rows = sorted(
        ((count, kind, reason) for kind in REASON_KINDS for reason, count in reasons.get(kind, {}).items() if count),
        key=lambda row: (-row[0], row[1], row[2]),
    )[:TOP_REASONS][::-1]
    if not rows:
        return _nothing(title, WIDE, _bars_height(0))
    chart = _chart(
        pygal.HorizontalBar,
        title,
        height=_bars_height(len(rows)),
        show_legend=False,
        print_values=True,
        print_values_position="top",
        truncate_label=40,
        x_labels=[f"{REASON_KINDS[kind]}: {reason}" for _, kind, reason in rows],
        y_labels=_ticks(max(count for count, _, _ in rows)),
    )
    chart.add("emails", [_counted(count, COLOURS[kind]) for count, kind, _ in rows])
    return _render(chart)


# -- who opened ------------------------------------------------------------------------------------------------------
def opens_svg(totals: dict[str, int]) -> str:
    """Every open, by who opened: a person, or a machine (a privacy proxy or a scanner fetching the pixel). Each
    open is one or the other, so the parts make the whole."""
    chart = _chart(
        pygal.Pie,
        "Opens by people and by machines",
        (COLOURS["opened"], COLOURS["machine"]),
        width=HALF,
        height=240,
        inner_radius=0.55,
        print_values=True,
        legend_at_bottom=False,
    )
    human, machine = totals.get("opened", 0), totals.get("machine_opened", 0)
    if human or machine:  # (none: pygal's "nothing counted")
        chart.add("people", [human])
        chart.add("machines", [machine])
    return _render(chart)
