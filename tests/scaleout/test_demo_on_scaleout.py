"""`kawa demo` end to end on Redis + PostgreSQL + Ray, moved there by one `stores:` block in kawa.yaml.

The same demo project as on embedded stores: its events go through a `kawa serve` whose event log is a
Redis stream, its runs and models are recorded in PostgreSQL, its pipeline steps run as tasks of a
local Ray cluster, and its predictions are read back from Redis.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from kawa.config import load_config
from kawa.pipelines import RunStore
from kawa.runtime import Runtime
from kawa.serving.store import PredictionStore
from kawa.stores.online import open_online_store
from tests.conftest import KAWA, kawa

if TYPE_CHECKING:
    from tests.services.ray import RayCluster

pytest_plugins = ["tests.services.ray", "tests.services.redis", "tests.services.postgres"]

pytestmark = pytest.mark.slow


def _ray_task_names(cluster: RayCluster) -> set[str]:
    """The task names Ray's workers of `cluster` have logged (each worker log names the tasks it ran)."""
    names: set[str] = set()
    for log in cluster.root.glob("session_*/logs/worker-*.out"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(":task_name:"):
                names.add(line.removeprefix(":task_name:").strip())
    return names


def test_one_stores_block_moves_the_demo_onto_redis_postgresql_and_ray(
    tmp_path: Path, ray_cluster: RayCluster, postgres_url: str, redis_url: str
) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    # The demo shop's project, made on PostgreSQL from the start (`kawa init` records its keys there).
    kawa("init", "--project", "shop", cwd=folder, env={"KAWA__STORES__METADATA": postgres_url})
    settings = yaml.safe_load((folder / "kawa.yaml").read_text())
    # The one change: where each store lives and where steps run.
    settings["stores"] = {
        "event_log": redis_url,
        "online": redis_url,
        "metadata": postgres_url,
        "executor": "ray",
    }
    (folder / "kawa.yaml").write_text(yaml.safe_dump(settings))

    env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}
    ran = subprocess.run(
        [*KAWA, "demo", "--dir", str(folder), "--users", "300", "--days", "40", "--seed", "5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]

    # Nothing went to the embedded stores: no segment files, no LMDB, no SQLite database.
    state = folder / ".kawa"
    assert not (state / "eventlog").exists() or not any((state / "eventlog").iterdir())
    assert not (state / "online").exists()
    assert not list(state.glob("*.sqlite*")) and not list(state.glob("*.db"))

    runtime = Runtime(load_config(folder / "kawa.yaml", env={}))
    try:
        runs = RunStore(runtime.metadata).list(project="shop", pipeline="loyalty")
        assert runs and runs[0].status == "succeeded", runs
        record = RunStore(runtime.metadata).get(runs[0].run_id)
        assert record is not None
        steps = {s.step: s.status for s in record.steps}
        assert steps == dict.fromkeys(("labelled", "trained", "registered", "scored"), "succeeded")
        scored = runtime.warehouse("shop").query(
            "SELECT user_id FROM loyalty_predictions ORDER BY score DESC LIMIT 1"
        )
        user = scored.column("user_id")[0].as_py()
    finally:
        runtime.close()
    # Each loyalty step ran as a task of the Ray cluster.
    assert {f"kawa:loyalty.{s}" for s in steps} <= _ray_task_names(ray_cluster)
    with open_online_store(redis_url, tmp_path) as online:
        stored = PredictionStore(online).get("shop", "loyalty", user)
    assert stored is not None and 0.0 <= stored.score <= 1.0
