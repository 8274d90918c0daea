"""Deploying schedules: plan shows what would change and writes nothing; apply records it."""

from __future__ import annotations

from datetime import timedelta

from kawa.runtime import Runtime
from kawa.schedule import Schedule, WaitFor
from kawa.schedule.deploy import apply, plan
from kawa.schedule.store import ACTIVE, REFUSED, ScheduleStore
from tests.schedule.conftest import T0, pipeline

HOUR = timedelta(hours=1)


def test_plan_writes_nothing_and_apply_records_each_change(runtime: Runtime) -> None:
    store = ScheduleStore(runtime.metadata)
    pipelines = {
        "kpis": pipeline("kpis", Schedule(start=(T0 + HOUR).isoformat(), every="1h")),
        "late": pipeline("late", Schedule(start=(T0 - HOUR).isoformat(), every="1d")),
        "adhoc": pipeline("adhoc"),
    }
    planned = plan(store, "shop", pipelines, T0)
    assert [(c.pipeline, c.action) for c in planned] == [("kpis", "added"), ("late", "refused")]
    assert store.schedules("shop") == {}
    assert apply(store, "shop", pipelines, T0) == planned
    states = store.schedules("shop")
    assert (states["kpis"].status, states["kpis"].cursor) == (ACTIVE, T0 + HOUR)
    assert states["late"].status == REFUSED
    assert plan(store, "shop", pipelines, T0) == []

    # Only waits or limits changed: updated in place, the cursor kept, no new first run to check.
    later = T0 + 5 * HOUR
    pipelines["kpis"] = pipeline(
        "kpis",
        Schedule(start=(T0 + HOUR).isoformat(), every="1h"),
        wait_for=[WaitFor("adhoc")],
        max_active_runs=2,
    )
    assert [(c.pipeline, c.action) for c in apply(store, "shop", pipelines, later)] == [("kpis", "updated")]
    kpis = store.schedules("shop")["kpis"]
    assert (kpis.status, kpis.cursor, kpis.spec["max_active_runs"]) == (ACTIVE, T0 + HOUR, 2)

    # Removing the pipeline's schedule is shown and recorded as removed.
    del pipelines["kpis"]
    assert [(c.pipeline, c.action) for c in apply(store, "shop", pipelines, later)] == [("kpis", "removed")]
