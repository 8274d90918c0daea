"""Lineage: what runs read and wrote, upstream and downstream of a table or model, and impact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from kawa.cli import app
from kawa.lineage import Dataset, LineageGraph, LineageStore, impact
from kawa.pipelines import RunRecord, run_pipeline
from kawa.pipelines.cache import StepResults
from kawa.runtime import Runtime
from tests.lineage.shop import DAY, ingest, kpis, raw_orders, score, train


def _run_all(runtime: Runtime) -> dict[str, RunRecord]:
    raw_orders(runtime, [10.0, 20.0, -1.0, 5.0])
    runs = {}
    for pipeline in (ingest, kpis, train, score):
        record = run_pipeline(runtime, pipeline, logical_date=DAY)
        assert record.succeeded, record.error
        runs[pipeline.name] = record
    return runs


def _impact(runtime: Runtime, kind: str, name: str) -> dict[str, tuple[str, str]]:
    graph = LineageGraph.load(runtime.metadata, "shop")
    found = impact(graph, Dataset(kind, name), lake_root=runtime.lake_root, project="shop")
    return {f"{i.kind} {i.name}": (i.status, i.reason) for i in found}


def test_each_run_records_the_tables_partitions_and_models_it_read_and_wrote(runtime: Runtime) -> None:
    runs = _run_all(runtime)
    store = LineageStore(runtime.metadata)
    day = {"logical_date": "2026-11-01"}

    def edges(pipeline: str) -> list[tuple[str, str, str, Any]]:
        return [(e.direction, e.kind, e.name, e.partition) for e in store.for_run(runs[pipeline].run_id)]

    assert edges("ingest") == [("read", "table", "raw_orders", None), ("write", "table", "orders", day)]
    assert edges("kpis") == [("read", "table", "orders", day), ("write", "table", "daily_kpis", day)]
    assert edges("train") == [("read", "table", "daily_kpis", None), ("write", "model", "forecast", None)]
    assert edges("score") == [
        ("read", "model", "forecast", {"alias": "production"}),
        ("write", "table", "forecasts", day),
    ]
    # Versions: the raw table as loaded (version 1), the model version registered and loaded.
    (read_raw, write_orders) = store.for_run(runs["ingest"].run_id)
    assert read_raw.version == "1" and write_orders.version == "1"
    assert store.for_run(runs["score"].run_id)[0].version == "1"
    assert runs["train"].message is not None and runs["train"].message["sent"]["model_id"] == "forecast"


def test_upstream_and_downstream_follow_the_pipelines(runtime: Runtime) -> None:
    _run_all(runtime)
    graph = LineageGraph.load(runtime.metadata, "shop")
    up = [
        (link.depth, link.pipeline, str(link.dataset))
        for link in graph.upstream(Dataset("table", "forecasts"))
    ]
    assert up == [
        (1, "score", "model forecast"),
        (2, "train", "table daily_kpis"),
        (3, "kpis", "table orders"),
        (4, "ingest", "table raw_orders"),
    ]
    down = [
        (link.depth, link.pipeline, str(link.dataset))
        for link in graph.downstream(Dataset("table", "orders"))
    ]
    assert down == [
        (1, "kpis", "table daily_kpis"),
        (2, "train", "model forecast"),
        (3, "score", "table forecasts"),
    ]
    assert graph.upstream(Dataset("table", "raw_orders")) == []  # loaded by hand, no pipeline wrote it
    assert graph.find("forecast") == [Dataset("model", "forecast")]


def test_impact_shows_what_is_blocked_failing_or_stale(runtime: Runtime) -> None:
    _run_all(runtime)
    assert {status for status, _ in _impact(runtime, "table", "orders").values()} == {"ok"}

    # The run that writes `orders` failed: everything made from it is blocked.
    failed = run_pipeline(runtime, ingest, {"fail": True}, logical_date=DAY)
    blocked = _impact(runtime, "table", "orders")
    assert list(blocked) == [
        "pipeline kpis",
        "table daily_kpis",
        "pipeline train",
        "model forecast",
        "pipeline score",
        "table forecasts",
    ]
    assert all(status == "blocked" for status, _ in blocked.values())
    assert f"latest run of ingest ({failed.run_id}) ended failed" in blocked["pipeline kpis"][1]

    # It succeeds again and writes a new version: what read the old one is stale, and what is made from that.
    raw_orders(runtime, [10.0, 20.0, 30.0])
    assert run_pipeline(runtime, ingest, logical_date=DAY).succeeded
    stale = _impact(runtime, "table", "orders")
    assert stale["pipeline kpis"] == ("stale", "read table orders at version 1, now at 2")
    assert stale["table daily_kpis"][0] == "stale"
    assert stale["pipeline score"][0] == "stale" and stale["pipeline score"][1] == (
        "upstream kpis is stale: read table orders at version 1, now at 2"
    )

    # A pipeline downstream fails: it is failing, and what comes after it is blocked.
    assert not run_pipeline(runtime, kpis, {"fail": True}, logical_date=DAY).succeeded
    now = _impact(runtime, "table", "orders")
    assert now["pipeline kpis"][0] == "failing" and now["table daily_kpis"][0] == "failing"
    assert now["pipeline train"][0] == "blocked" and "upstream kpis is failing" in now["pipeline train"][1]

    # All rerun in order: everything is fresh again.
    for pipeline in (kpis, train, score):
        assert run_pipeline(runtime, pipeline, logical_date=DAY).succeeded
    assert {status for status, _ in _impact(runtime, "table", "orders").values()} == {"ok"}
    # Training again on unchanged inputs reuses the cached step: no new version, nothing goes stale.
    again = run_pipeline(runtime, train, logical_date=DAY)
    assert StepResults(runtime).get(again.run_id)["fit"]["cached_from"] is not None
    assert {status for status, _ in _impact(runtime, "model", "forecast").values()} == {"ok"}
    # A new model version makes the pipeline that loaded the old one stale.
    assert run_pipeline(runtime, train, logical_date=DAY, cache=False).succeeded
    after = _impact(runtime, "model", "forecast")
    assert after["pipeline score"] == (
        "stale",
        "model forecast has a newer version (3) than the one it loaded (2)",
    )


def test_kawa_lineage_prints_upstream_downstream_and_impact(runtime: Runtime) -> None:
    _run_all(runtime)
    root = Path(runtime.config.root)
    (root / "kawa.yaml").write_text("project: shop\n")
    cli = CliRunner()
    env = {"KAWA_CONFIG": f"{root}/kawa.yaml", "COLUMNS": "200"}
    shown = cli.invoke(app, ["lineage", "daily_kpis"], env=env)
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert "table daily_kpis" in text and "written by: kpis (steps daily) [logical_date=2026-11-01]" in text
    assert "read by: train (steps fit)" in text
    assert (
        "<- table orders  (read by kpis: daily)" in text
        and "<- table raw_orders  (read by ingest: clean)" in text
    )
    assert "-> model forecast  (written by train: fit)" in text
    as_json = json.loads(cli.invoke(app, ["lineage", "orders", "--impact", "--json"], env=env).output)
    assert [(i["name"], i["status"]) for i in as_json["impact"]][:2] == [("kpis", "ok"), ("daily_kpis", "ok")]
    missing = cli.invoke(app, ["lineage", "nothing"], env=env)
    assert missing.exit_code == 1 and "no run has read or written 'nothing'" in missing.output
