"""The local stack's clock: real time plus an offset that ``postline local clock`` moves, so what a day changes (a
warm-up cap that rises, the 24-hour quota that frees up, a retry due tomorrow) can be seen without waiting a day.

The offset is kept in the state folder (``clock.json``; no file: real time), and everything in the stack that
tells the time reads it there: the functions' contexts (and so the send function's limiter), the local scheduler,
and, in the AWS endpoint's process, SQS (delays and visibility) and SES (its rate and 24-hour windows). Each
reader looks at the file's identity on every call and reads it again only when it changed: a ``stat``, not a
parse. A stack starts at real time and puts its clock back when it stops.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path

CLOCK_FILE = "clock.json"
# The send path never waits longer than its token wait (40 s at most) for a slot: a longer sleep can only be for a
# slot taken just before the clock was moved back, and must not hold a sending thread for the jump.
LONGEST_SLEEP_SECONDS = 60.0
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


class LocalClock:
    """``time.time`` plus the offset in ``path``; its ``sleep`` is ``time.sleep``, bounded (LONGEST_SLEEP_SECONDS)."""

    def __init__(self, path: Path | str):
        self.path = str(path)
        self._seen: tuple[tuple[int, int] | None, float] = (None, 0.0)  # (the file's inode and mtime, its offset)

    def __call__(self) -> float:
        return time.time() + self.offset()

    def offset(self) -> float:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return 0.0
        identity = (stat.st_ino, stat.st_mtime_ns)  # a new file each write (os.replace): a new identity
        seen, offset = self._seen
        if identity != seen:
            offset = read_offset(self.path)
            self._seen = (identity, offset)  # one assignment: threads see the old pair or the new one
        return offset

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(max(0.0, seconds), LONGEST_SLEEP_SECONDS))


def read_offset(path: Path | str) -> float:
    try:
        return float(json.loads(Path(path).read_text())["offset_seconds"])
    except FileNotFoundError:
        return 0.0


def write_offset(path: Path | str, seconds: float) -> None:
    """Set the offset (0: real time, and no file), replacing the file whole so a reader never sees half of it."""
    path = Path(path)
    if seconds == 0:
        path.unlink(missing_ok=True)
        return
    partial = path.with_name(path.name + ".new")
    partial.write_text(json.dumps({"offset_seconds": seconds}))
    os.replace(partial, path)


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``1d``, ``36h``, ``1d12h`` or ``90s``; a ValueError for anything else."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"not a duration: {text!r} (say 1d, 36h, 1d12h, 30m or 90s)")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_instant(text: str) -> float:
    """Epoch seconds of an ISO 8601 date or time (UTC unless it names its offset); a ValueError for anything else."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r} (say 2030-01-02 or 2030-01-02T09:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def describe_offset(seconds: float) -> str:
    """``real time``, or how far from it: ``real time + 1d 2h 0m 0s``."""
    if seconds == 0:
        return "real time"
    sign, left = ("+" if seconds > 0 else "-"), abs(round(seconds))
    days, left = divmod(left, 86_400)
    hours, left = divmod(left, 3_600)
    minutes, secs = divmod(left, 60)
    return f"real time {sign} {days}d {hours}h {minutes}m {secs}s"
