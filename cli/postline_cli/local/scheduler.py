"""EventBridge Scheduler, locally: moto stores schedules but never runs them. This thread runs the one-time
schedules postline creates (soft-bounce retries) when they are due, then deletes them, as
``ActionAfterCompletion=DELETE`` does in AWS."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from postline.retries import due_schedule_action, schedule_time


def run_due_schedules(scheduler, sqs, group: str, now: float) -> int:
    """Fire every schedule in ``group`` due at ``now``; returns how many ran."""
    ran = 0
    for summary in scheduler.list_schedules(GroupName=group).get("Schedules", []):
        schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=group)
        action = due_schedule_action(schedule)
        if action is None or schedule_time(schedule) > now:
            continue
        sqs.send_message(**action)
        scheduler.delete_schedule(Name=summary["Name"], GroupName=group)
        ran += 1
    return ran


class LocalScheduler(threading.Thread):
    def __init__(self, scheduler, sqs, group: str, stop: threading.Event, clock: Callable[[], float] = time.time):
        super().__init__(name="scheduler", daemon=True)
        self.scheduler, self.sqs, self.group, self.stop, self.clock = scheduler, sqs, group, stop, clock

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                run_due_schedules(self.scheduler, self.sqs, self.group, self.clock())
            except Exception as error:  # noqa: BLE001 - try again next second
                print(f"[scheduler] {error!r}", flush=True)
