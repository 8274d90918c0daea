"""Deploying schedules: compare the schedules in the project's code with those kawa runs, and apply.

A schedule is deployed when kawa first sees it, or sees its run times change (first run, interval or
cron, time zone): when the scheduler of `kawa serve` loads the project's code, or when `kawa deploy`
applies it. A schedule whose first run is already past at that moment is refused, with a message
saying what to do; kawa never backfills it silently. Changing only `grace`, `wait_for` or
`max_active_runs` is not a new deployment: it takes effect at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kawa.schedule.spec import Schedule
from kawa.schedule.store import ACTIVE, REFUSED, REMOVED, ScheduleState, ScheduleStore

if TYPE_CHECKING:
    from kawa.pipelines import Pipeline

ADDED, CHANGED, REMOVED_ACTION, REFUSED_ACTION, UPDATED = "added", "changed", "removed", "refused", "updated"


@dataclass(frozen=True)
class ScheduleChange:
    """What deploying would do (or did) to one pipeline's schedule."""

    pipeline: str
    action: str  # added | changed | refused | removed | updated
    schedule: str  # the schedule, described; empty for a removed one
    first_run: datetime | None
    error: str | None = None


def spec_of(pipeline: Pipeline) -> dict[str, Any]:
    """The stored form of a pipeline's schedule, waits and concurrency limit."""
    assert pipeline.schedule is not None
    return {
        **pipeline.schedule.to_json(),
        "wait_for": [w.to_json() for w in pipeline.wait_for],
        "max_active_runs": pipeline.max_active_runs,
    }


def plan(
    store: ScheduleStore, project: str, pipelines: Mapping[str, Pipeline], now: datetime
) -> list[ScheduleChange]:
    """What deploying `pipelines` now would change; unchanged schedules are left out."""
    return [change for change, _ in _changes(store.schedules(project), pipelines, now)]


def apply(
    store: ScheduleStore, project: str, pipelines: Mapping[str, Pipeline], now: datetime
) -> list[ScheduleChange]:
    """Deploy the schedules of `pipelines` now, and return what changed."""
    changes = _changes(store.schedules(project), pipelines, now)
    for change, pipeline in changes:
        if change.action == REMOVED_ACTION:
            state = store.schedules(project)[change.pipeline]
            store.put_schedule(
                project,
                change.pipeline,
                spec=state.spec,
                fingerprint=state.fingerprint,
                status=REMOVED,
                error=None,
                first_run=state.first_run,
                cursor=None,
                now=now,
                deployed=False,
            )
            continue
        assert pipeline is not None and pipeline.schedule is not None
        status = {REFUSED_ACTION: REFUSED}.get(change.action, ACTIVE)
        deployed = change.action != UPDATED
        if deployed:
            cursor = pipeline.schedule.first_run if status == ACTIVE else None
        else:
            cursor = store.schedules(project)[change.pipeline].cursor
        store.put_schedule(
            project,
            pipeline.name,
            spec=spec_of(pipeline),
            fingerprint=pipeline.schedule.fingerprint(),
            status=status,
            error=change.error,
            first_run=pipeline.schedule.first_run,
            cursor=cursor,
            now=now,
            deployed=deployed,
        )
    return [change for change, _ in changes]


def refusal(pipeline: str, schedule: Schedule, now: datetime) -> str:
    """The message for a schedule whose first run is already past."""
    tz = schedule.tz
    first = schedule.first_run.astimezone(tz)
    upcoming = schedule.next_after(now).astimezone(tz)
    last = schedule.at_or_before(now)
    missed = ""
    if last is not None:
        missed = (
            f"; to run the dates from the first run until now, use `kawa pipeline backfill {pipeline} "
            f"--from {_plain(first)} --to {_plain(last.astimezone(tz))}`"
        )
    return (
        f"schedule of pipeline {pipeline!r} refused: its first run {first.isoformat()} ({schedule.timezone}) "
        f"is in the past (now {now.astimezone(tz).isoformat()}), and kawa never backfills silently. "
        f"Set start to a future time, e.g. start={_plain(upcoming)!r} (the schedule's next run time)"
        f"{missed}"
    )


def _changes(
    stored: Mapping[str, ScheduleState], pipelines: Mapping[str, Pipeline], now: datetime
) -> list[tuple[ScheduleChange, Pipeline | None]]:
    out: list[tuple[ScheduleChange, Pipeline | None]] = []
    declared = {name: p for name, p in pipelines.items() if p.schedule is not None}
    for name in sorted(declared):
        p = declared[name]
        assert p.schedule is not None
        state = stored.get(name)
        described = p.schedule.describe()
        first = p.schedule.first_run
        if state is not None and state.status != REMOVED and state.fingerprint == p.schedule.fingerprint():
            if state.spec != spec_of(p) and state.status == ACTIVE:
                out.append((ScheduleChange(name, UPDATED, described, first), p))
            continue
        if first < now:
            error = refusal(name, p.schedule, now)
            out.append((ScheduleChange(name, REFUSED_ACTION, described, first, error), p))
            continue
        new = state is None or state.status == REMOVED
        out.append((ScheduleChange(name, ADDED if new else CHANGED, described, first), p))
    for name in sorted(stored):
        if name not in declared and stored[name].status != REMOVED:
            out.append((ScheduleChange(name, REMOVED_ACTION, "", stored[name].first_run), None))
    return out


def _plain(when: datetime) -> str:
    """Wall time without offset, as a user writes `start` (in the schedule's zone)."""
    return when.replace(tzinfo=None).isoformat(timespec="minutes" if when.second == 0 else "seconds")
