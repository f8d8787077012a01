"""``postline rate status`` and ``postline warmup status``: what the shared sending-rate limiter
(``postline.limiter``) holds to and what it has handed out, read from its items in the rate_limits table and from
SES's ``GetAccount``.

The limits are SES's unless the deploy config replaces them; the functions get the config as environment variables
(``POSTLINE_MAX_SEND_RATE``, ``POSTLINE_MAX_24_HOUR_SEND``, ``POSTLINE_MARKETING_RATE_SHARE``,
``POSTLINE_WARMUP_PLAN``), and the CLI reads the same variables from its own environment: set, they are the
config's; unset, the figure is SES's (or the default).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from .local.clock import LocalClock
from .local.stack import LocalPaths
from .target import is_loopback, target
from .views import iso

RATE_VARIABLE, QUOTA_VARIABLE = "POSTLINE_MAX_SEND_RATE", "POSTLINE_MAX_24_HOUR_SEND"
SHARE_VARIABLE, WARMUP_VARIABLE = "POSTLINE_MARKETING_RATE_SHARE", "POSTLINE_WARMUP_PLAN"
DEFAULT_MARKETING_SHARE = 0.7  # postline.settings.Settings.marketing_rate_share
LAST_MINUTE = 60
TABLE = "POSTLINE_RATE_LIMITS_TABLE"
ALERT_LEVELS = {1: "marketing stopped", 2: "marketing and transactional stopped", 3: "all mail stopped"}


class RateViewError(ValueError):
    """A setting the CLI reads cannot be used (said in one line)."""


# -- the clock and clients (tests replace them) ---------------------------------------------------------------------
def now() -> float:
    """The time the limiter keys its counters by: the local stack's clock (``postline local clock``) where the CLI
    points at the local stack, real time elsewhere."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")  # (set by ``target()`` when it finds a local stack up)
    if endpoint and is_loopback(endpoint):
        return LocalClock(LocalPaths.default().clock_file)()
    return time.time()


def _dynamodb():
    from postline.clients import client

    return client("dynamodb")


def _sesv2():
    from postline.clients import client

    return client("sesv2")


