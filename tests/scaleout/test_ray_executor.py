"""RayExecutor against a real local Ray cluster: steps as Ray tasks, their logs, timeouts and retries.

The end-to-end test moves a project onto Ray (and its metadata onto PostgreSQL, its online store onto
Redis) with kawa.yaml alone and runs a pipeline with `kawa pipeline run`; the others run pipelines in
this process through a `RayExecutor`, with steps defined here at the top level (the Ray workers import
this module again to find them).
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from kawa.config import Config, StoresConfig, load_config
from kawa.pipelines import (
    Pipeline,
    RayExecutor,
    RunContext,
    RunEvent,
    RunStore,
    SubprocessExecutor,
    executor_for,
    live_log_path,
    run_pipeline,
    step,
)
from kawa.runtime import Runtime
from kawa.serving.store import PredictionStore
from kawa.stores.online import open_online_store
from tests.conftest import kawa

if TYPE_CHECKING:
    from tests.services.ray import RayCluster

pytest_plugins = ["tests.services.ray", "tests.services.redis", "tests.services.postgres"]

pytestmark = pytest.mark.slow

PIPELINES = """
import logging
import os

import pyarrow as pa
import ray

from kawa.pipelines import Pipeline, RunContext, step
from kawa.serving.store import Prediction, PredictionStore, now_rfc3339


def where(ctx: RunContext) -> None:
    ctx.outputs["pid"] = os.getpid()
    ctx.outputs["parent_pid"] = os.getppid()
    ctx.outputs["ray_worker"] = ray.get_runtime_context().get_worker_id()
    ctx.outputs["assigned"] = ray.get_runtime_context().get_assigned_resources()


@step(cpus=1, memory="300MB")
def numbers(ctx: RunContext, n: int) -> pa.Table:
    where(ctx)
    print(f"making {n} numbers")
    return pa.table({"x": list(range(n))})


@step
def total(numbers: pa.Table, ctx: RunContext) -> int:
    where(ctx)
    logging.getLogger("shop.total").info("summing %d rows", numbers.num_rows)
    value = sum(numbers.column("x").to_pylist())
    ctx.log_metric("total", value)
    ctx.write_table("totals", pa.table({"total": [value]}), partition=ctx.logical_date)
    stamp = now_rfc3339()
    PredictionStore(ctx.online).put_many(ctx.project, "sum", [("all", Prediction(value, 1, stamp))])
    return value


