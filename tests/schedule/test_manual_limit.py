"""Manual runs count against `max_active_runs`: the scheduler holds a due run while one runs, and a
manual run whose process was killed is settled as failed and no longer holds anything up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from kawa.pipelines import Pipeline, RunLimitReached, RunRecord, run_pipeline, step
from kawa.runtime import Runtime
from kawa.schedule import ManualClock, Schedule
from kawa.schedule.scheduler import Scheduler
from tests.schedule.conftest import T0, claims_of, pipeline, runs_of

HOUR = timedelta(hours=1)
REPO = Path(__file__).resolve().parents[2]

STARTED, GATE = threading.Event(), threading.Event()


@step
def held() -> int:
    STARTED.set()
    assert GATE.wait(30), "the test never opened the gate"
    return 1


def hourly() -> Schedule:
    return Schedule(start=(T0 + HOUR).isoformat(), every="1h")


def test_the_scheduler_holds_a_due_run_while_a_manual_run_runs_and_starts_it_after(
    runtime: Runtime, clock: ManualClock
) -> None:
    STARTED.clear()
    GATE.clear()
    p = Pipeline("kpis", steps=[held], schedule=hourly())
    s = Scheduler(runtime, {"kpis": p}, clock=clock)
    s.tick()
    manual: list[RunRecord] = []
    worker = threading.Thread(target=lambda: manual.append(run_pipeline(runtime, p)))
    worker.start()
    try:
        assert STARTED.wait(30)
        running = runs_of(runtime, "kpis")
        assert [(r.kind, r.status) for r in running] == [("manual", "running")]
        run_id = running[0].run_id
        with pytest.raises(RunLimitReached, match=f"manual run {run_id}"):
            run_pipeline(runtime, p)
        clock.set(T0 + HOUR)
        report = s.tick()
        assert report.claimed == [("kpis", T0 + HOUR)] and report.started == []
        [claim] = claims_of(runtime, "kpis")
        assert claim.state == "queued" and claim.reason is not None
        assert f"manual run {run_id}" in claim.reason and "max_active_runs=1" in claim.reason
    finally:
        GATE.set()
        worker.join(30)
    assert manual[0].succeeded
    report = s.tick()
    assert report.started == [("kpis", T0 + HOUR)]
    [claim] = claims_of(runtime, "kpis")
    assert claim.state == "done" and claim.reason is None
    assert [(r.kind, r.status) for r in runs_of(runtime, "kpis")] == [
        ("manual", "succeeded"),
        ("scheduled", "succeeded"),
    ]


# A real process that records a manual run of "kpis" as running (it owns it), then just stays.
HOLDER = """
import sys, time
from pathlib import Path
from kawa.pipelines import RunStore
from kawa.pipelines.runner import record_run
from tests.schedule.conftest import make_runtime, pipeline

runtime = make_runtime(Path(sys.argv[1]))
record = record_run(runtime, pipeline("kpis"))
RunStore(runtime.metadata).start(record.run_id)
print(record.run_id, flush=True)
time.sleep(120)
"""


def test_a_manual_run_killed_with_sigkill_is_settled_as_failed_and_no_longer_holds_the_schedule(
    tmp_path: Path, runtime: Runtime, clock: ManualClock
) -> None:
    p = pipeline("kpis", hourly())
    s = Scheduler(runtime, {"kpis": p}, clock=clock)
    s.tick()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        run_id = holder.stdout.readline().strip()
        assert len(run_id) == 20, run_id + holder.stdout.read()
        clock.set(T0 + HOUR)
        assert s.tick().started == []  # the live manual run holds it
        with pytest.raises(RunLimitReached, match=f"process {holder.pid} on"):
            run_pipeline(runtime, p)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate(timeout=30)
    report = s.tick()
    assert report.started == [("kpis", T0 + HOUR)]
    killed, scheduled = runs_of(runtime, "kpis")
    assert (killed.run_id, killed.kind, killed.status) == (run_id, "manual", "failed")
    assert killed.error is not None
    assert "the process that ran it ended without recording the end" in killed.error
    assert killed.message is not None and killed.message["sent"]["status"] == "failed"
    assert (scheduled.kind, scheduled.status) == ("scheduled", "succeeded")
    assert run_pipeline(runtime, p).succeeded  # nothing holds a manual run either
