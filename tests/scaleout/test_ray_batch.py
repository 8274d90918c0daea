"""Batch prediction split over a lake table's Parquet files across Ray tasks, on a real local Ray cluster.

The same scores as `batch_predict` for the same bundle and rows; a worker killed with SIGKILL in the
middle of a job costs a retry, never a lost or doubled row; `kawa predict --table` takes the Ray path
when kawa.yaml's `stores.executor` says `ray`.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pytest
import yaml
from lightgbm import LGBMClassifier

from kawa.config import load_config
from kawa.lineage.store import LineageStore
from kawa.models import Bundle, Registry
from kawa.pipelines import Pipeline, RayExecutor, RunContext, run_pipeline, step
from kawa.runtime import Runtime
from kawa.serving.batch import BatchPredictError, BatchResult, batch_predict
from kawa.serving.distributed import TASK_NAME, distributed_batch_predict, plan, predict_table
from kawa.serving.store import PredictionStore, namespace
from kawa.warehouse.load import write_table
from tests.conftest import kawa

if TYPE_CHECKING:
    from tests.services.ray import RayCluster

pytest_plugins = ["tests.services.ray"]

pytestmark = pytest.mark.slow

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
ROWS_PER_DAY = 20_000  # a Parquet file per day; the tests cut them into tasks of a few thousand rows
RUN_DATE = date(2026, 3, 5)


def visitors(day: int, rows: int) -> pa.Table:
    """One day's visitors: a unique user_id each, an age, a medium and a number of visits."""
    rng = np.random.default_rng(day)
    return pa.table(
        {
            "user_id": [f"u{day}-{i}" for i in range(rows)],
            "age": rng.integers(18, 80, rows),
            "media": rng.choice(["Twitter", "TV", "Radio", "Search"], rows),
            "visits": rng.poisson(3.0, rows).astype(np.float64),
        }
    )


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """A project with the `visitors` table (a file per day) and model `buyer` (LightGBM) in production."""
    root = tmp_path_factory.mktemp("shop")
    (root / "kawa.yaml").write_text(yaml.safe_dump({"project": "shop", "stores": {"executor": "ray"}}))
    runtime = Runtime(load_config(root / "kawa.yaml", env={}))
    warehouse = runtime.warehouse("shop")
    for i, day in enumerate(DAYS):
        write_table(warehouse, "visitors", visitors(i, ROWS_PER_DAY), partition={"day": day})
    train = visitors(99, 2_000)
    # A noisy label, so that the model's scores spread over many values.
    chance = (train.column("age").to_numpy() - 18) / 80 * train.column("visits").to_numpy() / 6
    bought = pa.array(np.random.default_rng(7).random(train.num_rows) < chance)
    train = train.drop_columns(["user_id"]).append_column("bought", bought.cast(pa.int64()))
    estimator = LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1)
    bundle = Bundle.fit(train, label="bought", estimator=estimator)
    with Registry.from_runtime(runtime) as registry:
        registry.register("shop", "buyer", bundle)
        registry.promote("shop", "buyer", 1)
    yield runtime
    runtime.close()


@pytest.fixture
def registry(shop: Runtime) -> Iterator[Registry]:
    with Registry.from_runtime(shop) as reg:
        yield reg


def scores(runtime: Runtime, table: str) -> dict[str, float]:
    """user_id -> score of the RUN_DATE partition of `table`; fails on a user_id seen twice."""
    rows = (
        runtime.warehouse("shop")
        .query(f"SELECT user_id, score FROM {table} WHERE run_date = '{RUN_DATE}'")
        .to_pylist()
    )
    found = {r["user_id"]: r["score"] for r in rows}
    assert len(found) == len(rows), f"{len(rows) - len(found)} rows of {table} repeat a user_id"
    return found


def part_files(runtime: Runtime, table: str) -> list[str]:
    manifest = runtime.warehouse("shop").table(table).manifest()
    return [f.path for f in manifest.files if f.partition == {"run_date": RUN_DATE.isoformat()}]


def test_same_scores_as_batch_predict_split_over_tasks(
    shop: Runtime, registry: Registry, ray_driver: RayCluster
) -> None:
    warehouse = shop.warehouse("shop")
    common: dict[str, Any] = {"entity": "user_id", "run_date": RUN_DATE}
    here = predict_table(warehouse, registry, "buyer", "visitors", executor="local", output="here", **common)
    on_ray = predict_table(
        warehouse,
        registry,
        "buyer",
        "visitors",
        executor="ray",
        output="on_ray",
        rows_per_task=15_000,
        **common,
    )
    assert here.rows == on_ray.rows == len(DAYS) * ROWS_PER_DAY
    expected, got = scores(shop, "here"), scores(shop, "on_ray")
    assert got.keys() == expected.keys()
    assert np.allclose([got[k] for k in expected], list(expected.values()), rtol=0, atol=1e-12)
    assert len(set(expected.values())) > 10  # a model that says one thing for everyone proves nothing
    # 20,000-row files cut into tasks of at most 15,000 rows (a file is cut at its row groups: one here).
    groups = plan(warehouse.table("visitors"), None, 15_000)
    assert len(groups) == len(DAYS)
    assert len(part_files(shop, "on_ray")) == len(groups)
    # The row-by-row query and a partition of the input, as `batch_predict` reads them with SQL.
    query = "SELECT user_id, age + 1 AS age, media, visits FROM visitors WHERE visits > 2"
    one_day = {"day": DAYS[1]}
    distributed_batch_predict(
        warehouse, registry, "buyer", "visitors", query=query, partition=one_day, output="on_ray", **common
    )
    batch_predict(warehouse, registry, "buyer", f"{query} AND day = '{DAYS[1]}'", output="here", **common)
    expected, got = scores(shop, "here"), scores(shop, "on_ray")
    assert 0 < len(got) < ROWS_PER_DAY and got.keys() == expected.keys()
    assert np.allclose([got[k] for k in expected], list(expected.values()), rtol=0, atol=1e-12)
    # The rerun replaced the partition: only the new job's file is listed.
    assert len(part_files(shop, "on_ray")) == 1

    with pytest.raises(BatchPredictError, match="no column 'customer'"):
        distributed_batch_predict(warehouse, registry, "buyer", "visitors", entity="customer", output="bad")
    assert "bad" not in warehouse.tables()
    assert not list(warehouse.table("bad").path.rglob("*.parquet*")), "a failed job left files behind"


