"""Runs started in processes of their own, as the API and UI start them: recorded first, run like CLI runs."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kawa.config import load_config
from kawa.pipelines import ParamError, Pipeline, RunRecord, RunStore, follow, step
from kawa.pipelines.background import BackgroundRuns
from kawa.pipelines.cache import StepResults
from kawa.pipelines.runner import record_run, run_recorded
from kawa.pipelines.runs import FINISHED
from kawa.runtime import Runtime
from tests.conftest import kawa

pytestmark = pytest.mark.slow

PIPELINES = """
import time
from pathlib import Path

from kawa.pipelines import Pipeline, step

@step
def numbers(upto: int) -> list[int]:
    print(f"counting to {upto}", flush=True)
    return list(range(upto))

@step
def total(numbers: list[int], gate: str) -> int:
    print("waiting for the gate", flush=True)
    while gate and not Path(gate).exists():
        time.sleep(0.05)
    print(f"total is {sum(numbers)}", flush=True)
    return sum(numbers)

daily = Pipeline("daily", steps=[numbers, total], params={"upto": 4, "gate": ""})
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Runtime, BackgroundRuns]]:
    kawa("init", "--project", "shop", cwd=tmp_path)
    (tmp_path / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
    runtime = Runtime(load_config(tmp_path / "kawa.yaml"))
    runs = BackgroundRuns(runtime.config)
    try:
        yield runtime, runs
    finally:
        runs.close()
        runtime.close()


def _daily(runtime: Runtime) -> Pipeline:
    from kawa.pipelines import find_pipeline

    return find_pipeline(runtime.config, "daily")


def _ended(runtime: Runtime, run_id: str, timeout: float = 60.0) -> RunRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = RunStore(runtime.metadata).get(run_id)
        if record is not None and record.status in FINISHED and record.message is not None:
            return record
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end within {timeout}s")


def test_a_run_is_recorded_at_once_and_runs_in_its_own_process(
    project: tuple[Runtime, BackgroundRuns], tmp_path: Path
) -> None:
    runtime, runs = project
    gate = tmp_path / "gate"
    record = runs.start(runtime, _daily(runtime), {"upto": "5", "gate": str(gate)}, experiment="ui")
    # start() came back while the step still waits for its gate: this process runs nothing.
    assert record.status == "queued" and record.kind == "manual" and record.experiment == "ui"
    assert record.params == {"upto": 5, "gate": str(gate)}
    assert runs.running() == [record.run_id]
    deadline = time.monotonic() + 30
    while "waiting for the gate" not in "".join(follow(runtime, record.run_id, live=False)):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.1)
    assert RunStore(runtime.metadata).get(record.run_id).status == "running"  # type: ignore[union-attr]
    gate.touch()
    ended = _ended(runtime, record.run_id)
    assert ended.status == "succeeded", ended.error
    assert [s.status for s in ended.steps] == ["succeeded", "succeeded"]
    assert "total is 10" in "".join(follow(runtime, record.run_id, live=False))
    assert ended.message is not None and ended.message["sent"]["status"] == "succeeded"
    assert ended.message["event_log"]["ok"] is True
    # Like `kawa pipeline run`: a second run with the same parameters reuses the unchanged steps.
    again = _ended(runtime, runs.rerun(runtime, _daily(runtime), ended).run_id)
    assert again.params == ended.params and again.experiment == "ui"
    assert StepResults(runtime).get(again.run_id)["numbers"]["cached_from"] == record.run_id
    deadline = time.monotonic() + 10
    while runs.running():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_bad_parameters_are_refused_before_anything_is_recorded(
    project: tuple[Runtime, BackgroundRuns],
) -> None:
    runtime, runs = project
    with pytest.raises(ParamError, match="parameter 'upto' takes a whole number"):
        runs.start(runtime, _daily(runtime), {"upto": "many"})
    with pytest.raises(ParamError, match="has no parameter 'days'"):
        runs.start(runtime, _daily(runtime), {"days": "3"})
    with pytest.raises(ValueError, match="experiment"):
        runs.start(runtime, _daily(runtime), experiment="")
    assert RunStore(runtime.metadata).list("shop") == []


def test_a_run_process_that_dies_ends_its_run_as_failed(
    project: tuple[Runtime, BackgroundRuns], tmp_path: Path
) -> None:
    runtime, runs = project
    record = runs.start(runtime, _daily(runtime), {"gate": str(tmp_path / "never")})
    deadline = time.monotonic() + 30
    while RunStore(runtime.metadata).get(record.run_id).status != "running":  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = runs.pid(record.run_id)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    ended = _ended(runtime, record.run_id)
    assert ended.status == "failed"
    assert ended.error is not None and "the run process exited with code -9" in ended.error
    assert ended.message is not None and ended.message["sent"]["status"] == "failed"
    (tmp_path / "never").touch()  # lets the killed run's step process end too


def test_stopping_asks_a_running_run_to_cancel(
    project: tuple[Runtime, BackgroundRuns], tmp_path: Path
) -> None:
    runtime, runs = project
    record = runs.start(runtime, _daily(runtime), {"gate": str(tmp_path / "never")})
    deadline = time.monotonic() + 30
    while "waiting for the gate" not in "".join(follow(runtime, record.run_id, live=False)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    runs.close()
    ended = _ended(runtime, record.run_id)
    assert ended.status == "cancelled" and ended.message is not None


def test_a_run_whose_pipeline_left_the_code_fails_with_its_message(
    project: tuple[Runtime, BackgroundRuns],
) -> None:
    runtime, runs = project

    @step
    def lonely() -> int:
        return 1

    gone = Pipeline("gone", steps=[lonely])
    record = runs.start(runtime, gone)
    ended = _ended(runtime, record.run_id)
    assert ended.status == "failed"
    assert ended.error is not None and "could not start: no pipeline named 'gone'" in ended.error
    assert [s.status for s in ended.steps] == ["skipped"]
    assert ended.message is not None and ended.message["sent"]["status"] == "failed"


def test_a_recorded_run_runs_later_with_its_recorded_parameters(runtime: Runtime) -> None:
    @step
    def doubled(n: int) -> int:
        return n * 2

    p = Pipeline("twice", steps=[doubled], params={"n": 1})
    record = record_run(runtime, p, {"n": "21"})
    assert record.status == "queued" and [s.status for s in record.steps] == ["queued"]
    ended = run_recorded(runtime, p, record)
    assert ended.run_id == record.run_id and ended.status == "succeeded"
    assert ended.params == {"n": 21}
