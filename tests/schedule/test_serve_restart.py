"""SIGKILL of the whole `kawa serve` tree while a schedule runs every 2 s: after a restart no due run is
lost and none runs twice."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kawa.config import load_config
from kawa.pipelines import RunRecord, RunStore
from kawa.runtime import Runtime
from kawa.schedule import Schedule
from kawa.schedule.store import DONE, ScheduleStore
from tests.conftest import Server

PIPELINES = """
from kawa.pipelines import Pipeline, RunContext, step
from kawa.schedule import Schedule

@step(retries=0)
def stamp(ctx: RunContext) -> str:
    return ctx.logical_date.isoformat()

tick = Pipeline(
    "tick", steps=[stamp], schedule=Schedule(start={start!r}, every="2s"), max_active_runs=2
)
"""

pytestmark = pytest.mark.slow


def runs(root: Path) -> list[RunRecord]:
    runtime = Runtime(load_config(root / "kawa.yaml"))
    try:
        return RunStore(runtime.metadata).list("shop", pipeline="tick", limit=1000)
    finally:
        runtime.close()


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_sigkill_and_restart_neither_loses_nor_repeats_a_scheduled_run(tmp_path: Path) -> None:
    server = Server(tmp_path)
    server.start()
    try:
        # Written once kawa serve is up: the scheduler sees the new code and deploys a first run
        # that is still ahead of it.
        start = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
        (tmp_path / "pipelines.py").write_text(PIPELINES.format(start=start.isoformat()))
        wait_until(lambda: sum(r.succeeded for r in runs(tmp_path)) >= 2, 60, "two scheduled runs")
        server.kill()  # most likely while a run is in progress: one starts every 2 s
        killed = datetime.now(UTC)
        time.sleep(2)  # dates fall due while kawa is down (and while it starts again)
        server.start()
        restarted = datetime.now(UTC)

        # The first date that fell due while kawa was down runs late, after the restart.
        missed = Schedule(start=start.isoformat(), every="2s").next_after(killed)
        ended = lambda: any(r.logical_date == missed and r.finished_at for r in runs(tmp_path))  # noqa: E731
        wait_until(ended, 90, f"the run of {missed.isoformat()}, due while kawa was down")
    finally:
        server.stop()

    schedule = Schedule(start=start.isoformat(), every="2s")
    runtime = Runtime(load_config(tmp_path / "kawa.yaml"))
    try:
        claims = ScheduleStore(runtime.metadata).claims("shop", pipeline="tick")
        recorded = RunStore(runtime.metadata).list("shop", pipeline="tick", limit=1000)
    finally:
        runtime.close()
    dates = [c.logical_date for c in claims]
    # Every run time from the first to the last claimed was claimed: none lost, in the downtime neither.
    assert dates == list(schedule.between(schedule.first_run, dates[-1]))
    assert dates[-1] >= restarted - timedelta(seconds=2)
    # At most one run per logical date, and every finished claim points at its one run.
    per_date = Counter(r.logical_date for r in recorded)
    assert max(per_date.values()) == 1, per_date.most_common(3)
    by_id = {r.run_id: r for r in recorded}
    for c in claims:
        if c.state == DONE:
            assert c.run_id in by_id and by_id[c.run_id].logical_date == c.logical_date
    # Dates due while kawa was down were within grace: claimed after the restart and run late, not skipped.
    assert not [r for r in recorded if r.status == "skipped"]
    assert [r.status for r in recorded if r.logical_date == missed] == ["succeeded"]
    # A run the kill interrupted is recorded as failed with the reason, never started again.
    for r in recorded:
        if r.status == "failed":
            assert r.error is not None and r.error.startswith("interrupted"), r.error
