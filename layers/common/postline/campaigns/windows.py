"""A campaign's daily send window: local wall-clock times in an IANA time zone, e.g. 02:00-06:00 Europe/Berlin.

Times are epoch seconds in and out. A window may cross midnight (``22:00-04:00``: it opens on one local day and
closes on the next). Across DST: a start or end the clocks skip moves to the first minute that exists after it,
and in the hour the clocks repeat, a time means its first occurrence, so the repeated hour is in a window once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_SPEC = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# Windows are searched day by day from the day before; a zone that skips whole days (Samoa skipped 30 Dec 2011)
# leaves a day without a window, so a few days' search is always enough.
_DAYS_SEARCHED = 7


@dataclass(frozen=True)
class Window:
    start: time
    end: time
    timezone: str

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(f"the window opens and closes at {self.start:%H:%M}: give it a length")
        time_zone(self.timezone)

    @classmethod
    def parse(cls, spec: str, timezone: str) -> Window:
        """``Window.parse("02:00-06:00", "Europe/Berlin")``; a ValueError says what is wrong."""
        match = _SPEC.match(spec or "")
        if not match:
            raise ValueError(f"the window {spec!r} is not HH:MM-HH:MM (like 02:00-06:00 or 22:00-04:00)")
        start_hour, start_minute, end_hour, end_minute = (int(part) for part in match.groups())
        if max(start_hour, end_hour) > 23 or max(start_minute, end_minute) > 59:
            raise ValueError(
                f"the window {spec!r} is not HH:MM-HH:MM with hours 00-23 and minutes 00-59 (write midnight as 00:00)"
            )
        return cls(time(start_hour, start_minute), time(end_hour, end_minute), timezone)

    @classmethod
    def from_dict(cls, item: dict[str, str]) -> Window:
        """The campaigns item's ``window`` map: ``{"start": "02:00", "end": "06:00", "timezone": "Europe/Berlin"}``."""
        return cls.parse(f"{item['start']}-{item['end']}", item["timezone"])

    def as_dict(self) -> dict[str, str]:
        return {"start": f"{self.start:%H:%M}", "end": f"{self.end:%H:%M}", "timezone": self.timezone}

    def contains(self, t: float) -> bool:
        opens, _ = self._current_or_next(t)
        return opens <= t

    def next_start(self, t: float) -> float:
        """When the window is next open: ``t`` itself when it is open at ``t``."""
        opens, _ = self._current_or_next(t)
        return max(opens, t)

    def end_after(self, t: float) -> float:
        """When the window ``t`` is in closes (when ``t`` is outside: when the next one closes)."""
        _, closes = self._current_or_next(t)
        return closes

    def _current_or_next(self, t: float) -> tuple[float, float]:
        """The window open at ``t``, or else the next one, as (opens, closes)."""
        zone = time_zone(self.timezone)
        today = datetime.fromtimestamp(t, zone).date()
        for days in range(-1, _DAYS_SEARCHED):
            opens, closes = self._on(today + timedelta(days=days), zone)
            if closes > t and opens < closes:  # (opens == closes: both in a skipped stretch, no window that day)
                return opens, closes
        raise ValueError(f"no {self.start:%H:%M}-{self.end:%H:%M} window in {self.timezone} within a week")

    def _on(self, day: date, zone: ZoneInfo) -> tuple[float, float]:
        """The window that opens on local ``day``, as (opens, closes) in epoch seconds."""
        closing_day = day + timedelta(days=1) if self.end <= self.start else day
        return _instant(day, self.start, zone), _instant(closing_day, self.end, zone)


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; a ValueError that says what is wrong."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name like Europe/Berlin, America/New_York or UTC"
        ) from None


def _instant(day: date, wall: time, zone: ZoneInfo) -> float:
    """Epoch seconds of the local wall-clock time: its first occurrence when the clocks repeat it, the first minute
    that exists after it when they skip it."""
    local = datetime.combine(day, wall)
    while not _exists(local, zone):
        local += timedelta(minutes=1)
    return local.replace(tzinfo=zone).timestamp()  # fold=0: the first occurrence


def _exists(local: datetime, zone: ZoneInfo) -> bool:
    there_and_back = local.replace(tzinfo=zone).astimezone(dt_timezone.utc).astimezone(zone)
    return there_and_back.replace(tzinfo=None) == local
