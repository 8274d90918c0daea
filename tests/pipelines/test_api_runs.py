"""The runs API of a real `kawa serve`: runs, one run, and its logs streamed live while a step runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kawa.config import load_config
from kawa.pipelines import RunRecord, RunStore, SubprocessExecutor, run_pipeline
from kawa.runtime import Runtime
from tests.conftest import Server
from tests.pipelines.test_subprocess import values, watched


@pytest.fixture(scope="module")
def runtime(server: Server) -> Iterator[Runtime]:
    rt = Runtime(load_config(server.root / "kawa.yaml", env={"KAWA__SERVER__PORT": str(server.port)}))
    try:
        yield rt
    finally:
        rt.close()


def test_runs_are_listed_and_shown_with_their_steps(server: Server, runtime: Runtime) -> None:
    record = run_pipeline(runtime, values, executor=SubprocessExecutor())
    assert record.succeeded, record.error
    with server.client("read") as client:
        listed = client.get("/v1/runs", params={"pipeline": "values"}).json()["runs"]
        assert [r["run_id"] for r in listed] == [record.run_id]
        assert listed[0]["status"] == "succeeded" and listed[0]["metrics"] == {"total": 16.0}
        shown = client.get(f"/v1/runs/{record.run_id[:16]}").json()
    assert shown["run_id"] == record.run_id
    steps = {s["step"]: s for s in shown["steps"]}
    assert list(steps) == ["table", "frame", "summary", "users", "check"]
    assert steps["table"]["status"] == "succeeded" and steps["table"]["attempts"] == 1
    assert steps["table"]["output"]["kind"] == "arrow" and steps["table"]["cached_from"] is None
    logs = httpx.get(
        f"{server.url}/v1/runs/{record.run_id}/logs",
        params={"step": "table"},
        headers={"Authorization": f"Bearer {server.keys['read_key']}"},
    )
    assert logs.status_code == 200 and logs.headers["content-type"].startswith("text/plain")
    assert logs.text.startswith("== table (succeeded)\n") and "making a table" in logs.text


def test_keys_of_another_role_or_project_do_not_see_runs(server: Server, runtime: Runtime) -> None:
    record = RunStore(runtime.metadata).list(server.project, limit=1)
    run_id = record[0].run_id if record else "0" * 20
    with server.client("write") as client:
        assert client.get("/v1/runs").status_code == 403
    other = server.add_project("other")
    headers = {"Authorization": f"Bearer {other['read_key']}"}
    assert httpx.get(f"{server.url}/v1/runs/{run_id}", headers=headers).status_code == 404
    assert httpx.get(f"{server.url}/v1/runs", headers=headers).json() == {"runs": []}


def test_the_logs_of_a_running_step_stream_live(server: Server, runtime: Runtime, tmp_path: Any) -> None:
    gate = tmp_path / "gate"
    finished: list[RunRecord] = []
    worker = threading.Thread(
        target=lambda: finished.append(
            run_pipeline(runtime, watched, {"gate": str(gate)}, executor=SubprocessExecutor())
        )
    )
    worker.start()
    try:
        deadline = time.monotonic() + 20
        runs = RunStore(runtime.metadata).list(server.project, pipeline="watched")
        while not runs and time.monotonic() < deadline:
            time.sleep(0.05)
            runs = RunStore(runtime.metadata).list(server.project, pipeline="watched")
        seen = ""
        headers = {"Authorization": f"Bearer {server.keys['read_key']}"}
        url = f"{server.url}/v1/runs/{runs[0].run_id}/logs"
        with httpx.stream("GET", url, params={"follow": "true"}, headers=headers, timeout=60) as response:
            assert response.status_code == 200
            for chunk in response.iter_text():
                seen += chunk
                if "first line" in seen and not gate.exists():
                    assert not finished  # the step still runs: this came live
                    gate.touch()
        assert seen.startswith("== chatty (running)\n") and seen.index("first line") < seen.index("last line")
    finally:
        gate.touch()
        worker.join(30)
    assert finished and finished[0].succeeded
