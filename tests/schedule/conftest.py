"""Fixtures for scheduler tests: a runtime in a temporary project, a hand-moved clock, pipelines to run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kawa.config import Config
from kawa.pipelines import Pipeline, RunContext, RunRecord, RunStore, step
from kawa.runtime import Runtime
from kawa.schedule import ManualClock, Schedule, WaitFor
from kawa.schedule.launch import Ended, Job, execute
from kawa.schedule.scheduler import Scheduler
from kawa.schedule.store import Claim, ScheduleStore

# The moment every test starts at; schedules start later than this.
T0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


@step
def record_date(ctx: RunContext) -> str:
    ctx.log_metric("ran_for", ctx.logical_date.timestamp())
    return ctx.logical_date.isoformat()


@step(retries=0)  # scheduled runs retry failed steps by default; this one fails at once
def fail_always() -> None:
    raise RuntimeError("this step always fails")


def pipeline(
    name: str,
    schedule: Schedule | None = None,
    *,
    wait_for: list[WaitFor | str] | None = None,
    max_active_runs: int = 1,
    failing: bool = False,
) -> Pipeline:
    return Pipeline(
        name,
        steps=[fail_always if failing else record_date],
        schedule=schedule,
        wait_for=wait_for or [],
        max_active_runs=max_active_runs,
    )


def make_runtime(root: Path) -> Runtime:
    return Runtime(Config(project="shop", root=str(root)))


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(tmp_path)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def scheduler(runtime: Runtime, pipelines: dict[str, Pipeline], clock: ManualClock) -> Scheduler:
    return Scheduler(runtime, pipelines, clock=clock)


def runs_of(runtime: Runtime, name: str) -> list[RunRecord]:
    """The runs of pipeline `name`, oldest first."""
    return list(reversed(RunStore(runtime.metadata).list("shop", pipeline=name, limit=10_000)))


def claims_of(runtime: Runtime, name: str) -> list[Claim]:
    return ScheduleStore(runtime.metadata).claims("shop", pipeline=name)


class GatedLauncher:
    """Starts runs for real, but only when the test says so: a run in between counts as running.

    It runs jobs through the same `execute` as every launcher; holding them back lets a test see the
    scheduler's limits and waits while a run is in progress, without threads or sleeps.
    """

    def __init__(self, runtime: Runtime, clock: ManualClock) -> None:
        self.runtime = runtime
        self.clock = clock
        self.pending: list[tuple[Job, Pipeline]] = []
        self.ended: list[Ended] = []

    def launch(self, job: Job, pipeline: Pipeline) -> None:
        self.pending.append((job, pipeline))

    def finish(self, pipeline: str | None = None) -> RunRecord | None:
        """Run the oldest held-back job (of `pipeline`) to its end."""
        for i, (job, p) in enumerate(self.pending):
            if pipeline is None or job.pipeline == pipeline:
                del self.pending[i]
                record = execute(self.runtime, p, job, now=self.clock.now)
                self.ended.append(Ended(job, None))
                return record
        raise AssertionError(f"no held-back run of {pipeline or 'any pipeline'}")

    def reap(self) -> list[Ended]:
        ended, self.ended = self.ended, []
        return ended

    def running(self) -> int:
        return len(self.pending)

    def close(self) -> None:
        pass
