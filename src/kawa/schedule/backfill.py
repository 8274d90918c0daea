"""Backfill: run a pipeline's scheduled dates in a range on purpose, oldest first, within its limits.

Backfilled dates are claims like the scheduler's own (kind "backfill"), so a date never runs twice at
once, whoever runs it: skipped dates and dates whose run did not succeed are queued; a queued,
running or succeeded date is left alone. The runs start in logical-date order, at most
`max_active_runs` at a time, each after its `wait_for` is met. If `kawa serve`'s scheduler is
running it starts them; otherwise the backfill command does, in its own process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from kawa.schedule import _owner
from kawa.schedule.clock import Clock, SystemClock
from kawa.schedule.lease import Lease
from kawa.schedule.spec import ScheduleError, parse_time
from kawa.schedule.store import DONE, QUEUED, RUNNING, SKIP, Claim, ScheduleStore

if TYPE_CHECKING:
    from kawa.pipelines import Pipeline
    from kawa.runtime import Runtime
    from kawa.schedule.launch import Launcher

log = logging.getLogger("kawa.schedule")

# More dates than this in one backfill is more likely a typo in the range than a plan.
MAX_DATES = 10_000


def backfill_dates(
    pipeline: Pipeline, start: str | datetime, end: str | datetime, now: datetime
) -> list[datetime]:
    """The logical dates of `pipeline`'s schedule from `start` to `end`, both included, none after now.

    Times without an offset are wall times in the schedule's zone; a plain date as `end` means the
    end of that day, so `--from 2026-01-01 --to 2026-01-03` covers three whole days.
    """
    if pipeline.schedule is None:
        raise ScheduleError(
            f"pipeline {pipeline.name!r} has no schedule, so it has no dates to backfill; give it "
            "schedule=Schedule(...), or run one date with "
            f"`kawa pipeline run {pipeline.name} --logical-date D`"
        )
    schedule = pipeline.schedule
    first = parse_time(start, schedule.tz, "--from")
    last = parse_time(end, schedule.tz, "--to")
    if isinstance(end, str) and len(end.strip()) == 10:  # a date alone: the whole day
        last = datetime.combine(last.date() + timedelta(days=1), time(), schedule.tz) - timedelta(
            microseconds=1
        )
    if last < first:
        raise ScheduleError(f"--to {end} is before --from {start}; give the earlier time first")
    if first > now:
        raise ScheduleError(
            f"--from {start} is in the future; the scheduler runs those dates when they come "
            "(backfill is for dates that have passed)"
        )
    dates: list[datetime] = []
    for date in schedule.between(first, min(last, now)):
        dates.append(date)
        if len(dates) > MAX_DATES:
            raise ScheduleError(
                f"{start} to {end} holds more than {MAX_DATES} runs of {pipeline.name} "
                f"({schedule.describe()}); backfill a shorter range at a time"
            )
    if not dates:
        raise ScheduleError(
            f"no run times of {pipeline.name} ({schedule.describe()}) between {start} and {end}"
        )
    return dates


@dataclass(frozen=True)
class Progress:
    """A backfilled date whose run ended, or that began waiting."""

    claim: Claim
    status: str | None  # the run's status once it ended; None while it waits
    detail: str | None = None


class Backfill:
    """Queues dates of one pipeline and, unless `kawa serve`'s scheduler runs them, runs them here."""

    def __init__(
        self,
        runtime: Runtime,
        pipelines: Mapping[str, Pipeline],
        name: str,
        *,
        clock: Clock | None = None,
        launcher: Launcher | None = None,
        project: str | None = None,
    ) -> None:
        self.runtime = runtime
        self.pipelines = pipelines
        self.name = name
        self.clock = clock or SystemClock()
        self.project = project or runtime.config.project
        self.store = ScheduleStore(runtime.metadata)
        self.launcher = launcher
        self.dates: list[datetime] = []

    def enqueue(self, dates: list[datetime]) -> dict[datetime, str]:
        """Queue `dates`; returns what happened to each (queued, or why it was left alone)."""
        outcome = self.store.enqueue_backfill(self.project, self.name, dates, self.clock.now())
        self.dates = [d for d, what in outcome.items() if what == QUEUED]
        return outcome

    def scheduler_alive(self, ttl_s: float = 30.0) -> bool:
        """Whether a running scheduler (`kawa serve`) holds this project's lease and will run them."""
        lease = Lease(self.runtime.metadata).holder(self.project)
        if lease is None:
            return False
        holder, heartbeat = lease
        fresh = (self.clock.now() - heartbeat).total_seconds() <= ttl_s
        return fresh and _owner.alive(holder)

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        dispatch: bool = True,
        on_progress: Callable[[Progress], None] | None = None,
        poll_s: float = 0.2,
    ) -> list[Claim]:
        """Until every queued date has ended: start runs here (`dispatch`) or follow the scheduler's."""
        from kawa.schedule.scheduler import Scheduler

        stop = stop or threading.Event()
        scheduler = Scheduler(
            self.runtime, self.pipelines, clock=self.clock, launcher=self.launcher, project=self.project
        )
        told: set[tuple[datetime, str]] = set()
        try:
            while True:
                if dispatch:
                    scheduler.dispatch(only=self.name)
                    scheduler.reap()
                claims = self._claims()
                for c in claims:
                    progress = self._progress(c)
                    if progress is None:
                        continue
                    said = (c.logical_date, progress.status or progress.detail or "")
                    if said not in told:
                        told.add(said)
                        if on_progress is not None:
                            on_progress(progress)
                if all(c.state in (DONE, SKIP) for c in claims) or self.clock.wait(poll_s, stop):
                    return claims
        finally:
            if dispatch:
                scheduler.launcher.close()

    def run_status(self, claim: Claim) -> str | None:
        """The status of the run a backfilled date made; None if it has none (yet)."""
        from kawa.pipelines import RunStore

        if claim.run_id is None:
            return None
        record = RunStore(self.runtime.metadata).get(claim.run_id)
        return record.status if record is not None else None

    def _claims(self) -> list[Claim]:
        if not self.dates:
            return []
        wanted = set(self.dates)
        found = self.store.claims(
            self.project, pipeline=self.name, since=min(self.dates), until=max(self.dates)
        )
        return [c for c in found if c.logical_date in wanted]

    def _progress(self, claim: Claim) -> Progress | None:
        """What to say about a date now: its run's ending, that it runs, or what it waits for."""
        from kawa.schedule.waits import unmet_wait

        if claim.state == DONE and claim.run_id is not None:
            return Progress(claim, self.run_status(claim) or "unknown")
        if claim.state == RUNNING:
            return Progress(claim, None, "running")
        pipeline = self.pipelines.get(self.name)
        if claim.state == QUEUED and pipeline is not None:
            unmet = unmet_wait(self.store, pipeline, self.pipelines, claim, self.clock.now())
            if unmet is not None:
                return Progress(claim, None, unmet[0])
        return None