# -- reading ---------------------------------------------------------------------------------------------------------
def _configured_number(environ: Mapping[str, str], variable: str, kind=float) -> float | None:
    raw = environ.get(variable, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise RateViewError(f"{variable}={raw!r} is not a number") from None
    if value <= 0:
        raise RateViewError(f"{variable}={raw!r} must be more than 0")
    return value


def _item(dynamodb, table: str, bucket: str, window: str) -> dict[str, Any] | None:
    return dynamodb.get_item(
        TableName=table, Key={"bucket": {"S": bucket}, "window": {"S": window}}, ConsistentRead=True
    ).get("Item")


def _number(item: dict[str, Any] | None, name: str, default: float = 0) -> float:
    value = (item or {}).get(name, {}).get("N")
    return float(value) if value is not None else default


def _windows_counted(dynamodb, table: str, shards: int, first: int, last: int) -> dict[str, int]:
    """The emails each stream took in the windows that start from ``first`` to ``last`` (epoch seconds), over
    every shard's counters."""
    from postline.limiter import STREAM_ORDER

    taken = dict.fromkeys(STREAM_ORDER, 0)
    for shard in range(shards):
        request = {
            "TableName": table,
            "ConsistentRead": True,
            "KeyConditionExpression": "#b = :b AND #w BETWEEN :first AND :last",
            "ExpressionAttributeNames": {"#b": "bucket", "#w": "window"},
            "ExpressionAttributeValues": {
                ":b": {"S": f"rate#{shard}"},
                ":first": {"S": str(first)},
                ":last": {"S": str(last)},
            },
        }
        while True:
            page = dynamodb.query(**request)
            for item in page.get("Items", []):
                if len(item["window"]["S"]) != len(str(first)):  # (a string range: only same-length keys compare)
                    continue
                for stream in STREAM_ORDER:
                    taken[stream] += int(_number(item, stream))
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return taken


def rate_view(dynamodb, sesv2, table: str, at: float, environ: Mapping[str, str]) -> dict[str, Any]:
    """The limits in force, the emails each stream took in the last minute, the 24-hour quota used and the
    streams it stops, and any slow-down after SES throttled: a stable dict (``postline rate status --json``)."""
    from postline.limiter import (
        HEADROOM,
        MIN_FACTOR,
        RECOVERY_PER_SECOND,
        STREAM_ORDER,
        Windows,
        budget_share,
        recovered,
    )

    configured_rate = _configured_number(environ, RATE_VARIABLE)
    configured_quota = _configured_number(environ, QUOTA_VARIABLE, int)
    share = _configured_number(environ, SHARE_VARIABLE)
    if share is not None and share > 1:
        raise RateViewError(f"{SHARE_VARIABLE}={share!r} must be at most 1")
    account = sesv2.get_account()["SendQuota"]  # for what was sent in the last 24 hours, even when both are set
    max_rate = configured_rate or float(account["MaxSendRate"])
    max_day = float(configured_quota or account["Max24HourSend"])
    sent = float(account.get("SentLast24Hours", 0))

    state = _item(dynamodb, table, "rate#adaptive", "state")
    factor = recovered(_number(state, "factor", 1.0), _number(state, "at"), at) if state else 1.0
    # Counters are written at every shard the full rate has (a slow-down only uses fewer of them).
    shards = Windows.for_rate(max_rate).shards
    windows = Windows.for_rate(max_rate, factor)
    # The windows begun in the last minute, and those ahead whose slots are taken already (critical mail holds
    # up to three windows ahead, the longest at the deepest slow-down).
    first = int(at) - LAST_MINUTE + 1
    last = windows.start(at) + 3 * Windows.for_rate(max_rate, MIN_FACTOR).length
    taken = _windows_counted(dynamodb, table, shards, first, last)

    unlimited = max_day < 0
    streams = {}
    for stream in STREAM_ORDER:
        # (as the limiter counts: a stream stops once less than one email of its share is left)
        stops_at = None if unlimited else math.floor(max_day * budget_share(stream))
        streams[stream] = {
            "last_minute": taken[stream],
            "quota_share_percent": round(100 * budget_share(stream)),
            "stopped": stops_at is not None and sent >= stops_at,
        }
    slowdown = None
    if factor < 1:
        throttled_at = _number(state, "at")
        slowdown = {
            "factor": round(factor, 4),
            "lowered_to": round(_number(state, "factor"), 4),
            "throttled_at": iso(throttled_at),
            "full_rate_at": iso(throttled_at + (1 - _number(state, "factor")) / RECOVERY_PER_SECOND),
        }
    alert = _item(dynamodb, table, "quota#alert", "level")
    return {
        "at": iso(at),
        "limits": {
            "max_send_rate": max_rate,
            "max_send_rate_from": "config" if configured_rate else "ses",
            "max_24_hour_send": None if unlimited else max_day,
            "max_24_hour_send_from": "config" if configured_quota else "ses",
        },
        "marketing_rate_share": share or DEFAULT_MARKETING_SHARE,
        "marketing_rate_share_from": "config" if share else "default",
        "usable_rate": round(max_rate * factor * (1 - HEADROOM), 3),
        "last_minute": {"from": iso(first), "emails": sum(taken.values()), "shards": shards},
        "quota": {
            "sent_last_24_hours": sent,
            "max_24_hour_send": None if unlimited else max_day,
            "used_percent": None if unlimited or max_day == 0 else round(100 * sent / max_day, 1),
            "stopped": [s for s in reversed(STREAM_ORDER) if streams[s]["stopped"]],
        },  # as they stop
        "streams": streams,
        "slowdown": slowdown,
        "quota_alert": {"level": int(_number(alert, "level")), "at": iso(_number(alert, "at"))}
        if alert and at - _number(alert, "at") < 86_400
        else None,
    }


def load_plan(plan_file: Path | None, environ: Mapping[str, str]):
    """The warm-up plan from ``--plan`` or POSTLINE_WARMUP_PLAN, with where it came from; (None, None) for none."""
    from postline.limiter import WarmupPlan

    if plan_file is not None:
        text, source = plan_file.read_text(), str(plan_file)
    else:
        text, source = environ.get(WARMUP_VARIABLE, "").strip(), WARMUP_VARIABLE
        if not text:
            return None, None
    try:
        return WarmupPlan.from_json(text), source
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        detail = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
        raise RateViewError(
            f'{source} is not a warm-up plan ({detail}): expected JSON {{"start": "YYYY-MM-DD", '
            '"pools": {pool: [streams]}, "curve": [[day, emails], ...]}'
        ) from None


def warmup_view(dynamodb, table: str, plan, source: str | None, at: float) -> dict[str, Any]:
    """Each warmed pool's day, today's cap, what was sent through it today and what is left: a stable dict
    (``postline warmup status --json``)."""
    from postline.limiter import STREAM_ORDER, budget_share

    today = datetime.fromtimestamp(at, timezone.utc).date()
    if plan is None:
        return {
            "configured": False,
            "date": today.isoformat(),
            "pools": [],
            "note": "no warm-up is configured: postline caps no pool; managed dedicated IP pools, and standard "
            "ones with SES's automatic warm-up, are warmed by SES itself",
        }
    last_day = plan.curve[-1][0]
    ends = plan.start + timedelta(days=last_day - 1)  # the last capped day; uncapped from the next
    pools = []
    for pool, members in plan.pools.items():
        day, cap = plan.day(today), plan.cap(today)
        item = _item(dynamodb, table, f"warmup#{pool}", today.isoformat())
        used = int(_number(item, "used"))
        by_stream = {s: int(_number(item, s)) for s in STREAM_ORDER if s in members}
        state = "not started" if day < 1 else "over" if day > last_day else "warming"
        pools.append(
            {
                "pool": pool,
                "streams": [s for s in STREAM_ORDER if s in members],
                "state": state,
                "day": day,
                "days": last_day,
                "cap": cap,
                "used": used,
                "left": None if cap is None else max(0, cap - used),
                "by_stream": by_stream,
                "stopped": []
                if cap is None
                else [s for s in reversed(by_stream) if used >= math.floor(cap * budget_share(s, tuple(members)))],
                "ends": ends.isoformat(),
                "uncapped_from": (ends + timedelta(days=1)).isoformat(),
            }
        )
    return {
        "configured": True,
        "source": source,
        "start": plan.start.isoformat(),
        "date": today.isoformat(),
        "pools": pools,
    }


# -- showing ---------------------------------------------------------------------------------------------------------
def _figure(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _from(source: str, variable: str) -> str:
    return f"from the config, {variable}" if source == "config" else "from SES"


def rate_lines(view: dict[str, Any]) -> list[str]:
    limits, quota = view["limits"], view["quota"]
    day_limit = limits["max_24_hour_send"]
    share_from = f"from the config, {SHARE_VARIABLE}" if view["marketing_rate_share_from"] == "config" else "default"
    rows = [
        (
            "max send rate",
            (
                f"{_figure(limits['max_send_rate'])}/s "
                f"({_from(limits['max_send_rate_from'], RATE_VARIABLE)}); "
                f"postline uses {_figure(round(view['usable_rate'], 1))}/s"
            ),
        ),
        (
            "24-hour quota",
            (
                f"{'unlimited' if day_limit is None else _figure(day_limit)} "
                f"({_from(limits['max_24_hour_send_from'], QUOTA_VARIABLE)})"
            ),
        ),
        ("marketing share", f"{view['marketing_rate_share'] * 100:g} % of the coming slots ({share_from})"),
    ]
    if quota["used_percent"] is None:
        used = f"{_figure(quota['sent_last_24_hours'])} sent in the last 24 hours (no quota)"
    else:
        used = (
            f"{quota['used_percent']:g} % "
            f"({_figure(quota['sent_last_24_hours'])} of {_figure(quota['max_24_hour_send'])})"
        )
        if quota["stopped"]:
            used += f": {', '.join(quota['stopped'])} stopped"
    rows.append(("quota used", used))
    slowdown = view["slowdown"]
    rows.append(
        (
            "slow-down",
            "none"
            if slowdown is None
            else f"rate lowered to {slowdown['factor'] * 100:.0f} % after SES throttled at {slowdown['throttled_at']}, "
            f"recovering (full rate by {slowdown['full_rate_at']})",
        )
    )
    if view["quota_alert"]:  # the limiter's levels: 1 marketing stopped, 2 transactional too, 3 all mail
        level = view["quota_alert"]["level"]
        what = ALERT_LEVELS.get(level, f"level {level}")
        rows.append(("quota alert", f"raised at {view['quota_alert']['at']}: {what}"))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    stream_width = max(len(s) for s in view["streams"] | {"total": 0})
    lines += ["", f"{'stream':<{stream_width}}  {'last minute':>11}  24-hour quota"]
    for stream, row in view["streams"].items():
        state = "stopped" if row["stopped"] else "sending"
        limit = "" if view["limits"]["max_24_hour_send"] is None else f" (stops at {row['quota_share_percent']} %)"
        lines.append(f"{stream:<{stream_width}}  {row['last_minute']:>11,}  {state}{limit}")
    lines.append(f"{'total':<{stream_width}}  {view['last_minute']['emails']:>11,}")
    return lines


def warmup_lines(view: dict[str, Any]) -> list[str]:
    if not view["configured"]:
        return [
            f"no warm-up is configured ({WARMUP_VARIABLE} is not set, no --plan): postline caps no pool.",
            "Managed dedicated IP pools, and standard ones with SES's automatic warm-up, are warmed by SES itself.",
        ]
    lines = [f"warm-up plan from {view['source']}, started {view['start']}; today is {view['date']} (UTC)", ""]
    header = ("pool", "streams", "day", "cap today", "used", "left", "ends")
    rows = []
    for pool in view["pools"]:
        day = f"{pool['day']} of {pool['days']}" if pool["state"] == "warming" else pool["state"]
        cap = "none" if pool["cap"] is None else f"{pool['cap']:,}"
        left = "-" if pool["left"] is None else f"{pool['left']:,}"
        rows.append(
            (
                pool["pool"],
                ",".join(pool["streams"]),
                day,
                cap,
                f"{pool['used']:,}",
                left,
                f"after {pool['ends']}" if pool["state"] != "over" else f"ended {pool['ends']}",
            )
        )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5}
    for row in [header, *rows]:
        lines.append(
            "  ".join(
                cell.rjust(w) if i in right else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    for pool in view["pools"]:
        if pool["stopped"]:
            lines.append(f"{pool['pool']}: {', '.join(pool['stopped'])} stopped for today (waits for tomorrow's cap)")
    return lines


# -- commands ---------------------------------------------------------------------------------------------------------
def _fail(message: str, code: int = 2):
    from .main import fail

    fail(message, code)


def _emit(value: dict[str, Any]) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group("rate")
def rate() -> None:
    """The shared sending rate: the limits in force and what each stream uses."""


@rate.command("status")
@click.option("--json", "as_json", is_flag=True)
def rate_status(as_json: bool) -> None:
    """The limits in force (SES's or the config's), the emails each stream took in the last minute, the 24-hour
    quota used and which streams it stops, and any slow-down after SES throttled."""
    where = target()
    try:
        view = rate_view(_dynamodb(), _sesv2(), where.tables[TABLE], now(), os.environ)
    except RateViewError as error:
        _fail(str(error))
    if as_json:
        _emit(view)
    else:
        for line in rate_lines(view):
            click.echo(line)


@click.group("warmup")
def warmup() -> None:
    """The warm-up of standard dedicated IP pools (the deploy config's warmup)."""


@warmup.command("status")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A warm-up plan in JSON (as POSTLINE_WARMUP_PLAN) instead of the environment's.",
)
@click.option("--json", "as_json", is_flag=True)
def warmup_status(plan_file: Path | None, as_json: bool) -> None:
    """Each warmed pool's warm-up day, today's cap, what it sent today and what is left, and when it ends."""
    try:
        plan, source = load_plan(plan_file, os.environ)
    except RateViewError as error:
        _fail(str(error))
    if plan is None:
        view = warmup_view(None, "", None, None, now())
    else:
        view = warmup_view(_dynamodb(), target().tables[TABLE], plan, source, now())
    if as_json:
        _emit(view)
    else:
        for line in warmup_lines(view):
            click.echo(line)
