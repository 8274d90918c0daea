"""Backfill on a hand-moved clock: oldest date first, within max_active_runs, shared with scheduled runs."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

from kawa.pipelines import Pipeline
from kawa.runtime import Runtime
from kawa.schedule import ManualClock, Schedule
from kawa.schedule.backfill import Backfill, backfill_dates
from kawa.schedule.launch import Ended, Job
from kawa.schedule.scheduler import Scheduler
from tests.schedule.conftest import T0, GatedLauncher, claims_of, pipeline, runs_of, scheduler

HOUR = timedelta(hours=1)


def hourly(max_active_runs: int = 1) -> Pipeline:
    schedule = Schedule(start=(T0 + HOUR).isoformat(), every="1h", grace="10m")
    return pipeline("kpis", schedule, max_active_runs=max_active_runs)


def missed_four(runtime: Runtime, clock: ManualClock, max_active_runs: int = 1) -> Pipeline:
    """Deploy hourly `kpis`, then come back at 05:05: 01:00 to 04:00 were missed (skipped), 05:00 ran."""
    p = hourly(max_active_runs)
    scheduler(runtime, {"kpis": p}, clock).tick()
    clock.set(T0 + 5 * HOUR + timedelta(minutes=5))
    scheduler(runtime, {"kpis": p}, clock).tick()
    assert [r.status for r in runs_of(runtime, "kpis")] == ["skipped"] * 4 + ["succeeded"]
    return p


class CountingLauncher(GatedLauncher):
    """Holds runs back until the next reap, then finishes them all: records how many were going at once."""

    def __init__(self, runtime: Runtime, clock: ManualClock) -> None:
        super().__init__(runtime, clock)
        self.started: list[Job] = []
        self.most_at_once = 0

    def launch(self, job: Job, pipeline: Pipeline) -> None:
        super().launch(job, pipeline)
        self.started.append(job)
        self.most_at_once = max(self.most_at_once, len(self.pending))

    def reap(self) -> list[Ended]:
        while self.pending:
            self.finish()
        return super().reap()


def test_backfill_runs_its_dates_oldest_first_one_at_a_time_by_default(
    runtime: Runtime, clock: ManualClock
) -> None:
    p, launcher = missed_four(runtime, clock), GatedLauncher(runtime, clock)
    backfill = Backfill(runtime, {"kpis": p}, "kpis", clock=clock, launcher=launcher)
    dates = backfill_dates(p, "2026-01-01T01:00Z", "2026-01-01T04:00Z", clock.now())
    assert dates == [T0 + k * HOUR for k in (1, 2, 3, 4)]
    backfill.enqueue(list(reversed(dates)))  # the order they are given in does not matter
    s = Scheduler(runtime, {"kpis": p}, clock=clock, launcher=launcher)
    order = []
    for _ in dates:
        s.dispatch(only="kpis")
        s.dispatch(only="kpis")  # a second pass while one runs starts nothing more
        [(job, _)] = launcher.pending
        assert job.kind == "backfill"
        order.append(job.logical_date)
        launcher.finish()
    assert order == dates
    s.dispatch(only="kpis")
    assert launcher.pending == []
    runs = runs_of(runtime, "kpis")
    backfilled = [r for r in runs if r.kind == "backfill"]
    assert [(r.status, r.logical_date) for r in backfilled] == [("succeeded", d) for d in dates]
    # Each started after the one before it had finished.
    for before, after in pairwise(backfilled):
        assert before.finished_at is not None and after.started_at is not None
        assert before.finished_at <= after.started_at
    # The skipped runs stay recorded beside their backfilled reruns.
    assert [r.logical_date for r in runs if r.status == "skipped"] == dates


def test_backfill_run_keeps_to_max_active_runs_and_ends_when_every_date_has(
    runtime: Runtime, clock: ManualClock
) -> None:
    p, launcher = missed_four(runtime, clock, max_active_runs=2), CountingLauncher(runtime, clock)
    backfill = Backfill(runtime, {"kpis": p}, "kpis", clock=clock, launcher=launcher)
    dates = backfill_dates(p, "2026-01-01T00:00Z", "2026-01-01T05:00Z", clock.now())
    outcome = backfill.enqueue(dates)
    assert list(outcome.values()) == ["queued"] * 4 + ["succeeded"]  # 05:00 ran on time
    claims = backfill.run()
    assert [(c.logical_date, c.kind, c.state) for c in claims] == [(d, "backfill", "done") for d in dates[:4]]
    assert [j.logical_date for j in launcher.started] == dates[:4]
    assert launcher.most_at_once == 2


def test_a_scheduled_run_in_progress_counts_against_the_backfills_limit(
    runtime: Runtime, clock: ManualClock
) -> None:
    p, launcher = missed_four(runtime, clock), GatedLauncher(runtime, clock)
    s = Scheduler(runtime, {"kpis": p}, clock=clock, launcher=launcher)
    clock.set(T0 + 6 * HOUR)
    s.tick()
    assert [(j.kind, j.logical_date) for j, _ in launcher.pending] == [("scheduled", T0 + 6 * HOUR)]
    Backfill(runtime, {"kpis": p}, "kpis", clock=clock, launcher=launcher).enqueue([T0 + HOUR])
    s.dispatch(only="kpis")
    assert len(launcher.pending) == 1  # the backfilled date waits for the scheduled run to end
    assert [c.state for c in claims_of(runtime, "kpis") if c.logical_date == T0 + HOUR] == ["queued"]
    launcher.finish()
    s.dispatch(only="kpis")
    assert [(j.kind, j.logical_date) for j, _ in launcher.pending] == [("backfill", T0 + HOUR)]
