"""Caching of unchanged steps, and idempotent partition writes: a rerun never duplicates rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from kawa.lineage import LineageStore
from kawa.pipelines import Pipeline, RunContext, SubprocessExecutor, run_pipeline, step
from kawa.pipelines.cache import StepResults, cache_key
from kawa.runtime import Runtime
from kawa.warehouse.load import write_table
from tests.lineage import shop

DAY1 = datetime(2026, 11, 1, tzinfo=UTC)
DAY2 = datetime(2026, 11, 2, tzinfo=UTC)


def _tally(path: str, name: str) -> None:
    with open(path, "a") as f:
        f.write(name + "\n")


@step
def orders(ctx: RunContext, tally: str) -> pa.Table:
    _tally(tally, "orders")
    return ctx.warehouse.query("SELECT user_id, amount FROM shop_orders ORDER BY user_id")


@step
def kpis(orders: pa.Table, ctx: RunContext, tally: str, rate: float) -> int:
    _tally(tally, "kpis")
    table = pa.table(
        {
            "users": [len(set(orders.column("user_id").to_pylist()))],
            "revenue": [float(pc.sum(orders.column("amount")).as_py()) * rate],
        }
    )
    ctx.write_table("daily_kpis", table, partition=ctx.logical_date)
    return table.num_rows


daily = Pipeline("daily_kpis", steps=[orders, kpis], params={"tally": "", "rate": 1.0})


def _orders(runtime: Runtime, amounts: list[float]) -> None:
    data = pa.table({"user_id": [f"u{i}" for i in range(len(amounts))], "amount": amounts})
    write_table(runtime.warehouse("shop"), "shop_orders", data)


def _ran(tally: Path) -> list[str]:
    ran = tally.read_text().split() if tally.exists() else []
    tally.write_text("")
    return ran


def _kpis(runtime: Runtime) -> list[dict[str, object]]:
    return (
        runtime.warehouse("shop")
        .query("SELECT logical_date, users, revenue FROM daily_kpis ORDER BY logical_date")
        .to_pylist()
    )


def test_a_rerun_for_the_same_logical_date_replaces_its_partition(runtime: Runtime, tmp_path: Path) -> None:
    tally = tmp_path / "tally"
    _orders(runtime, [10.0, 20.0])
    params = {"tally": str(tally)}
    for _ in range(3):  # no cache: the step really writes again each time
        assert run_pipeline(runtime, daily, params, logical_date=DAY1, cache=False).succeeded
    assert _ran(tally) == ["orders", "kpis"] * 3
    assert _kpis(runtime) == [{"logical_date": "2026-11-01", "users": 2, "revenue": 30.0}]
    # The day's old file and its new one change places in one manifest version: no version of the
    # table has the day missing or twice, whoever reads it mid-rerun.
    lake = runtime.warehouse("shop").table("daily_kpis")
    before = lake.manifest()
    assert run_pipeline(runtime, daily, params, logical_date=DAY1, cache=False).succeeded
    after = lake.manifest()
    assert after.version == before.version + 1
    [old], [new] = (
        [f.path for f in m.files if f.partition == {"logical_date": "2026-11-01"}] for m in (before, after)
    )
    assert old != new and old in [r.path for r in after.retired]
    _ran(tally)
    _orders(runtime, [10.0, 20.0, 5.0])
    assert run_pipeline(runtime, daily, params, logical_date=DAY2, cache=False).succeeded
    assert run_pipeline(runtime, daily, params, logical_date=DAY1, cache=False).succeeded
    assert _kpis(runtime) == [
        {"logical_date": "2026-11-01", "users": 3, "revenue": 35.0},
        {"logical_date": "2026-11-02", "users": 3, "revenue": 35.0},
    ]


def test_an_unchanged_step_reuses_its_earlier_result(runtime: Runtime, tmp_path: Path) -> None:
    tally = tmp_path / "tally"
    _orders(runtime, [10.0, 20.0])
    params = {"tally": str(tally)}
    first = run_pipeline(runtime, daily, params, logical_date=DAY1)
    assert _ran(tally) == ["orders", "kpis"]
    again = run_pipeline(runtime, daily, params, logical_date=DAY1)
    assert again.succeeded and _ran(tally) == []
    results = StepResults(runtime).get(again.run_id)
    cached_from = {name: r["cached_from"] for name, r in results.items()}
    assert cached_from == {"orders": first.run_id, "kpis": first.run_id}
    assert results["kpis"]["output"] == StepResults(runtime).get(first.run_id)["kpis"]["output"]
    assert _kpis(runtime) == [{"logical_date": "2026-11-01", "users": 2, "revenue": 30.0}]

    # A parameter the step takes changed: that step runs, the one before it is reused.
    run_pipeline(runtime, daily, {**params, "rate": 2.0}, logical_date=DAY1)
    assert _ran(tally) == ["kpis"]
    # Another logical date: both take ctx, so both run.
    run_pipeline(runtime, daily, params, logical_date=DAY2)
    assert _ran(tally) == ["orders", "kpis"]
    # The table the first step read changed: it runs again; its output changed, so the next one too.
    _orders(runtime, [10.0, 20.0, 5.0])
    run_pipeline(runtime, daily, params, logical_date=DAY1)
    assert _ran(tally) == ["orders", "kpis"]
    # Turned off for one run.
    run_pipeline(runtime, daily, params, logical_date=DAY1, cache=False)
    assert _ran(tally) == ["orders", "kpis"]


def test_a_step_that_loaded_a_model_by_alias_runs_again_once_the_alias_points_elsewhere(
    runtime: Runtime,
) -> None:
    shop.raw_orders(runtime, [10.0, 20.0])
    for pipeline in (shop.ingest, shop.kpis, shop.train):
        assert run_pipeline(runtime, pipeline, logical_date=shop.DAY).succeeded
    first = run_pipeline(runtime, shop.score, logical_date=shop.DAY)
    again = run_pipeline(runtime, shop.score, logical_date=shop.DAY)
    assert StepResults(runtime).get(again.run_id)["predict"]["cached_from"] == first.run_id
    # A new version of the model is trained and promoted to production: the step loads it.
    assert run_pipeline(runtime, shop.train, logical_date=shop.DAY, cache=False).succeeded
    third = run_pipeline(runtime, shop.score, logical_date=shop.DAY)
    assert StepResults(runtime).get(third.run_id)["predict"]["cached_from"] is None
    [loaded] = [e for e in LineageStore(runtime.metadata).for_run(third.run_id) if e.kind == "model"]
    assert (loaded.name, loaded.version) == ("forecast", "2")


def test_a_cached_result_is_not_reused_once_the_partition_it_wrote_is_gone(
    runtime: Runtime, tmp_path: Path
) -> None:
    tally = tmp_path / "tally"
    _orders(runtime, [10.0])
    params = {"tally": str(tally)}
    run_pipeline(runtime, daily, params, logical_date=DAY1)
    _ran(tally)
    # Someone dropped the day's partition: the step that wrote it runs again and writes it back.
    lake = runtime.warehouse("shop").table("daily_kpis")
    lake.commit([], replace_partitions=[{"logical_date": "2026-11-01"}])
    assert lake.files() == []
    run_pipeline(runtime, daily, params, logical_date=DAY1)
    assert _ran(tally) == ["kpis"]
    assert _kpis(runtime) == [{"logical_date": "2026-11-01", "users": 1, "revenue": 10.0}]


def test_caching_works_across_processes(runtime: Runtime, tmp_path: Path) -> None:
    tally = tmp_path / "tally"
    _orders(runtime, [1.0, 2.0])
    params = {"tally": str(tally)}
    first = run_pipeline(runtime, daily, params, logical_date=DAY1, executor=SubprocessExecutor())
    assert first.succeeded, first.error
    assert _ran(tally) == ["orders", "kpis"]
    again = run_pipeline(runtime, daily, params, logical_date=DAY1, executor=SubprocessExecutor())
    assert again.succeeded and _ran(tally) == []
    assert _kpis(runtime) == [{"logical_date": "2026-11-01", "users": 2, "revenue": 3.0}]


def test_the_cache_key_follows_code_parameters_inputs_and_date() -> None:
    @step
    def scored(rows: int) -> int:
        return rows * 2

    base = cache_key(scored, {"rows": 3}, {}, None)
    assert base == cache_key(scored, {"rows": 3}, {}, None)
    assert base != cache_key(scored, {"rows": 4}, {}, None)
    assert base != cache_key(scored, {"rows": 3}, {"orders": "abc"}, None)
    assert base != cache_key(scored, {"rows": 3}, {}, DAY1)

    @step  # type: ignore[no-redef]
    def scored(rows: int) -> int:
        return rows * 3

    assert base != cache_key(scored, {"rows": 3}, {}, None)
