"""Parameter sweeps on a real local Ray cluster and on a local process pool: the best trial is found,
every trial runs once, in workers, not in the caller, and a failing trial is reported with its error
instead of ending the sweep. The swept function is defined here at the top level: workers import it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from kawa.config import Config, StoresConfig
from kawa.pipelines import Pipeline, RayExecutor, RunContext, SweepError, run_pipeline, step, sweep
from kawa.runtime import Runtime

if TYPE_CHECKING:
    from tests.services.ray import RayCluster

pytest_plugins = ["tests.services.ray"]

pytestmark = pytest.mark.slow

GRID = {"num_leaves": [0, 7, 15, 31], "learning_rate": [0.05, 0.1, 0.2]}
BEST = {"num_leaves": 15, "learning_rate": 0.1}


def trial(num_leaves: int, learning_rate: float, data: pa.Table, ran: str) -> dict[str, float]:
    """A stand-in for training: notes that it ran (and where), fails for num_leaves=0, scores the rest."""
    Path(ran, f"{num_leaves}-{learning_rate}-{uuid.uuid4().hex[:8]}").write_text(str(os.getpid()))
    if num_leaves < 2:
        raise ValueError(f"num_leaves must be at least 2, not {num_leaves}")
    target = data.column("num_leaves")[0].as_py()
    return {"auc": 1.0 - abs(num_leaves - target) / 100 - abs(learning_rate - 0.1), "rows": data.num_rows}


def runs_of(folder: Path) -> dict[str, list[int]]:
    """Parameter set -> the pids of the processes that ran it."""
    found: dict[str, list[int]] = {}
    for marker in folder.iterdir():
        found.setdefault(marker.name.rsplit("-", 1)[0], []).append(int(marker.read_text()))
    return found


@pytest.mark.parametrize("backend", ["ray", "local"])
def test_sweep_finds_the_best_trial_runs_each_once_and_reports_failures(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    cluster: RayCluster | None = request.getfixturevalue("ray_driver") if backend == "ray" else None
    data = pa.table({"num_leaves": [15] * 100})
    result = sweep(trial, GRID, inputs={"data": data, "ran": str(tmp_path)}, metric="auc", backend=backend)

    assert result.backend == backend
    assert result.best.params == BEST and result.best.value["rows"] == 100
    assert [t.params for t in result.trials] == [
        {"num_leaves": n, "learning_rate": lr} for n in GRID["num_leaves"] for lr in GRID["learning_rate"]
    ]
    failed = [t for t in result.trials if t.error is not None]
    assert [t.params["num_leaves"] for t in failed] == [0, 0, 0]
    assert all("ValueError: num_leaves must be at least 2, not 0" in (t.error or "") for t in failed)
    assert all(t.score is None for t in failed) and all(t.score is not None for t in result.trials[3:])
    ran = runs_of(tmp_path)
    assert sorted(ran) == sorted(f"{n}-{lr}" for n in GRID["num_leaves"] for lr in GRID["learning_rate"])
    assert all(len(pids) == 1 for pids in ran.values()), ran  # every trial once
    pids = {pid for (pid,) in ran.values()}
    assert os.getpid() not in pids  # in workers (how many of them took trials is up to the OS's scheduling)
    if cluster is not None:
        assert all(cluster.owns(pid) for pid in pids)


def test_a_sweep_where_every_trial_fails_says_so(tmp_path: Path) -> None:
    data = pa.table({"num_leaves": [15]})
    said = r"every trial of the sweep failed; the first \(\{'num_leaves': 0, .*\}\): ValueError: num_leaves"
    with pytest.raises(SweepError, match=said):
        sweep(
            trial, {"num_leaves": [0, 1], "learning_rate": [0.1]}, inputs={"data": data, "ran": str(tmp_path)}
        )
    with pytest.raises(SweepError, match="defined inside a function"):
        sweep(lambda x: x, {"x": [1]})
    with pytest.raises(SweepError, match="'num_leaves' must be a non-empty list"):
        sweep(trial, {"num_leaves": 7})


@step
def tuned(ctx: RunContext, ran: str) -> dict[str, Any]:
    result = ctx.sweep(trial, GRID, inputs={"data": pa.table({"num_leaves": [31]}), "ran": ran}, metric="auc")
    ctx.outputs["pid"] = os.getpid()
    ctx.outputs["sweep"] = {
        "backend": result.backend,
        "best": result.best.params,
        "trials": len(result.trials),
    }
    return result.best.params


def test_ctx_sweep_in_a_step_on_ray_runs_its_trials_as_ray_tasks(
    tmp_path: Path, ray_driver: RayCluster
) -> None:
    runtime = Runtime(Config(project="shop", root=str(tmp_path), stores=StoresConfig(executor="ray")))
    ran = tmp_path / "ran"
    ran.mkdir()
    try:
        record = run_pipeline(
            runtime,
            Pipeline("tuning", steps=[tuned], params={"ran": ""}),
            {"ran": str(ran)},
            executor=RayExecutor(),
        )
    finally:
        runtime.close()
    assert record.status == "succeeded", record.error
    assert record.steps[0].outputs["sweep"] == {
        "backend": "ray",
        "best": {"num_leaves": 31, "learning_rate": 0.1},
        "trials": 12,
    }
    ran_by = runs_of(ran)
    assert len(ran_by) == 12 and all(len(pids) == 1 for pids in ran_by.values()), ran_by
    pids = {pid for (pid,) in ran_by.values()}
    assert record.steps[0].outputs["pid"] not in pids  # tasks of their own, not the step's worker
    assert all(ray_driver.owns(pid) for pid in pids)
