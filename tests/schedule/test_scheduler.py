"""The scheduler on a hand-moved clock: first runs, refusals, missed runs, manual runs, limits and waits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from kawa.pipelines import run_pipeline
from kawa.runtime import Runtime
from kawa.schedule import ManualClock, Schedule, WaitFor
from kawa.schedule.scheduler import Scheduler
from kawa.schedule.store import ACTIVE, REFUSED, REMOVED, ScheduleStore
from tests.schedule.conftest import T0, GatedLauncher, claims_of, pipeline, runs_of, scheduler

HOUR = timedelta(hours=1)


def hourly(start_after: timedelta = HOUR, **kwargs: str) -> Schedule:
    return Schedule(start=(T0 + start_after).isoformat(), every="1h", **kwargs)  # type: ignore[arg-type]


def test_runs_start_at_the_first_run_with_the_scheduled_time_as_logical_date(
    runtime: Runtime, clock: ManualClock
) -> None:
    p = pipeline("kpis", hourly(2 * HOUR))
    s = scheduler(runtime, {"kpis": p}, clock)
    report = s.tick()
    assert [(c.pipeline, c.action) for c in report.deployed] == [("kpis", "added")]
    clock.advance("1h59m")
    s.tick()
    assert runs_of(runtime, "kpis") == []
    clock.set(T0 + 2 * HOUR)
    s.tick()
    s.tick()  # a second pass at the same moment runs nothing again
    clock.advance("1h0m7s")  # a few seconds late: the logical date is still the scheduled time
    s.tick()
    runs = runs_of(runtime, "kpis")
    assert [(r.kind, r.status, r.logical_date) for r in runs] == [
        ("scheduled", "succeeded", T0 + 2 * HOUR),
        ("scheduled", "succeeded", T0 + 3 * HOUR),
    ]
    # The step saw the same logical date the run was recorded with.
    assert [r.metrics["ran_for"] for r in runs] == [(T0 + 2 * HOUR).timestamp(), (T0 + 3 * HOUR).timestamp()]
    assert [c.state for c in claims_of(runtime, "kpis")] == ["done", "done"]


def test_a_schedule_whose_first_run_is_past_is_refused_and_never_backfilled(
    runtime: Runtime, clock: ManualClock
) -> None:
    late = pipeline("kpis", Schedule(start=(T0 - HOUR).isoformat(), every="1h"))
    s = scheduler(runtime, {"kpis": late}, clock)
    report = s.tick()
    [change] = report.deployed
    assert change.action == "refused"
    assert change.error is not None
    assert "is in the past" in change.error
    assert "start='2026-01-01T01:00'" in change.error  # the next run time, as a start to copy
    assert "kawa pipeline backfill kpis --from 2025-12-31T23:00 --to 2026-01-01T00:00" in change.error
    for _ in range(3):
        clock.advance("1h")
        s.tick()
    assert runs_of(runtime, "kpis") == []
    assert claims_of(runtime, "kpis") == []
    state = ScheduleStore(runtime.metadata).schedules("shop")["kpis"]
    assert (state.status, state.error) == (REFUSED, change.error)

    # A future start is a new deployment, and runs from then on.
    fixed = pipeline("kpis", Schedule(start=(clock.now() + HOUR).isoformat(), every="1h"))
    s = scheduler(runtime, {"kpis": fixed}, clock)
    assert [c.action for c in s.tick().deployed] == ["changed"]
    clock.advance("1h")
    s.tick()
    assert [r.logical_date for r in runs_of(runtime, "kpis")] == [clock.now()]


def test_a_deployed_schedule_stays_deployed_after_a_restart_once_its_start_has_passed(
    runtime: Runtime, clock: ManualClock
) -> None:
    p = pipeline("kpis", hourly())
    scheduler(runtime, {"kpis": p}, clock).tick()
    clock.advance("2h")
    # A new scheduler (kawa serve restarted) sees the same schedule: not a new deployment.
    again = scheduler(runtime, {"kpis": pipeline("kpis", hourly())}, clock)
    assert again.tick().deployed == []
    assert [r.logical_date for r in runs_of(runtime, "kpis")] == [T0 + HOUR, T0 + 2 * HOUR]


def test_missed_runs_are_recorded_as_skipped_and_only_runs_within_grace_start(
    runtime: Runtime, clock: ManualClock
) -> None:
    p = pipeline("kpis", hourly(grace="10m"))
    s = scheduler(runtime, {"kpis": p}, clock)
    s.tick()
    # kawa is down from T0 until five past five: runs at 01:00..04:00 were missed, 05:00 is in grace.
    clock.set(T0 + 5 * HOUR + timedelta(minutes=5))
    report = scheduler(runtime, {"kpis": p}, clock).tick()
    assert [d for _, d in report.skipped] == [T0 + k * HOUR for k in range(1, 5)]
    runs = runs_of(runtime, "kpis")
    assert [(r.status, r.logical_date) for r in runs] == [
        *[("skipped", T0 + k * HOUR) for k in range(1, 5)],
        ("succeeded", T0 + 5 * HOUR),
    ]
    skipped = runs[0]
    assert skipped.kind == "scheduled"
    assert skipped.error is not None
    assert "missed while kawa's scheduler was not running" in skipped.error
    assert "kawa pipeline backfill kpis --from 2026-01-01T01:00:00+00:00 --to 2026-01-01T04:00:00+00:00" in (
        skipped.error
    )
    assert [c.state for c in claims_of(runtime, "kpis")] == ["skipped"] * 4 + ["done"]


def test_a_run_later_than_grace_is_skipped_too(runtime: Runtime, clock: ManualClock) -> None:
    p = pipeline("kpis", hourly(grace="10m"))
    s = scheduler(runtime, {"kpis": p}, clock)
    s.tick()
    clock.set(T0 + HOUR + timedelta(minutes=11))
    s.tick()
    assert [r.status for r in runs_of(runtime, "kpis")] == ["skipped"]
    clock.set(T0 + 2 * HOUR)
    s.tick()
    assert [r.status for r in runs_of(runtime, "kpis")] == ["skipped", "succeeded"]


def test_manual_runs_are_their_own_kind_and_never_shift_the_schedule(
    runtime: Runtime, clock: ManualClock
) -> None:
    p = pipeline("kpis", Schedule(start=(T0 + timedelta(days=1)).isoformat(), every="1d"))
    s = scheduler(runtime, {"kpis": p}, clock)
    s.tick()
    clock.advance("12h")
    manual = run_pipeline(runtime, p, logical_date=clock.now())
    s.tick()
    clock.set(T0 + timedelta(days=1))
    s.tick()
    clock.advance("1d")
    s.tick()
    runs = runs_of(runtime, "kpis")
    assert [(r.kind, r.logical_date) for r in runs] == [
        ("manual", manual.logical_date),
        ("scheduled", T0 + timedelta(days=1)),
        ("scheduled", T0 + timedelta(days=2)),
    ]
    assert [c.logical_date for c in claims_of(runtime, "kpis")] == [
        T0 + timedelta(days=1),
        T0 + timedelta(days=2),
    ]


def test_at_most_max_active_runs_at_once_and_queued_runs_start_in_order(
    runtime: Runtime, clock: ManualClock
) -> None:
    launcher = GatedLauncher(runtime, clock)
    p = pipeline("kpis", hourly())
    s = Scheduler(runtime, {"kpis": p}, clock=clock, launcher=launcher)
    s.tick()
    for _ in range(3):
        clock.advance("1h")
        s.tick()
    # The 01:00 run is still going: 02:00 and 03:00 are claimed (not missed) and wait their turn.
    assert [j.logical_date for j, _ in launcher.pending] == [T0 + HOUR]
    assert [c.state for c in claims_of(runtime, "kpis")] == ["running", "queued", "queued"]
    launcher.finish()
    s.tick()
    assert [j.logical_date for j, _ in launcher.pending] == [T0 + 2 * HOUR]
    launcher.finish()
    s.tick()
    launcher.finish()
    s.tick()
    assert [r.logical_date for r in runs_of(runtime, "kpis")] == [T0 + k * HOUR for k in (1, 2, 3)]

    two = pipeline("wide", hourly(4 * HOUR), max_active_runs=2)
    s = Scheduler(runtime, {"wide": two}, clock=clock, launcher=launcher)
    s.tick()
    for _ in range(3):
        clock.advance("1h")
        s.tick()
    assert [j.logical_date for j, _ in launcher.pending] == [T0 + 4 * HOUR, T0 + 5 * HOUR]


def test_a_long_run_of_one_pipeline_does_not_hold_up_another(runtime: Runtime, clock: ManualClock) -> None:
    launcher = GatedLauncher(runtime, clock)
    slow, quick = pipeline("slow", hourly()), pipeline("quick", hourly())
    s = Scheduler(runtime, {"slow": slow, "quick": quick}, clock=clock, launcher=launcher)
    s.tick()
    clock.advance("1h")
    s.tick()
    launcher.finish("quick")
    clock.advance("1h")
    s.tick()
    assert sorted((j.pipeline, j.logical_date) for j, _ in launcher.pending) == [
        ("quick", T0 + 2 * HOUR),
        ("slow", T0 + HOUR),
    ]


def test_a_daily_run_waits_for_the_last_hourly_run_of_its_day(runtime: Runtime, clock: ManualClock) -> None:
    launcher = GatedLauncher(runtime, clock)
    events = pipeline("events_hourly", hourly(HOUR))
    day = T0 + timedelta(days=1)
    daily = pipeline(
        "kpis_daily",
        Schedule(start=day.isoformat(), cron="0 0 * * *"),
        wait_for=[WaitFor("events_hourly", timeout="2h")],
    )
    s = Scheduler(runtime, {"events_hourly": events, "kpis_daily": daily}, clock=clock, launcher=launcher)
    s.tick()
    for _ in range(23):  # hourly runs 01:00 .. 23:00 of the 1st, each finished
        clock.advance("1h")
        s.tick()
        launcher.finish("events_hourly")
    clock.set(day)
    s.tick()
    # Midnight: the hourly run of 00:00 (the last hour of the 1st) is going; the daily run waits for it,
    # although the 23:00 one succeeded.
    assert [j.pipeline for j, _ in launcher.pending] == ["events_hourly"]
    clock.advance("30m")
    s.tick()
    assert [j.pipeline for j, _ in launcher.pending] == ["events_hourly"]
    launcher.finish("events_hourly")
    s.tick()
    assert [(j.pipeline, j.logical_date) for j, _ in launcher.pending] == [("kpis_daily", day)]


def test_a_wait_that_times_out_fails_the_run_with_a_clear_message(
    runtime: Runtime, clock: ManualClock
) -> None:
    events = pipeline("events_hourly", hourly(HOUR), failing=True)
    daily = pipeline(
        "kpis_daily",
        Schedule(start=(T0 + 2 * HOUR).isoformat(), every="1d"),
        wait_for=[WaitFor("events_hourly", timeout="2h")],
    )
    s = scheduler(runtime, {"events_hourly": events, "kpis_daily": daily}, clock)
    s.tick()
    for _ in range(3):
        clock.advance("1h")
        s.tick()
    assert runs_of(runtime, "kpis_daily") == []  # 03:00: waited one hour of two
    clock.advance("1h1m")
    s.tick()
    [run] = runs_of(runtime, "kpis_daily")
    assert (run.status, run.kind, run.logical_date) == ("failed", "scheduled", T0 + 2 * HOUR)
    assert run.error is not None
    assert "waited 7200s for a successful run of 'events_hourly' for 2026-01-01T02:00:00+00:00" in run.error
    assert "its run is failed" in run.error
    assert (
        run.message is not None and run.message["sent"]["status"] == "failed"
    )  # the status message went out


def test_a_removed_schedule_stops_and_a_changed_one_starts_from_its_new_first_run(
    runtime: Runtime, clock: ManualClock
) -> None:
    store = ScheduleStore(runtime.metadata)
    s = scheduler(runtime, {"kpis": pipeline("kpis", hourly())}, clock)
    s.tick()
    s = scheduler(runtime, {"kpis": pipeline("kpis", None)}, clock)
    assert [c.action for c in s.tick().deployed] == ["removed"]
    clock.advance("3h")
    s.tick()
    assert runs_of(runtime, "kpis") == []
    assert store.schedules("shop")["kpis"].status == REMOVED
    s = scheduler(runtime, {"kpis": pipeline("kpis", hourly(4 * HOUR, timezone="Asia/Tokyo"))}, clock)
    assert [c.action for c in s.tick().deployed] == ["added"]
    assert store.schedules("shop")["kpis"].status == ACTIVE
    clock.advance("1h")
    s.tick()
    assert [r.logical_date for r in runs_of(runtime, "kpis")] == [T0 + 4 * HOUR]


def test_project_code_that_fails_to_load_stops_nothing_and_an_edit_is_picked_up(
    runtime: Runtime, clock: ManualClock
) -> None:
    from kawa.schedule._code import ProjectPipelines

    code = Path(runtime.config.root) / "pipelines.py"
    code.write_text("this is not python\n")
    source = ProjectPipelines(runtime.config)
    s = Scheduler(runtime, source, clock=clock)
    # Deployed earlier, from code that loaded; the code is broken now, when the first run falls due.
    s.deploy({"kpis": pipeline("kpis", hourly())}, clock.now())
    clock.advance("1h")
    s.tick()
    assert source.error is not None and "pipelines.py:1" in source.error
    assert ScheduleStore(runtime.metadata).schedules("shop")["kpis"].status == ACTIVE
    assert runs_of(runtime, "kpis") == []
    code.write_text(GOOD_CODE.format(start=(T0 + HOUR).isoformat()))
    s.tick()
    assert [(r.status, r.logical_date) for r in runs_of(runtime, "kpis")] == [("succeeded", T0 + HOUR)]


GOOD_CODE = """
from kawa.pipelines import Pipeline, step
from kawa.schedule import Schedule

@step
def noop() -> None:
    return None

kpis = Pipeline("kpis", steps=[noop], schedule=Schedule(start={start!r}, every="1h"))
"""
