"""The purchase-intent template on a small demo shop: the sequence CNN beats the bag-of-pages baseline on
held-out sessions, is promoted, and serves the row a trigger builds from the same streaming feature."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from kawa.config import Config
from kawa.demo import ShopConfig, generate
from kawa.demo.run import truth_tables
from kawa.models import Registry
from kawa.pipelines import RunRecord, run_pipeline
from kawa.runtime import Runtime
from kawa.streaming import StreamEngine, stream_features_at
from kawa.templates.intent import MODEL, PAGES, intent, intent_on_view, label_points, session_pages
from kawa.warehouse.load import write_table
from tests.features._events import events_table, write_events

SHOP = ShopConfig(users=300, days=21, items=120, visitors=150, seed=7)


@pytest.fixture(scope="module")
def shop_events() -> list[dict]:
    return list(generate(SHOP).events)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, shop_events: list[dict]) -> Iterator[Runtime]:
    rt = Runtime(Config(project="shop", root=str(tmp_path_factory.mktemp("intent"))))
    warehouse = rt.warehouse()
    write_events(warehouse, events_table(shop_events))
    write_table(warehouse, "demo_sessions", truth_tables(generate(SHOP))["demo_sessions"])
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture(scope="module")
def run(runtime: Runtime) -> RunRecord:
    return run_pipeline(runtime, intent, {"holdout_days": 5})


def test_the_cnn_beats_the_bag_of_pages_baseline_and_is_promoted(run: RunRecord, runtime: Runtime) -> None:
    assert run.status == "succeeded", run.error
    metrics = run.metrics
    assert metrics["label_rows"] > 5000 and 0.1 < metrics["positive_rate"] < 0.35
    assert metrics["holdout_rows"] > 1000
    # Measured on this shop: model 0.834, baseline 0.749 (seeded, so stable); order is what it adds.
    assert metrics["auc"] > metrics["baseline_auc"] + 0.04
    assert metrics["baseline_auc"] > 0.6  # the baseline is a real model, not a straw man
    with Registry.from_runtime(runtime) as registry:
        version = registry.resolve("shop", MODEL, "production")
        shown = registry.show("shop", MODEL, version)
        assert shown.metrics["auc"] == metrics["auc"]
        assert shown.metrics["baseline_auc"] == metrics["baseline_auc"]
        assert shown.signature["inputs"][0]["name"] == "pages"
        assert shown.signature["inputs"][0]["length"] == PAGES


def test_training_features_are_the_serving_features(
    run: RunRecord, runtime: Runtime, shop_events: list[dict]
) -> None:
    """The online engine, fed the events in order, gives each view the pages the model trained on, and
    the registered model scores the row the trigger builds (event fields + stream features)."""
    sessions = {e["keys"]["session_id"] for e in shop_events if e["event_name"] == "view"}
    chosen = sorted(sessions)[:40]
    engine = StreamEngine([session_pages])
    with Registry.from_runtime(runtime) as registry:
        bundle = registry.load("shop", MODEL)
    points = label_points(runtime.warehouse(), 28)
    offline = stream_features_at(runtime.warehouse(), session_pages, points)
    expected = {r["event_id"]: r["pages"] for r in offline.to_pylist()}
    checked = 0
    for event in shop_events:
        at = datetime.fromisoformat(event["sync_date"].replace("Z", "+00:00"))
        t_us = int(at.timestamp() * 1_000_000)
        engine.apply(event, t_us)
        sid = event["keys"].get("session_id")
        if sid not in chosen or not intent_on_view.match.test(event) or event["event_id"] not in expected:
            continue
        online = engine.values("session_pages", intent_on_view.key_of(event) or "", t_us)
        assert online["pages"] == expected[event["event_id"]]
        row = {**{k: v for k, v in event.items() if not isinstance(v, dict)}, **online}
        assert 0.0 < bundle.predict_one(row) < 1.0
        checked += 1
    assert checked > 100


def test_the_trigger_and_view_are_what_the_realtime_demo_needs() -> None:
    assert intent_on_view.describe() | {"description": ""} == {
        "name": "intent_on_view",
        "on": {"event_name": "view"},
        "key": "keys.session_id",
        "model": MODEL,
        "alias": "production",
        "features": ["session_pages"],
        "batch_features": [],
        "webhook": None,
        "emit": None,
        "description": "",
    }
    assert session_pages.column == "session_id" and list(session_pages.features) == ["pages"]


def test_bots_are_left_out_and_labels_say_whether_the_session_buys_later(
    runtime: Runtime, shop_events: list[dict]
) -> None:
    shop = generate(SHOP)
    intent_of = {s.session_id: s.intent for s in shop.sessions}
    points = label_points(runtime.warehouse(), 28)
    assert {intent_of[s] for s in points.column("session_id").to_pylist()} == {"buy", "browse"}
    assert any(intent_of[e["keys"]["session_id"]] not in ("buy", "browse") for e in shop_events)
    last_purchase: dict[str, str] = {}
    for e in shop_events:
        if e["event_name"] == "purchase":
            last_purchase[e["keys"]["session_id"]] = e["sync_date"]
    for row in points.slice(0, 3000).to_pylist():
        bought = last_purchase.get(row["session_id"])
        at = row["ts"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert row["purchases_later"] == (bought is not None and bought > at)


def test_large_training_sets_are_sampled_by_whole_sessions(run: RunRecord, runtime: Runtime) -> None:
    sampled = run_pipeline(runtime, intent, {"max_rows": 3000, "epochs": 1, "promote_to": ""})
    assert sampled.status == "succeeded", sampled.error
    assert 2000 < sampled.metrics["label_rows"] < 4000
    assert sampled.metrics["sessions"] < run.metrics["sessions"] / 2
    with Registry.from_runtime(runtime) as registry:
        assert [v.version for v in registry.list_versions("shop", MODEL)] == [1, 2]
        assert registry.resolve("shop", MODEL, "production") == 1  # promote_to="" leaves it alone
