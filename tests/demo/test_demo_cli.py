"""`kawa demo` end to end: the generated shop goes through a real `kawa serve` and lands once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kawa.demo.shop import ShopConfig, generate
from kawa.warehouse import Warehouse
from tests.conftest import kawa

from .conftest import Demo


@pytest.mark.slow
def test_demo_sends_the_shop_through_the_collector(tmp_path: Path) -> None:
    args = ("demo", "--dir", "demo", "--users", "60", "--days", "10", "--seed", "3", "--no-train")
    out = kawa(*args, cwd=tmp_path).stdout
    shop = generate(ShopConfig(users=60, days=10, seed=3))
    n = len(shop.events)
    assert f"{n:,} accepted, 0 rejected" in out
    lake = tmp_path / "demo" / ".kawa" / "lake"
    warehouse = Warehouse(lake, "shop")
    counts = warehouse.query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events").to_pylist()
    assert counts == [{"n": n, "d": n}]
    by_name = {
        r["event_name"]: r["n"]
        for r in warehouse.query("SELECT event_name, count(*) AS n FROM events GROUP BY 1").to_pylist()
    }
    expected: dict[str, int] = {}
    for e in shop.events:
        expected[e["event_name"]] = expected.get(e["event_name"], 0) + 1
    assert by_name == expected
    truth = warehouse.query("SELECT count(*) AS n, sum(is_bot::INT) AS bots FROM demo_users").to_pylist()[0]
    assert truth["n"] == len(shop.users) and truth["bots"] == sum(u.is_bot for u in shop.users)
    # a second run sends the same event_ids again: nothing lands twice
    kawa(*args, cwd=tmp_path)
    assert warehouse.query("SELECT count(*) AS n FROM events").to_pylist() == [{"n": n}]


@pytest.mark.slow
def test_demo_runs_the_whole_loop_and_learns(whole_demo: Demo) -> None:
    out = whole_demo.out
    assert "coupon A (score >= 0.5)" in out
    assert "read over HTTP: GET /v1/predictions/loyalty/" in out and "'model_version': 1" in out
    folder = whole_demo.folder
    from kawa.config import load_config
    from kawa.models import Registry
    from kawa.pipelines import RunStore
    from kawa.runtime import Runtime

    runtime = Runtime(load_config(folder / "kawa.yaml"))
    try:
        runs = RunStore(runtime.metadata).list("shop", pipeline="loyalty")
        assert [r.status for r in runs] == ["succeeded"]
        metrics = runs[0].metrics
        assert metrics["auc"] > metrics["baseline_recency_auc"] + 0.03, metrics
        registry = Registry.from_runtime(runtime)
        assert registry.resolve("shop", "loyalty") == 1
        scored = (
            runtime.warehouse("shop")
            .query("SELECT count(*) AS n, count(DISTINCT user_id) AS users FROM loyalty_predictions")
            .to_pylist()[0]
        )
        users = (
            runtime.warehouse("shop")
            .query("SELECT count(DISTINCT keys.user_id) AS n FROM events WHERE keys.user_id IS NOT NULL")
            .to_pylist()[0]["n"]
        )
        assert scored == {"n": users, "users": users}
    finally:
        runtime.close()
    # Run again from the CLI: steps in processes of their own (the bundle crosses as a pickle), after
    # the first run's pipeline_run_finished event (dated today, long after the shop's last sale).
    again = kawa("pipeline", "run", "loyalty", "-p", "num_leaves=7", cwd=folder)
    assert "succeeded" in again.stdout.splitlines()[-1], again.stdout
    runtime = Runtime(load_config(folder / "kawa.yaml"))
    try:
        assert Registry.from_runtime(runtime).resolve("shop", "loyalty") == 2
    finally:
        runtime.close()


@pytest.mark.slow
def test_demo_realtime_scores_every_replayed_view(tmp_path: Path) -> None:
    args = ("demo", "--dir", "demo", "--users", "300", "--days", "21", "--seed", "5", "--no-train")
    out = kawa(*args, "--realtime", "--sessions", "4", "--speed", "80", cwd=tmp_path).stdout
    assert "purchase_intent (1-D CNN over the last 10 pages)" in out
    landed = [line for line in out.splitlines() if "P(buy)=" in line]
    summary = next(line for line in out.splitlines() if " predictions in " in line)
    assert landed and summary.startswith(f"{len(landed)} predictions in ") and ", 0 missing" in summary
    # The trigger worker's own count: every replayed view scored, none failed.
    listed = kawa("triggers", "list", "--json", cwd=tmp_path / "demo").stdout
    (intent,) = [t for t in json.loads(listed)["triggers"] if t["name"] == "intent_on_view"]
    assert intent["scored"] == len(landed) and intent["errors"] == 0, intent


def test_demo_in_a_project_without_the_shop_says_how_to_add_it(tmp_path: Path) -> None:
    kawa("init", "--project", "other", cwd=tmp_path)
    ran = kawa("demo", "--dir", str(tmp_path), cwd=tmp_path, check=False)
    assert ran.returncode == 1
    message = " ".join((ran.stdout + ran.stderr).split())
    assert "has no project 'shop'" in message and "kawa keys create --project shop" in message
    assert not (tmp_path / ".kawa" / "run" / "server.url").exists()  # refused before starting a server
