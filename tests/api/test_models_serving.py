"""Registered models served through a real `kawa serve`: predict API, promotion, batch prediction."""

from __future__ import annotations

from datetime import date

import httpx
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from kawa.config import load_config
from kawa.models import Bundle, Registry
from kawa.runtime import Runtime
from kawa.serving.batch import batch_predict
from kawa.serving.store import PredictionStore
from kawa.warehouse.load import write_table
from tests.conftest import Server, kawa


def training_table(flip: bool = False) -> pa.Table:
    ages = [20, 30, 40, 50, 60, 25, 35, 45, 55, 65] * 10
    media = ["Twitter", "TV", "Radio", "Twitter", "TV"] * 20
    bought = [int((a > 42) != flip) for a in ages]
    return pa.table({"age": ages, "media": media, "bought": bought})


@pytest.fixture(scope="module")
def runtime(server: Server):
    rt = Runtime(load_config(server.root / "kawa.yaml"))
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def registry(runtime: Runtime):
    reg = Registry.from_runtime(runtime)
    for flip in (False, True):
        bundle = Bundle.fit(
            training_table(flip), label="bought", estimator=LogisticRegression(), unknown="error"
        )
        reg.register(runtime.config.project, "buyer", bundle, metrics=bundle.evaluate(training_table(flip)))
    reg.promote(runtime.config.project, "buyer", 1)
    return reg


def post(server: Server, path: str, body: object, role: str = "read") -> httpx.Response:
    return httpx.post(
        server.url + path,
        json=body,
        headers={"Authorization": f"Bearer {server.keys[role + '_key']}"},
        timeout=60,
    )


def test_predict_takes_human_readable_rows(server: Server, registry: Registry) -> None:
    one = post(server, "/v1/models/buyer/predict", {"age": 60, "media": "TV"})
    assert one.status_code == 200, one.text
    assert one.json()["version"] == 1 and one.json()["prediction"] > 0.5
    many = post(
        server, "/v1/models/buyer/predict", [{"age": 20, "media": "Radio"}, {"age": 61, "media": "TV"}]
    )
    low, high = many.json()["predictions"]
    assert low < 0.5 < high
    v2 = post(server, "/v1/models/buyer/predict?version=2", {"age": 60, "media": "TV"})
    assert v2.json()["version"] == 2 and v2.json()["prediction"] < 0.5


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"media": "TV"}, "age"),
        ({"age": "old", "media": "TV"}, "age"),
        ({"age": 30, "media": "Fax"}, "media"),
        ([{"age": 30, "media": "TV"}, 7], "row 1"),
    ],
)
def test_bad_rows_get_a_4xx_naming_the_field(
    server: Server, registry: Registry, body: object, words: str
) -> None:
    r = post(server, "/v1/models/buyer/predict", body)
    assert r.status_code == 422, r.text
    assert words in r.json()["error"]


def test_unknown_models_and_bad_bodies(server: Server, registry: Registry) -> None:
    assert post(server, "/v1/models/nope/predict", {"age": 1}).status_code == 404
    assert post(server, "/v1/models/buyer/predict", "a string").status_code == 400
    assert (
        post(server, "/v1/models/buyer/predict", {"age": 30, "media": "TV"}, role="write").status_code == 403
    )


def test_promotion_takes_effect_without_a_restart(server: Server, registry: Registry) -> None:
    before = post(server, "/v1/models/buyer/predict", {"age": 60, "media": "TV"}).json()
    kawa("models", "promote", "buyer", "2", cwd=server.root)
    after = post(server, "/v1/models/buyer/predict", {"age": 60, "media": "TV"}).json()
    kawa("models", "promote", "buyer", "1", cwd=server.root)
    assert (before["version"], after["version"]) == (1, 2)
    assert after["prediction"] < 0.5 < before["prediction"]


def test_batch_prediction_writes_a_partition_and_publishes(
    server: Server, runtime: Runtime, registry: Registry
) -> None:
    project = runtime.config.project
    warehouse = runtime.warehouse(project)
    people = pa.table(
        {"user_id": [f"p{i}" for i in range(50)], "age": [20 + i for i in range(50)], "media": ["TV"] * 50}
    )
    write_table(warehouse, "people", people)
    store = PredictionStore(runtime.online)
    query = "SELECT user_id, age, media FROM people"
    for _ in range(2):  # a rerun for the same date replaces its partition
        result = batch_predict(
            warehouse, registry, "buyer", query, entity="user_id", run_date=date(2026, 11, 1), store=store
        )
    batch_predict(warehouse, registry, "buyer", query, entity="user_id", run_date=date(2026, 11, 2))
    assert (result.rows, result.published, result.table) == (50, 50, "buyer_predictions")
    rows = warehouse.query(
        "SELECT run_date, count(*) AS n FROM buyer_predictions GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    assert rows == [{"run_date": "2026-11-01", "n": 50}, {"run_date": "2026-11-02", "n": 50}]
    stored = warehouse.query(
        "SELECT score FROM buyer_predictions WHERE user_id = 'p45' AND run_date = '2026-11-01'"
    )
    r = httpx.get(
        server.url + "/v1/predictions/buyer/p45",
        headers={"Authorization": f"Bearer {server.keys['read_key']}"},
    )
    assert r.status_code == 200
    assert r.json()["model_version"] == 1
    assert r.json()["score"] == pytest.approx(stored.column("score")[0].as_py())


def test_cli_predict(server: Server, registry: Registry) -> None:
    out = kawa("predict", "buyer", "--json", '{"age": 60, "media": "TV"}', cwd=server.root)
    assert '"version": 1' in out.stdout
    bad = kawa("predict", "buyer", "--json", '{"age": 60}', cwd=server.root, check=False)
    assert bad.returncode == 1 and "media" in bad.stderr