small = Pipeline("small", steps=[numbers, total], params={"n": 20})
"""


def test_kawa_yaml_moves_pipeline_runs_onto_ray(
    tmp_path: Path, ray_cluster: RayCluster, postgres_url: str, redis_url: str
) -> None:
    kawa("init", "--project", "shop", cwd=tmp_path, env={"KAWA__STORES__METADATA": postgres_url})
    settings = yaml.safe_load((tmp_path / "kawa.yaml").read_text())
    settings["stores"] = {"metadata": postgres_url, "online": redis_url, "executor": "ray"}
    (tmp_path / "kawa.yaml").write_text(yaml.safe_dump(settings))
    (tmp_path / "pipelines.py").write_text(PIPELINES)

    env = {"RAY_ADDRESS": ray_cluster.address}
    ran = kawa("pipeline", "run", "small", "-p", "n=20", cwd=tmp_path, check=False, env=env)
    assert ran.returncode == 0 and "succeeded" in ran.stdout, ran.stdout + ran.stderr
    run_id = re.search(r"run (\S+) of pipeline small", ran.stdout)
    assert run_id is not None, ran.stdout
    logs = kawa("runs", "logs", run_id[1], cwd=tmp_path).stdout
    assert "making 20 numbers" in logs and "summing 20 rows" in logs, logs
    assert "alembic" not in logs, logs  # the worker's metadata migration check is not the step's output

    runtime = Runtime(load_config(tmp_path / "kawa.yaml", env={}))
    try:
        record = RunStore(runtime.metadata).get(run_id[1])
        assert record is not None and record.status == "succeeded", record
        assert record.metrics == {"total": 190.0}
        steps = {s.step: s.outputs for s in record.steps}
        # Each step ran in a Ray worker process of this cluster (a fresh one each), none in the CLI.
        assert steps["numbers"]["pid"] != steps["total"]["pid"]
        for outputs in steps.values():
            assert re.fullmatch(r"[0-9a-f]{40,}", outputs["ray_worker"]), outputs
            assert ray_cluster.owns(outputs["parent_pid"]), outputs
        # Placed by its hints: one CPU; Ray's memory resource is the hint in bytes.
        assert steps["numbers"]["assigned"] == {"CPU": 1.0, "memory": 300_000_000.0}
        rows = runtime.warehouse("shop").query("SELECT total FROM totals").to_pylist()
        assert rows == [{"total": 190}]
    finally:
        runtime.close()
    with open_online_store(redis_url, tmp_path) as online:
        stored = PredictionStore(online).get("shop", "sum", "all")
    assert stored is not None and stored.score == 190


# -- steps run in this process's pipelines (top level: the Ray workers import them by name) --------


@step(timeout_s=3)
def sleepy(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    print("going to sleep", flush=True)
    time.sleep(120)


@step(retries=1, retry_backoff_s=0)
def flaky(marker: str, ctx: RunContext) -> str:
    ctx.log_metric("attempt_pid", os.getpid())
    if not Path(marker).exists():
        Path(marker).write_text("failed once")
        raise RuntimeError("first attempt fails on purpose")
    print("second attempt works")
    return "done"


@step(gpu=4)
def greedy() -> None:
    pass


def _wait_for_text(path: Path, text: str, seen: list[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text(errors="replace"):
            seen.append(text)
            return
        time.sleep(0.05)


def _runtime(root: Path) -> Runtime:
    return Runtime(Config(project="shop", root=str(root)))


def test_timeout_stops_the_worker_and_retries_run_again(tmp_path: Path, ray_driver: RayCluster) -> None:
    runtime = _runtime(tmp_path)
    executor = RayExecutor(ray_driver.address)
    try:
        pid_file = tmp_path / "sleepy.pid"
        started = time.monotonic()
        seen_live: list[str] = []

        def watch(event: RunEvent) -> None:
            # While the step sleeps in its worker, what it printed is already in the run's live log.
            if event.kind == "step_started":
                live = live_log_path(runtime.state_path, event.run_id, "sleepy")
                threading.Thread(target=_wait_for_text, args=(live, "going to sleep", seen_live)).start()

        record = run_pipeline(
            runtime,
            Pipeline("sleeps", steps=[sleepy], params={"pid_file": ""}),
            {"pid_file": str(pid_file)},
            executor=executor,
            on_event=watch,
        )
        assert record.status == "timeout", record.error
        assert seen_live == ["going to sleep"], "the step's output did not reach the live log while it ran"
        assert time.monotonic() - started < 60
        assert "ran for longer than its timeout of 3s" in (record.error or "")
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # ray.cancel(force=True) ends the worker process that ran it
        assert not Path(f"/proc/{pid}").exists(), "the timed-out step's worker is still running"
        log = runtime.artifacts.get_bytes(f"runs/{record.run_id}/sleepy.log").decode()
        assert "going to sleep" in log and "timeout" in log

        marker = tmp_path / "marker"
        record = run_pipeline(
            runtime,
            Pipeline("retries", steps=[flaky], params={"marker": ""}),
            {"marker": str(marker)},
            executor=executor,
        )
        assert record.status == "succeeded", record.error
        log = runtime.artifacts.get_bytes(f"runs/{record.run_id}/flaky.log").decode()
        assert "first attempt fails on purpose" in log and "second attempt works" in log
        assert "--- attempt 2 of 2 ---" in log

        # A step whose hints no node can hold fails at once instead of waiting forever.
        record = run_pipeline(runtime, Pipeline("greedy", steps=[greedy]), executor=executor)
        assert record.status == "failed" and "GPU=4" in (record.error or ""), record.error
    finally:
        runtime.close()


def test_executor_for_follows_kawa_yaml() -> None:
    assert isinstance(executor_for(Config()), SubprocessExecutor)
    on_ray = executor_for(Config(stores=StoresConfig(executor="ray")))
    assert isinstance(on_ray, RayExecutor) and on_ray.address == "auto"
    client = executor_for(Config(stores=StoresConfig(executor="ray://10.0.0.5:10001")))
    assert isinstance(client, RayExecutor) and client.address == "ray://10.0.0.5:10001"
    with pytest.raises(ValueError, match="not one of: local"):
        executor_for(Config(stores=StoresConfig(executor="dask")))
