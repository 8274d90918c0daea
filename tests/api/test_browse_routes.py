"""The read routes behind the web UI, through a real `kawa serve`: models and aliases, one entity's
predictions and features, tables with their pages, and the events tail with rejected events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from kawa.config import load_config
from kawa.features.materialize import namespace as features_namespace
from kawa.models import Bundle, Registry
from kawa.runtime import Runtime
from kawa.serving.store import Prediction, PredictionStore
from kawa.streaming import StreamEngine, StreamView, stream
from kawa.triggers.state import stream_ns
from kawa.warehouse.load import write_table
from tests.conftest import Server

PIPELINES_PY = """
from kawa.streaming import StreamView, stream

user_activity = StreamView(
    "user_activity", key="keys.user_id",
    features={"events_total": stream.count(), "last_pages": stream.last_n("page", 2)},
)
"""
FEATURES_PY = "from kawa.features.presets import RFM  # noqa: F401\n"


@pytest.fixture(scope="module")
def runtime(server: Server) -> Iterator[Runtime]:
    rt = Runtime(load_config(server.root / "kawa.yaml"))
    yield rt
    rt.close()


def call(server: Server, method: str, path: str, role: str = "read", **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.keys[role + '_key']}"}
    return httpx.request(method, server.url + path, headers=headers, timeout=60, **kwargs)


def training(flip: bool) -> pa.Table:
    ages = [20, 30, 40, 50, 60, 25, 35, 45, 55, 65] * 10
    media = ["Twitter", "TV", "Radio", "Twitter", "TV"] * 20
    return pa.table({"age": ages, "media": media, "bought": [int((a > 42) != flip) for a in ages]})


def test_models_versions_side_by_side_and_promotion(server: Server, runtime: Runtime) -> None:
    registry = Registry.from_runtime(runtime)
    first = Bundle.fit(training(False), label="bought", estimator=LogisticRegression())
    second = Bundle.fit(training(True), label="bought", estimator=LogisticRegression())
    registry.register(runtime.config.project, "buyer", first, metrics=first.evaluate(training(False)))
    registry.register(runtime.config.project, "buyer", second, metrics={"auc": 0.5})

    listed = call(server, "GET", "/v1/models").json()["models"]
    assert [(m["name"], m["versions"], m["aliases"]) for m in listed] == [("buyer", 2, {})]
    shown = call(server, "GET", "/v1/models/buyer").json()
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert shown["comparison"]["versions"] == [1, 2]
    assert shown["comparison"]["metrics"]["auc"] == [1.0, 0.5]
    assert "roc" in shown["versions"][0]["metrics"]

    v1 = call(server, "GET", "/v1/models/buyer/versions/1").json()
    assert v1["curves"]["roc"]["tpr"][-1] == 1.0 and v1["curves"]["reliability"]
    assert set(v1["curves"]["feature_importance"]) == {"age", "media"}
    v2 = call(server, "GET", "/v1/models/buyer/versions/2").json()
    assert v2["curves"]["roc"] is None and v2["curves"]["missing"][0].startswith("ROC curve")
    assert call(server, "GET", "/v1/models/buyer/versions/9").status_code == 404
    assert call(server, "GET", "/v1/models/nope").status_code == 404

    # Promotion is the admin's: a read key is refused, and the registry follows the admin's move.
    refused = call(server, "POST", "/v1/models/buyer/aliases/production", json={"version": 2})
    assert refused.status_code == 403
    moved = call(server, "POST", "/v1/models/buyer/aliases/production", "admin", json={"version": 2})
    assert moved.json() == {"model": "buyer", "alias": "production", "version": 2, "previous": None}
    again = call(server, "POST", "/v1/models/buyer/aliases/production", "admin", json={"version": 1})
    assert again.json()["previous"] == 2
    assert Registry.from_runtime(runtime).resolve(runtime.config.project, "buyer") == 1
    predicted = call(server, "POST", "/v1/models/buyer/predict", json={"age": 60, "media": "TV"}).json()
    assert predicted["version"] == 1 and predicted["prediction"] > 0.5
    bad = call(server, "POST", "/v1/models/buyer/aliases/Prod", "admin", json={"version": 1})
    assert bad.status_code == 400 and "lowercase" in bad.json()["error"]
    missing = call(server, "POST", "/v1/models/buyer/aliases/production", "admin", json={"version": 7})
    assert missing.status_code == 404 and "has no version 7" in missing.json()["error"]


def test_an_entity_shows_predictions_streaming_and_materialised_features(
    server: Server, runtime: Runtime
) -> None:
    (server.root / "pipelines.py").write_text(PIPELINES_PY)
    (server.root / "features.py").write_text(FEATURES_PY)
    project, online = runtime.config.project, runtime.online
    user = f"u_{uuid.uuid4().hex[:8]}"
    # A stream state as the trigger worker stores it: two events of this user, a minute apart.
    view = StreamView(
        "user_activity",
        key="keys.user_id",
        features={"events_total": stream.count(), "last_pages": stream.last_n("page", 2)},
    )
    engine = StreamEngine([view])
    now_us = time.time_ns() // 1000
    for i, page in enumerate(["/home", "/cart"]):
        engine.apply({"event_name": "view", "keys": {"user_id": user}, "page": page}, now_us - 60_000_000 + i)
    online.put_many(
        stream_ns(project, "user_activity"), [(key, state) for _, key, state in engine.take_dirty()]
    )
    PredictionStore(online).put_many(
        project,
        "buyer",
        [(user, Prediction(score=0.75, model_version=1, computed_at="2026-01-02T03:04:05Z"))],
    )
    online.put_many(
        features_namespace(project, "rfm"), [(user, b'{"purchases_30d": 3, "_as_of": "2026-01-02"}')]
    )

    found = call(server, "GET", f"/v1/entities/{user}").json()
    assert found["predictions"]["buyer"] == {
        "score": 0.75,
        "model_version": 1,
        "computed_at": "2026-01-02T03:04:05Z",
        "source": "batch",
    }
    assert found["stream_features"] == {
        "user_activity": {"events_total": 2, "last_pages": ["/home", "/cart"]}
    }
    assert found["features"] == {"rfm": {"purchases_30d": 3, "_as_of": "2026-01-02"}}
    assert found["stream_views"] == ["user_activity"] and found["feature_views"] == ["rfm"]
    nobody = call(server, "GET", "/v1/entities/nobody-at-all").json()
    assert nobody["predictions"] == {} and nobody["stream_features"] == {} and nobody["features"] == {}
    assert call(server, "GET", f"/v1/entities/{user}", "write").status_code == 403


def test_tables_and_their_pages(server: Server, runtime: Runtime) -> None:
    rows = 1234
    write_table(runtime.warehouse(), "orders", pa.table({"id": list(range(rows)), "total": [1.5] * rows}))
    listed = {t["name"]: t for t in call(server, "GET", "/v1/tables", "admin").json()["tables"]}
    assert listed["orders"]["rows"] == rows and listed["orders"]["files"] == 1
    assert "refused" in listed["rejected_events"]["description"]
    table = call(server, "GET", "/v1/tables/orders").json()
    assert table["rows"] == rows and [c["name"] for c in table["columns"]] == ["id", "total"]
    page = call(server, "GET", "/v1/tables/orders/rows?offset=1200&limit=50").json()
    assert page["total"] == rows and page["offset"] == 1200
    assert [r[0] for r in page["rows"]] == list(range(1200, rows))
    assert call(server, "GET", "/v1/tables/orders/rows?limit=100000").status_code == 422
    assert call(server, "GET", "/v1/tables/nope").status_code == 404
    assert call(server, "GET", "/v1/tables/orders", "write").status_code == 403


def test_the_events_tail_and_rejected_events(server: Server) -> None:
    user = f"u_{uuid.uuid4().hex[:8]}"
    events = [{"event_name": "view", "keys": {"user_id": user}, "page": f"/p{i}"} for i in range(3)]
    events.append({"event_name": "purchase", "keys": {"user_id": user}, "price": 9.5})
    bad_id = f"bad-{uuid.uuid4().hex[:8]}"
    events.append({"keys": {"user_id": user}, "event_id": bad_id})  # no event_name: refused
    with server.client("write") as client:
        answer = client.post("/v1/events", json=events).json()
    assert (answer["accepted"], answer["rejected"]) == (4, 1)

    deadline = time.monotonic() + 30
    found: list[dict[str, Any]] = []
    while len(found) < 4 and time.monotonic() < deadline:
        found = call(server, "GET", f"/v1/events/recent?user_id={user}").json()["events"]
        time.sleep(0.2)
    assert sorted(e["event_name"] for e in found) == ["purchase", "view", "view", "view"]
    assert all(e["user_id"] == user for e in found)
    purchases = call(server, "GET", f"/v1/events/recent?user_id={user}&event_name=purchase").json()["events"]
    assert [e["price"] for e in purchases] == [9.5]

    rejected: list[dict[str, Any]] = []
    while not rejected and time.monotonic() < deadline:
        page = call(server, "GET", "/v1/events/rejected?limit=500").json()
        rejected = [r for r in page["rejected"] if r["event_id"] == bad_id]
        time.sleep(0.2)
    assert rejected and "event_name" in rejected[0]["reason"]
    assert msgspec.json.decode(rejected[0]["payload"])["event_id"] == bad_id
