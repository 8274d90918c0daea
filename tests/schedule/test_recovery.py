"""Restart safety on a hand-moved clock: claims taken once, dead processes' claims settled, one leader."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta

from kawa.pipelines import RunStore
from kawa.runtime import Runtime
from kawa.schedule import ManualClock, Schedule
from kawa.schedule._owner import alive, me, owner_of
from kawa.schedule.lease import Lease
from kawa.schedule.store import QUEUED, ScheduleStore
from tests.schedule.conftest import T0, claims_of, pipeline, runs_of, scheduler

HOUR = timedelta(hours=1)


def dead_owner() -> str:
    """The owner id of a process that has ended (as a killed `kawa serve` would have)."""
    process = subprocess.Popen(["true"])
    owner = owner_of(process.pid)
    process.wait()
    assert not alive(owner)
    return owner


def claim_as_dead_scheduler(runtime: Runtime, clock: ManualClock) -> tuple[str, ScheduleStore]:
    """Deploy an hourly schedule and leave its 01:00 run claimed by a process that then died."""
    store = ScheduleStore(runtime.metadata)
    p = pipeline("kpis", Schedule(start=(T0 + HOUR).isoformat(), every="1h"))
    scheduler(runtime, {"kpis": p}, clock).deploy({"kpis": p}, clock.now())
    clock.advance("1h")
    state = store.schedules("shop")["kpis"]
    assert state.cursor is not None
    assert store.advance(
        "shop",
        "kpis",
        cursor=state.cursor,
        new_cursor=T0 + 2 * HOUR,
        due=[T0 + HOUR],
        missed=[],
        reason="",
        now=clock.now(),
    )
    owner = dead_owner()
    assert store.take(("shop", "kpis", T0 + HOUR), owner, clock.now())
    return owner, store


def test_a_claimed_run_that_never_started_runs_once_after_a_restart(
    runtime: Runtime, clock: ManualClock
) -> None:
    claim_as_dead_scheduler(runtime, clock)
    p = pipeline("kpis", Schedule(start=(T0 + HOUR).isoformat(), every="1h"))
    report = scheduler(runtime, {"kpis": p}, clock).tick()
    assert [o for _, _, o in report.recovered] == ["queued again: its run had not started"]
    scheduler(runtime, {"kpis": p}, clock).tick()  # and again: nothing more
    assert [(r.status, r.logical_date) for r in runs_of(runtime, "kpis")] == [("succeeded", T0 + HOUR)]
    assert [c.state for c in claims_of(runtime, "kpis")] == ["done"]


def test_a_run_killed_mid_way_is_recorded_failed_and_not_run_again(
    runtime: Runtime, clock: ManualClock
) -> None:
    claim_as_dead_scheduler(runtime, clock)
    runs = RunStore(runtime.metadata)
    # The dead process had recorded its run and started it, but not yet linked it to the claim.
    record = runs.create(
        project="shop",
        pipeline="kpis",
        experiment="default",
        kind="scheduled",
        params={},
        logical_date=T0 + HOUR,
        steps=[("record_date", {})],
    )
    runs.start(record.run_id)
    p = pipeline("kpis", Schedule(start=(T0 + HOUR).isoformat(), every="1h"))
    scheduler(runtime, {"kpis": p}, clock).tick()
    [run] = runs_of(runtime, "kpis")
    assert run.run_id == record.run_id
    assert run.status == "failed"
    assert run.error is not None and run.error.startswith("interrupted: the process running it")
    assert "kawa pipeline backfill kpis" in run.error
    [claim] = claims_of(runtime, "kpis")
    assert (claim.state, claim.run_id) == ("done", record.run_id)


def test_a_live_process_keeps_its_claim(runtime: Runtime, clock: ManualClock) -> None:
    owner, store = claim_as_dead_scheduler(runtime, clock)
    parent = owner_of(os.getppid())  # alive, on this host, and not this process
    assert store.hand_over(("shop", "kpis", T0 + HOUR), owner, parent, clock.now())
    p = pipeline("kpis", Schedule(start=(T0 + HOUR).isoformat(), every="1h"))
    assert scheduler(runtime, {"kpis": p}, clock).tick().recovered == []
    assert [c.state for c in claims_of(runtime, "kpis")] == ["running"]
    assert runs_of(runtime, "kpis") == []


def test_a_date_is_claimed_once_however_many_try(runtime: Runtime, clock: ManualClock) -> None:
    store = ScheduleStore(runtime.metadata)
    p = pipeline("kpis", Schedule(start=(T0 + HOUR).isoformat(), every="1h"))
    scheduler(runtime, {"kpis": p}, clock).deploy({"kpis": p}, clock.now())
    cursor = T0 + HOUR
    first = store.advance(
        "shop", "kpis", cursor=cursor, new_cursor=T0 + 2 * HOUR, due=[cursor], missed=[], reason="", now=T0
    )
    second = store.advance(
        "shop", "kpis", cursor=cursor, new_cursor=T0 + 2 * HOUR, due=[cursor], missed=[], reason="", now=T0
    )
    assert (first, second) == (True, False)
    key = ("shop", "kpis", cursor)
    assert store.take(key, me(), T0)
    assert not store.take(key, dead_owner(), T0)
    assert store.enqueue_backfill("shop", "kpis", [cursor], T0) == {cursor: "running"}
    assert [c.state for c in claims_of(runtime, "kpis")] == ["running"]


def test_one_scheduler_at_a_time_and_a_dead_ones_lease_passes_at_once(
    runtime: Runtime, clock: ManualClock
) -> None:
    store = ScheduleStore(runtime.metadata)
    p = pipeline("kpis", Schedule(start=(T0 + HOUR).isoformat(), every="1h"))
    other = owner_of(os.getppid())
    assert Lease(runtime.metadata).acquire("shop", other, clock.now(), ttl_s=30, dead=False) == other
    clock.advance("10s")
    s = scheduler(runtime, {"kpis": p}, clock)
    report = s.tick()
    assert not report.leader
    assert report.deployed == []
    assert store.schedules("shop") == {}
    # The other scheduler stops renewing its lease: after the time-to-live it passes.
    clock.advance("31s")
    assert s.tick().leader
    # A holder whose process is gone loses the lease at once, without waiting out its time-to-live.
    assert Lease(runtime.metadata).acquire("shop", dead_owner(), clock.now(), ttl_s=30, dead=True) != me()
    assert s.tick().leader


def test_backfill_queues_skipped_and_failed_dates_but_not_succeeded_ones(
    runtime: Runtime, clock: ManualClock
) -> None:
    store = ScheduleStore(runtime.metadata)
    p = pipeline("kpis", Schedule(start=(T0 + HOUR).isoformat(), every="1h", grace="10m"))
    s = scheduler(runtime, {"kpis": p}, clock)
    s.tick()
    clock.set(T0 + 3 * HOUR)
    s.tick()  # 01:00 and 02:00 skipped, 03:00 ran
    dates = [T0 + k * HOUR for k in (1, 2, 3)]
    assert store.enqueue_backfill("shop", "kpis", dates, clock.now()) == {
        T0 + HOUR: QUEUED,
        T0 + 2 * HOUR: QUEUED,
        T0 + 3 * HOUR: "succeeded",
    }
    assert store.enqueue_backfill("shop", "kpis", dates[:1], clock.now()) == {T0 + HOUR: "queued already"}
