"""``postline stats`` as text: plain columns that fit 80 characters (``--json`` prints the data instead)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from itertools import zip_longest
from typing import Any

WIDTH = 80
# (counter, label) of the counts shown for every scope, in the order an email goes.
COUNTS = (
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("hard_bounced", "bounced (hard)"),
    ("complained", "complained"),
    ("opened_unique", "opened (human, unique)"),
    ("clicked_unique", "clicked (human, unique)"),
    ("unsubscribed", "unsubscribed"),
    ("suppressed", "suppressed"),
    ("failed", "failed"),
)
# and for one campaign or template, these too
MORE_COUNTS = (
    ("soft_bounced", "bounced (soft)"),
    ("rejected", "rejected"),
    ("undeliverable_domain", "rejected (domain takes no mail)"),
    ("machine_opened_unique", "opened by machines"),
    ("machine_clicked_unique", "clicked by machines"),
)
RATES = (
    ("delivery", "delivery rate"),
    ("bounce", "bounce rate"),
    ("complaint", "complaint rate"),
    ("human_open", "human open rate"),
    ("click_through", "click-through rate"),
    ("click_to_open", "click-to-open rate"),
    ("unsubscribe", "unsubscribe rate"),
)
RATES_NOTE = (
    "bounce and complaint rates are per email sent, open, click-through and unsubscribe rates per email "
    "delivered, click-to-open per email opened; opens and clicks are people's, not machines'"
)
LISTING_NOTE = (
    "rates: bounce and complaint per email sent; open and click per email delivered (people's opens "
    "and clicks, not machines')"
)
DAY_COLUMNS = (
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("hard_bounced", "bounced"),
    ("complained", "complained"),
    ("opened_unique", "opened"),
    ("clicked_unique", "clicked"),
    ("unsubscribed", "unsub."),
)
REASON_KINDS = {"hard_bounced": "hard bounce", "soft_bounced": "soft bounce", "complained": "complaint"}


def number(value: int) -> str:
    return f"{value:,}"


def percent(rate: float | None) -> str:
    """A rate as a percentage with two decimals (a complaint rate matters at 0.1 %); "-" when nothing was there to
    divide by."""
    return "-" if rate is None else f"{rate * 100:.2f}%"


def period_text(view: dict[str, Any]) -> str:
    """``2027-01-09 00:00 to 2027-01-15 08:59 UTC`` from a view's ``since`` and ``until`` hours."""
    return f"{view['since'].replace('T', ' ')}:00 to {view['until'].replace('T', ' ')}:59 UTC"


def asked(days: int) -> str:
    """The period ``--days`` asked for, in words."""
    return "today" if days == 1 else f"the last {days} days"


def counted_text(view: dict[str, Any], days: int) -> str:
    return f"{period_text(view)} ({asked(days)})"


def counted(view: dict[str, Any]) -> bool:
    return any(view["totals"].values())


def columns(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], left: int = 1) -> list[str]:
    """Rows under a header, each column as wide as its widest cell: the first ``left`` columns to the left, the
    rest (figures) to the right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    ]


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH)


# -- the streams -----------------------------------------------------------------------------------------------------
def streams_lines(views: dict[str, dict[str, Any]], days: int) -> list[str]:
    """One column per stream: the counts, then the rates (a row per stream would not fit 80 characters)."""
    title = f"streams, counted {counted_text(next(iter(views.values())), days)}"
    if not any(counted(view) for view in views.values()):
        return [title, "", "nothing was counted in this period: no email was sent, and no event came back"]
    names = tuple(views)
    rows = [(label, *(number(views[s]["totals"][name]) for s in names)) for name, label in COUNTS]
    rows.append(("",) * (len(names) + 1))
    rows += [(label, *(percent(views[s]["rates"][name]) for s in names)) for name, label in RATES]
    return [title, "", *columns(("", *names), rows), "", *_wrap(RATES_NOTE)]


# -- one campaign or template ----------------------------------------------------------------------------------------
def scope_lines(view: dict[str, Any], days: int, state: dict[str, str] | None = None) -> list[str]:
    """Totals beside the rates, then a row per day, the most clicked links and the bounce and complaint reasons;
    ``days``: the period it covers, ``state``: the campaign's (``{"state", "since"}``)."""
    title = f"{view['kind']} {view['name']}"
    if state:
        title += f" ({state['state']} since {state['since']})"
    if not counted(view):
        return [
            title,
            f"nothing was counted for it ({asked(days)})",
            f"`postline stats --{view['kind']}s` lists the {view['kind']}s that have counts",
        ]
    lines = [title, f"counted {counted_text(view, days)}", ""]
    totals, rates = view["totals"], view["rates"]
    left = columns(("", ""), [(label, number(totals[name])) for name, label in COUNTS + MORE_COUNTS])[1:]
    right = columns(("", ""), [(label, percent(rates[name])) for name, label in RATES])[1:]
    width = max(map(len, left))
    lines += [f"{a:<{width}}    {b}".rstrip() for a, b in zip_longest(left, right, fillvalue="")]
    lines += ["", *_wrap(RATES_NOTE)]
    lines += [
        "",
        *columns(
            ("day", *(label for _, label in DAY_COLUMNS)),
            [(day, *(number(counts[name]) for name, _ in DAY_COLUMNS)) for day, counts in view["days"].items()],
        ),
    ]
    if view["links"]:
        lines += ["", *link_lines(view["links"])]
    if any(view["reasons"].values()):
        lines += ["", *reason_lines(view["reasons"])]
    return lines


def link_lines(links: list[dict[str, Any]], limit: int = 10) -> list[str]:
    """The most clicked links: people who clicked each (a person once) and all clicks."""
    rows = [(link["url"], number(link["clicked_unique"]), number(link["clicked"])) for link in links[:limit]]
    figures = max(len(cell) for row in rows for cell in row[1:])
    room = WIDTH - 2 * (max(figures, len("clicks")) + 2)  # what the URL column may take
    rows = [(url if len(url) <= room else url[: room - 1] + "…", *rest) for url, *rest in rows]
    lines = columns(("link", "people", "clicks"), rows)
    if len(links) > limit:
        lines.append(f"... and {len(links) - limit} more links")
    return lines


def reason_lines(reasons: dict[str, dict[str, int]]) -> list[str]:
    """Bounces and complaints by SES's reason (its bounce sub-type, or complaint feedback type)."""
    rows = [
        (REASON_KINDS[kind], reason, number(count))
        for kind in REASON_KINDS
        for reason, count in reasons.get(kind, {}).items()
    ]
    return columns(("what", "reason", "emails"), rows, left=2)


# -- the campaigns or templates with counts --------------------------------------------------------------------------
def listing_lines(kind: str, rows: list[dict[str, Any]]) -> list[str]:
    """A row per campaign or template, the latest counted first (``--json`` also says when)."""
    if not rows:
        return [f"no {kind} has counts yet"]
    with_state = kind == "campaign"
    header = (kind, *(("state",) if with_state else ()), "sent", "bounce", "complaint", "open", "click")
    table = [
        (
            row["name"],
            *((row["state"] or "-",) if with_state else ()),
            number(row["totals"]["sent"]),
            *(percent(row["rates"][name]) for name in ("bounce", "complaint", "human_open", "click_through")),
        )
        for row in rows
    ]
    return columns(header, table, left=2 if with_state else 1) + ["", *_wrap(LISTING_NOTE)]