def test_killed_worker_every_row_predicted_once(
    shop: Runtime, registry: Registry, ray_driver: RayCluster
) -> None:
    warehouse = shop.warehouse("shop")
    store = PredictionStore(shop.online)
    outcome: dict[str, Any] = {}

    def job() -> None:
        try:
            outcome["result"] = distributed_batch_predict(
                warehouse, registry, "buyer", "visitors", entity="user_id", output="killed",
                run_date=RUN_DATE, store=store, rows_per_task=5_000,
            )  # fmt: skip
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    worker = threading.Thread(target=job)
    worker.start()
    killed: list[int] = []
    deadline = time.monotonic() + 60
    while not killed and worker.is_alive() and time.monotonic() < deadline:
        for pid in ray_driver.task_pids(TASK_NAME):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            break
        time.sleep(0.01)
    still_running = worker.is_alive()
    worker.join(timeout=180)
    assert killed and still_running, "no batch prediction task was seen running to be killed"
    assert not Path(f"/proc/{killed[0]}").exists()
    assert "error" not in outcome, outcome.get("error")
    result: BatchResult = outcome["result"]

    total = len(DAYS) * ROWS_PER_DAY
    assert result.rows == total and result.published == total
    count, distinct = (
        warehouse.query(
            "SELECT count(*), count(DISTINCT user_id) FROM killed WHERE run_date = ?", [RUN_DATE.isoformat()]
        )
        .to_pylist()[0]
        .values()
    )
    assert (count, distinct) == (total, total)
    files = part_files(shop, "killed")
    assert len(files) == len(plan(warehouse.table("visitors"), None, 5_000)) == len(DAYS)
    # Nothing half-written is left beside the parts (the killed task's temporary file is removed).
    folder = warehouse.table("killed").path / f"run_date={RUN_DATE}"
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(f).name for f in files)
    stored = dict(shop.online.scan(namespace("shop", "buyer")))
    assert len(stored) == total
    expected = scores(shop, "killed")
    some = sorted(expected)[:: total // 50]
    assert all(store.get("shop", "buyer", k).score == expected[k] for k in some)  # type: ignore[union-attr]


@step
def score_visitors(ctx: RunContext) -> int:
    options: dict[str, Any] = {"output": "from_step", "run_date": RUN_DATE, "rows_per_task": ROWS_PER_DAY}
    return ctx.predict_table("buyer", "visitors", entity="user_id", **options).rows


def test_a_step_on_ray_scores_a_table_over_ray_tasks(shop: Runtime, ray_driver: RayCluster) -> None:
    record = run_pipeline(shop, Pipeline("scoring", steps=[score_visitors]), executor=RayExecutor())
    assert record.status == "succeeded", record.error
    assert len(scores(shop, "from_step")) == len(DAYS) * ROWS_PER_DAY
    # Tasks started from the step's own task wrote it (the embedded path writes one `write-` file).
    files = part_files(shop, "from_step")
    assert len(files) == len(DAYS) and all(Path(f).name.startswith("part-") for f in files)
    edges = LineageStore(shop.metadata).for_run(record.run_id)
    lineage = {(e.direction, e.kind, e.name) for e in edges}
    assert {
        ("read", "table", "visitors"),
        ("read", "model", "buyer"),
        ("write", "table", "from_step"),
    } <= lineage


def test_kawa_predict_table_runs_on_ray_when_kawa_yaml_says_so(shop: Runtime, ray_driver: RayCluster) -> None:
    ran = kawa(
        "predict", "buyer", "--table", "visitors", "--output", "from_cli", "--run-date", RUN_DATE.isoformat(),
        "--no-publish", cwd=Path(shop.config.root), env={"RAY_ADDRESS": ray_driver.address},
    )  # fmt: skip
    assert f"scored {len(DAYS) * ROWS_PER_DAY:,} rows with buyer v1 into from_cli" in ran.stdout, ran.stdout
    # Written by Ray tasks: a part file per group of the plan (the embedded path writes one file).
    groups = plan(shop.warehouse("shop").table("visitors"), None, 250_000)
    assert [Path(f).name.startswith("part-") for f in part_files(shop, "from_cli")] == [True] * len(groups)
    assert len(scores(shop, "from_cli")) == len(DAYS) * ROWS_PER_DAY
