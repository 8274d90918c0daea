"""SubprocessExecutor: steps in their own process, values across the boundary, timeouts, limits, live logs."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from kawa.pipelines import (
    Pipeline,
    RunContext,
    RunStore,
    SubprocessExecutor,
    follow,
    live_log_path,
    log_path,
    run_pipeline,
    step,
)
from kawa.pipelines.cache import StepResults
from kawa.runtime import Runtime

# -- steps (top level: the child process imports them again by module and name) ---------------------


@step
def table() -> pa.Table:
    print("making a table")
    os.write(1, b"written by the C-level stdout\n")
    logging.getLogger("shop.table").info("three rows")
    return pa.table({"user_id": ["a", "b", "c"], "spend": [1.5, 2.0, 4.5]})


@step
def frame(table: pa.Table) -> pd.DataFrame:
    assert isinstance(table, pa.Table), type(table)
    return table.to_pandas().assign(double=lambda f: f.spend * 2)


@step
def summary(frame: pd.DataFrame, ctx: RunContext) -> dict[str, Any]:
    assert isinstance(frame, pd.DataFrame), type(frame)
    ctx.log_metric("total", float(frame.double.sum()))
    ctx.log_artifact("notes.txt", "from the child")
    ctx.outputs["tables"] = ["spend_summary"]
    return {"pid": os.getpid(), "users": sorted(frame.user_id)}


@step
def users(summary: dict[str, Any]) -> set[str]:
    return set(summary["users"])  # not JSON: crosses as a pickle


@step
def check(users: set[str], summary: dict[str, Any]) -> int:
    assert users == {"a", "b", "c"}
    return int(summary["pid"])


values = Pipeline("values", steps=[table, frame, summary, users, check])


@step
def sleeper(seconds: float) -> None:
    print("going to sleep", flush=True)
    time.sleep(seconds)


@step(timeout_s=1.0)
def slow(sleeper: None) -> None:
    time.sleep(60)


sleepy = Pipeline("sleepy", steps=[sleeper, slow], params={"seconds": 0.0})


@step(retries=2, retry_backoff_s=0.05)
def flaky(marker: str) -> str:
    path = Path(marker)
    tries = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(tries))
    print(f"try {tries}")
    if tries < 2:
        raise ConnectionError("the warehouse went away")
    return "ok"


retrying = Pipeline("retrying", steps=[flaky], params={"marker": ""})


@step(cpus=1, gpu=0)
def narrow() -> dict[str, Any]:
    return {
        "cpus": sorted(os.sched_getaffinity(0)),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


@step(gpu=1)
def one_gpu() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


hinted = Pipeline("hinted", steps=[narrow, one_gpu])


@step(memory="150MB")
def hungry() -> None:
    block = bytearray(400_000_000)  # zero pages are not resident until touched
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(30)


greedy = Pipeline("greedy", steps=[hungry])


@step
def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


crashing = Pipeline("crashing", steps=[crash])


@step
def chatty(gate: str) -> None:
    print("first line", flush=True)
    deadline = time.monotonic() + 30
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print("last line", flush=True)


watched = Pipeline("watched", steps=[chatty], params={"gate": ""})

# -- tests --------------------------------------------------------------------------------------------


def test_each_step_runs_in_its_own_process_and_values_cross_as_files(runtime: Runtime) -> None:
    record = run_pipeline(runtime, values, executor=SubprocessExecutor())
    assert record.status == "succeeded", record.error
    results = StepResults(runtime).get(record.run_id)
    kinds = {name: r["output"]["kind"] for name, r in results.items()}
    assert kinds == {
        "table": "arrow",
        "frame": "pandas",
        "summary": "json",
        "users": "pickle",
        "check": "json",
    }
    from kawa.pipelines import handoff

    pid = handoff.load(runtime.artifacts, handoff.StoredValue.from_json(results["check"]["output"]))
    assert pid != os.getpid()
    # What the step recorded on its context in the child came back to the run's record.
    assert record.metrics == {"total": 16.0}
    assert record.artifacts == [f"runs/{record.run_id}/artifacts/notes.txt"]
    assert runtime.artifacts.get_bytes(record.artifacts[0]) == b"from the child"
    by_name = {s.step: s for s in record.steps}
    assert by_name["summary"].outputs == {"tables": ["spend_summary"]}
    log = runtime.artifacts.get_bytes(log_path(record.run_id, "table")).decode()
    assert "making a table" in log and "written by the C-level stdout" in log
    assert "INFO shop.table: three rows" in log
    # The live files (and their folder) are gone once the logs are kept in the artifact store.
    assert not live_log_path(runtime.state_path, record.run_id, "table").parent.exists()


def test_a_step_past_its_timeout_is_stopped_and_the_run_ends_as_timeout(runtime: Runtime) -> None:
    started = time.monotonic()
    record = run_pipeline(runtime, sleepy, executor=SubprocessExecutor())
    assert time.monotonic() - started < 60  # stopped: the step itself would sleep 60 s
    assert record.status == "timeout"
    assert [(s.step, s.status) for s in record.steps] == [("sleeper", "succeeded"), ("slow", "timeout")]
    assert record.error is not None and "longer than its timeout of 1s" in record.error
    assert record.message is not None and record.message["sent"]["status"] == "timeout"


def test_a_failed_attempt_is_retried_with_backoff(runtime: Runtime, tmp_path: Path) -> None:
    marker = tmp_path / "tries"
    record = run_pipeline(runtime, retrying, {"marker": str(marker)}, executor=SubprocessExecutor())
    assert record.status == "succeeded", record.error
    assert marker.read_text() == "2"
    assert StepResults(runtime).get(record.run_id)["flaky"]["attempts"] == 2
    log = runtime.artifacts.get_bytes(log_path(record.run_id, "flaky")).decode()
    assert "try 1" in log and "ConnectionError: the warehouse went away" in log
    assert "--- attempt 2 of 3 ---" in log and "try 2" in log


def test_retries_run_out(runtime: Runtime, tmp_path: Path) -> None:
    marker = tmp_path / "tries"
    marker.write_text("-5")  # every attempt fails
    record = run_pipeline(runtime, retrying, {"marker": str(marker)}, executor=SubprocessExecutor())
    assert record.status == "failed" and marker.read_text() == "-2"
    assert StepResults(runtime).get(record.run_id)["flaky"]["attempts"] == 3


def test_cpu_and_gpu_hints_shape_the_step_process(runtime: Runtime) -> None:
    record = run_pipeline(runtime, hinted, executor=SubprocessExecutor())
    assert record.status == "succeeded", record.error
    results = StepResults(runtime).get(record.run_id)
    from kawa.pipelines import handoff

    seen = handoff.load(runtime.artifacts, handoff.StoredValue.from_json(results["narrow"]["output"]))
    assert len(seen["cpus"]) == 1 and seen["omp"] == "1" and seen["cuda"] == ""
    gpus = handoff.load(runtime.artifacts, handoff.StoredValue.from_json(results["one_gpu"]["output"]))
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    assert gpus == (visible[0] if visible else "0")
    recorded = {s.step: s.resources for s in record.steps}
    assert recorded == {"narrow": {"cpus": 1, "gpu": 0}, "one_gpu": {"gpu": 1}}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory watchdog reads /proc")
def test_a_step_over_its_memory_hint_is_stopped(runtime: Runtime) -> None:
    started = time.monotonic()
    record = run_pipeline(runtime, greedy, executor=SubprocessExecutor())
    assert time.monotonic() - started < 30  # stopped: the step itself would sleep 30 s after its allocation
    assert record.status == "failed"
    assert record.error is not None and "over its memory hint of 150MB" in record.error


def test_a_step_process_that_dies_fails_the_step_with_the_reason(runtime: Runtime) -> None:
    record = run_pipeline(runtime, crashing, executor=SubprocessExecutor())
    assert record.status == "failed"
    assert record.error is not None and "was killed by signal SIGKILL" in record.error


def test_a_step_defined_inside_a_function_is_refused_with_what_to_do(runtime: Runtime) -> None:
    @step
    def local() -> int:
        return 1

    record = run_pipeline(runtime, Pipeline("local", steps=[local]), executor=SubprocessExecutor())
    assert record.status == "failed"
    assert record.error is not None and "top level of a module" in record.error


def test_the_log_of_a_running_step_can_be_followed_live(runtime: Runtime, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    finished: list[Any] = []
    worker = threading.Thread(
        target=lambda: finished.append(
            run_pipeline(runtime, watched, {"gate": str(gate)}, executor=SubprocessExecutor())
        )
    )
    worker.start()
    try:
        deadline = time.monotonic() + 20
        runs = RunStore(runtime.metadata).list("shop", pipeline="watched")
        while not runs and time.monotonic() < deadline:
            time.sleep(0.05)
            runs = RunStore(runtime.metadata).list("shop", pipeline="watched")
        seen = ""
        for text in follow(runtime, runs[0].run_id, poll_s=0.05, timeout_s=30):
            seen += text
            if "first line" in seen and not gate.exists():
                # The step is still running (it waits for the gate): its output arrived live.
                assert not finished
                gate.touch()
        assert seen.startswith("== chatty (running)\n")
        assert seen.index("first line") < seen.index("last line")
    finally:
        gate.touch()
        worker.join(30)
    assert finished and finished[0].status == "succeeded"
    # Read again after the end: the stored log, with the step's final status.
    again = "".join(follow(runtime, finished[0].run_id, live=False))
    assert again.startswith("== chatty (succeeded)\n") and "first line\n" in again and "last line\n" in again
