"""The pipelines API of a real `kawa serve`: listing, starting a run in its own process, rerunning, paging."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.slow

PIPELINES = """
import time
from pathlib import Path

import pyarrow as pa

from kawa.pipelines import Pipeline, RunContext, step
from kawa.schedule import Schedule


@step
def base(scale: float) -> float:
    \"\"\"The score of the best user.\"\"\"
    return 0.5 * scale


@step
def scores(ctx: RunContext, base: float, gate: str) -> int:
    print(f"scoring from {base}", flush=True)
    while gate and not Path(gate).exists():
        time.sleep(0.05)
    table = pa.table({"user_id": ["a", "b"], "score": [base, base / 2]})
    ctx.write_table("scores", table)
    ctx.log_metric("rows", table.num_rows)
    return table.num_rows


@step
def summary(ctx: RunContext, scores: int) -> int:
    top = ctx.warehouse.query("SELECT max(score) AS m FROM scores").column("m")[0].as_py()
    ctx.log_metric("top", top)
    ctx.outputs["tables"] = ["scores"]
    return scores


scoring = Pipeline(
    "scoring", steps=[base, scores, summary], params={"scale": 1.0, "gate": ""}, description="Scores users"
)
nightly = Pipeline(
    "nightly", steps=[base], params={"scale": 2.0}, schedule=Schedule(start="2099-01-01T02:00", every="1d")
)
"""

FINISHED = {"succeeded", "failed", "timeout", "cancelled"}


@pytest.fixture(scope="module")
def served(server: Server) -> Server:
    (server.root / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
    return server


def _ended(client: httpx.Client, run_id: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if run["status"] in FINISHED and run["message"] is not None:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end within {timeout}s")


def test_pipelines_are_listed_with_steps_parameters_and_schedules(served: Server) -> None:
    with served.client("read") as client:
        found = client.get("/v1/pipelines").json()["pipelines"]
        one = client.get("/v1/pipelines/scoring")
        missing = client.get("/v1/pipelines/nothing")
    by_name = {p["name"]: p for p in found}
    assert sorted(by_name) == ["nightly", "scoring"]
    scoring = by_name["scoring"]
    assert scoring["description"] == "Scores users"
    assert [s["name"] for s in scoring["steps"]] == ["base", "scores", "summary"]
    assert scoring["edges"] == [["base", "scores"], ["scores", "summary"]]
    assert scoring["params"][0] == {"name": "scale", "default": 1.0, "kind": "float", "text": "1.0"}
    assert scoring["steps"][0]["description"] == "The score of the best user."
    assert scoring["schedule"] is None
    schedule = by_name["nightly"]["schedule"]
    assert schedule["next_run"].startswith("2099-01-01T02:00")
    # kawa serve's scheduler deploys a schedule it finds in the code within a tick of the file's change.
    assert schedule["status"] in ("not deployed", "active")
    deadline = time.monotonic() + 30
    with served.client("read") as client:
        while schedule["status"] != "active":
            assert time.monotonic() < deadline, f"the scheduler did not deploy nightly: {schedule}"
            time.sleep(0.2)
            schedule = client.get("/v1/pipelines/nightly").json()["schedule"]
    assert schedule["next_run"].startswith("2099-01-01T02:00")
    assert one.status_code == 200 and one.json()["name"] == "scoring"
    assert missing.status_code == 404 and "pipelines: nightly, scoring" in missing.json()["error"]


def test_a_run_starts_at_once_in_its_own_process_and_ends_like_a_cli_run(
    served: Server, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    with served.client("admin") as client:
        started = client.post(
            "/v1/pipelines/scoring/runs",
            json={"params": {"scale": "4", "gate": str(gate)}, "experiment": "ui-test"},
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        assert started.headers["location"] == f"/v1/runs/{run_id}"
        assert started.json()["params"] == {"scale": 4.0, "gate": str(gate)}
        # The answer came while a step still waits for its gate: the API process runs no step.
        waiting = client.get(f"/v1/runs/{run_id}").json()
        assert waiting["status"] in ("queued", "running") and waiting["kind"] == "manual"
        deadline = time.monotonic() + 60
        while "scoring from 2.0" not in client.get(f"/v1/runs/{run_id}/logs").text:
            assert time.monotonic() < deadline, "the scores step never started"
            time.sleep(0.2)
        gate.touch()
        run = _ended(client, run_id)
        assert run["status"] == "succeeded", run["error"]
        assert run["experiment"] == "ui-test" and run["params"] == {"scale": 4.0, "gate": str(gate)}
        assert [s["status"] for s in run["steps"]] == ["succeeded"] * 3
        assert run["metrics"] == {"rows": 2, "top": 2.0}
        assert run["message"]["sent"]["status"] == "succeeded" and run["message"]["event_log"]["ok"]
        listed = client.get("/v1/runs", params={"pipeline": "scoring", "experiment": "ui-test"}).json()
        assert run_id in [r["run_id"] for r in listed["runs"]]
        # Lineage is recorded as for any run: what its steps wrote and read.
        written = client.get("/v1/lineage/scores").json()
        assert [p["pipeline"] for p in written["written_by"]] == ["scoring"]
        touching = client.get("/v1/lineage/scores/runs").json()
        assert touching["runs"][0]["run_id"] == run_id
        assert touching["runs"][0]["directions"] == ["read", "write"]
        graph = client.get("/v1/lineage").json()
        edges = {(e["source"], e["target"], e["direction"]) for e in graph["edges"]}
        assert ("pipeline:scoring", "table:scores", "write") in edges
        assert ("table:scores", "pipeline:scoring", "read") in edges
        assert {"id": "table:scores", "kind": "table", "name": "scores"} in graph["nodes"]
        # And the cache holds as for CLI runs: the unchanged first step is reused.
        second = client.post("/v1/pipelines/scoring/runs", json={"params": {"scale": 4}})
        assert second.status_code == 202
        again = _ended(client, second.json()["run_id"])
        assert again["experiment"] == "default" and again["status"] == "succeeded"
        assert again["steps"][0]["cached_from"] == run_id


def test_bad_starts_are_refused_and_record_nothing(served: Server) -> None:
    with served.client("admin") as client:
        before = client.get("/v1/runs").headers["x-total-count"]
        unknown = client.post("/v1/pipelines/scoring/runs", json={"params": {"days": 3}})
        malformed = client.post("/v1/pipelines/scoring/runs", json={"params": {"scale": "big"}})
        wrong_type = client.post("/v1/pipelines/scoring/runs", json={"params": {"scale": [1]}})
        no_name = client.post("/v1/pipelines/scoring/runs", json={"experiment": ""})
        missing = client.post("/v1/pipelines/nothing/runs", json={})
        after = client.get("/v1/runs").headers["x-total-count"]
    assert (
        unknown.status_code == 400 and "pipeline 'scoring' has no parameter 'days'" in unknown.json()["error"]
    )
    assert malformed.status_code == 400 and "parameter 'scale' takes a number" in malformed.json()["error"]
    assert wrong_type.status_code == 400 and "got list" in wrong_type.json()["error"]
    assert no_name.status_code == 400 and "experiment" in no_name.json()["error"]
    assert missing.status_code == 404
    assert before == after
    for role in ("read", "write"):
        with served.client(role) as client:
            refused = client.post("/v1/pipelines/scoring/runs", json={})
            assert refused.status_code == 403, role
    with served.client("read") as client:
        assert client.post("/v1/runs/0123456789/rerun").status_code == 403


def test_a_second_start_is_refused_with_409_while_a_run_goes_unless_forced(
    served: Server, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    with served.client("admin") as client:
        first = client.post("/v1/pipelines/scoring/runs", json={"params": {"gate": str(gate)}})
        run_id = first.json()["run_id"]
        try:
            refused = client.post("/v1/pipelines/scoring/runs", json={})
            again = client.post(f"/v1/runs/{run_id}/rerun")
            assert refused.status_code == 409 and again.status_code == 409, refused.text
            error = refused.json()["error"]
            assert f"manual run {run_id}" in error and "max_active_runs=1" in error
            assert f"kawa runs logs {run_id} -f" in error and "--force" in error
            forced = client.post("/v1/pipelines/scoring/runs", json={"force": True})
            assert forced.status_code == 202, forced.text
            assert _ended(client, forced.json()["run_id"])["status"] == "succeeded"
        finally:
            gate.touch()
        assert _ended(client, run_id)["status"] == "succeeded"
        after = client.post("/v1/pipelines/scoring/runs", json={"params": {"scale": 5}})
        assert after.status_code == 202
        _ended(client, after.json()["run_id"])


def test_a_rerun_repeats_pipeline_parameters_and_experiment(served: Server) -> None:
    with served.client("admin") as client:
        first = client.post(
            "/v1/pipelines/scoring/runs", json={"params": {"scale": 3}, "experiment": "rerun-test"}
        ).json()["run_id"]
        original = _ended(client, first)
        again = client.post(f"/v1/runs/{first[:16]}/rerun")
        assert again.status_code == 202, again.text
        rerun = _ended(client, again.json()["run_id"])
        assert rerun["run_id"] != first and rerun["pipeline"] == "scoring"
        assert rerun["params"] == original["params"] and rerun["experiment"] == "rerun-test"
        assert client.post("/v1/runs/fffffffffffff/rerun").status_code == 404


def test_runs_come_a_page_at_a_time_with_links_to_the_next(served: Server) -> None:
    with served.client("read") as client:
        seen: list[str] = []
        url: str | None = "/v1/runs?pipeline=scoring&limit=2"
        total = None
        while url is not None:
            response = client.get(url)
            total = int(response.headers["x-total-count"])
            seen += [r["run_id"] for r in response.json()["runs"]]
            url = response.links.get("next", {}).get("url")
        assert total is not None and total >= 3 and len(seen) == total == len(set(seen))
        assert seen == sorted(seen, reverse=True)
        back = client.get("/v1/runs", params={"pipeline": "scoring", "limit": 2, "before": seen[1]})
        assert [r["run_id"] for r in back.json()["runs"]] == seen[2:4]
        assert back.links["prev"]["url"].endswith(f"after={seen[2]}")
        assert client.get("/v1/runs", params={"before": "0" * 20}).status_code == 404
