"""Schedules: when pipelines run by themselves, what they wait for, and the scheduler of `kawa serve`.

    from kawa.pipelines import Pipeline
    from kawa.schedule import Schedule, WaitFor

    daily = Pipeline(
        "daily_kpis",
        steps=[kpis],
        schedule=Schedule(start="2026-01-01T02:00", cron="0 2 * * *", timezone="Europe/Berlin"),
        wait_for=[WaitFor("events_hourly", timeout="2h")],
        max_active_runs=1,
    )

A run's logical date is the time it was scheduled for. A schedule whose first run is already past
when kawa first sees it is refused; missed runs are recorded as skipped, and run only by
`kawa pipeline backfill`. See docs/schedules.md.
"""

from __future__ import annotations

from kawa.schedule.clock import Clock, ManualClock, SystemClock
from kawa.schedule.spec import Schedule, ScheduleError, WaitFor, parse_duration

__all__ = [
    "Clock",
    "ManualClock",
    "Schedule",
    "ScheduleError",
    "Scheduler",
    "SystemClock",
    "WaitFor",
    "parse_duration",
]


def __getattr__(name: str) -> object:
    # The scheduler imports the pipeline runner, which imports this package for Schedule: load it late.
    if name == "Scheduler":
        from kawa.schedule.scheduler import Scheduler

        return Scheduler
    raise AttributeError(f"module 'kawa.schedule' has no attribute {name!r}")
