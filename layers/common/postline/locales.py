"""Locales: which localised variant of a template a message gets, and the Babel filters that format dates, numbers
and money in the message's locale.

A message's ``locale`` (BCP 47, ``de-AT``) is tried from the most specific tag to its language (``de-at``, ``de``);
the first the template has a variant for wins, else the template's default variant. Values are formatted in the
message's own locale when it is the chosen variant's language or a region of it (``de-AT`` formats ``de`` text as
Austrians write it), otherwise in the variant's locale: English text never gets French numbers.

Babel is imported on first use, not at import: a cold start that renders no formatted value never pays for it.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from jinja2 import pass_context

# The context key the filters read the formatting locale from: not a Jinja name, so no template can set or read it.
FORMAT_LOCALE_KEY = "postline:locale"
DEFAULT_LOCALE = "en"
_SEPARATORS = re.compile(r"[-_]")


def normalise(tag: str) -> str:
    """A locale tag as postline compares them: lower case, ``-`` between subtags (``pt_BR`` -> ``pt-br``)."""
    return "-".join(_SEPARATORS.split(tag.strip().lower()))


def canonical(tag: str) -> str:
    """A locale tag as it is shown: ``pt_br`` -> ``pt-BR``, ``zh-hant-tw`` -> ``zh-Hant-TW``."""
    language, *rest = normalise(tag).split("-")
    shown = [language]
    for part in rest:
        shown.append(
            part.title()
            if len(part) == 4 and part.isalpha()
            else part.upper()
            if len(part) == 2 or (len(part) == 3 and part.isdigit())
            else part
        )
    return "-".join(shown)


def chain(tag: str | None) -> list[str]:
    """The tags tried for a message's locale, most specific first: ``de-AT`` -> ``["de-at", "de"]``."""
    if not tag:
        return []
    parts = normalise(tag).split("-")
    return ["-".join(parts[:size]) for size in range(len(parts), 0, -1)]


def choose(message_locale: str | None, default: str, variants: Any) -> tuple[str, str]:
    """The variant a message gets (a key of ``variants``, or ``default``) and the locale its values are formatted
    in. ``variants`` holds normalised tags."""
    tried = chain(message_locale)
    chosen = next((tag for tag in tried if tag in variants or tag == normalise(default)), None) or normalise(default)
    formatted = message_locale if chosen in tried and babel_locale(message_locale) is not None else chosen
    return chosen, formatted


@lru_cache(maxsize=256)
def babel_locale(tag: str | None):
    """Babel's Locale for ``tag``, or None when Babel does not know it (a message may name any well-formed tag)."""
    if not tag:
        return None
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse("-".join(_SEPARATORS.split(tag.strip())), sep="-")
    except (UnknownLocaleError, ValueError):
        return None


class FormatError(ValueError):
    """A value a formatting filter cannot format: the message says which filter and what it expected."""


def _locale_of(context) -> Any:
    return babel_locale(context.get(FORMAT_LOCALE_KEY)) or babel_locale(DEFAULT_LOCALE)


def _decimal(value: Any, filter_name: str) -> Decimal:
    # Through str: 0.1 from JSON formats as 0.10, never as 0.1000000000000000055511151231257827.
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise FormatError(f"{filter_name}: {value!r} is not a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise FormatError(f"{filter_name}: {value!r} is not a number") from None
    if not number.is_finite():
        raise FormatError(f"{filter_name}: {value!r} is not a number")
    return number


def _datetime(value: Any, filter_name: str) -> dt.date | dt.datetime:
    """A date or time given as ISO 8601 text (``2026-12-04``, ``2026-12-04T09:30:00Z``) or epoch seconds."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return dt.date.fromisoformat(text)
            return dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            pass
    raise FormatError(
        f"{filter_name}: {value!r} is not a date (ISO 8601 like 2026-12-04 or 2026-12-04T09:30:00Z, or epoch seconds)"
    )


def _zone(tz: str | None, filter_name: str):
    if tz is None:
        return dt.timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise FormatError(f"{filter_name}: unknown time zone {tz!r} (an IANA name like Europe/Berlin)") from None


@pass_context
def money(context, value: Any, currency: str, format: str | None = None) -> str:  # noqa: A002 - Babel's name
    """``{{ total|money('EUR') }}``: 1234.5 -> ``€1,234.50`` (en), ``1.234,50 €`` (de), ``€ 1.234,50`` (de-AT)."""
    from babel.numbers import format_currency, is_currency

    if not isinstance(currency, str) or not is_currency(currency.upper()):
        raise FormatError(f"money: {currency!r} is not an ISO 4217 currency code (like EUR or USD)")
    return format_currency(_decimal(value, "money"), currency.upper(), format=format, locale=_locale_of(context))


@pass_context
def number(context, value: Any, format: str | None = None) -> str:  # noqa: A002
    """``{{ count|number }}``: 1234567.5 -> ``1,234,567.5`` (en), ``1.234.567,5`` (de)."""
    from babel.numbers import format_decimal

    return format_decimal(_decimal(value, "number"), format=format, locale=_locale_of(context))


@pass_context
def percent(context, value: Any, format: str | None = None) -> str:  # noqa: A002
    """``{{ 0.125|percent }}`` -> ``12%`` (en), ``12 %`` (de)."""
    from babel.numbers import format_percent

    return format_percent(_decimal(value, "percent"), format=format, locale=_locale_of(context))


@pass_context
def date(context, value: Any, format: str = "medium", tz: str | None = None) -> str:  # noqa: A002
    """``{{ when|date('long') }}``: 2026-12-04 -> ``December 4, 2026`` (en), ``4. Dezember 2026`` (de). A time is
    first moved to ``tz`` (default UTC)."""
    from babel.dates import format_date

    when = _datetime(value, "date")
    if isinstance(when, dt.datetime):
        when = (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).astimezone(_zone(tz, "date")).date()
    return format_date(when, format=format, locale=_locale_of(context))


@pass_context
def datetime(context, value: Any, format: str = "medium", tz: str | None = None) -> str:  # noqa: A002
    """``{{ sent_at|datetime('short', tz='Europe/Vienna') }}``: a date and time in ``tz`` (default UTC)."""
    from babel.dates import format_datetime

    when = _datetime(value, "datetime")
    if not isinstance(when, dt.datetime):
        when = dt.datetime.combine(when, dt.time())
    return format_datetime(
        when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc),
        format=format,
        tzinfo=_zone(tz, "datetime"),
        locale=_locale_of(context),
    )


FILTERS = {"money": money, "number": number, "percent": percent, "date": date, "datetime": datetime}
