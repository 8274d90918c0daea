"""SQL models through kawa's faces: the admin SQL API of a real `kawa serve`, and `kawa sql`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from kawa.cli import app

from ..conftest import Server
from .conftest import Project, separable

TRAIN = (
    "CREATE MODEL api_buyer OPTIONS (model_type = 'logistic_reg', l2_reg = 0.01) AS "
    "SELECT i / 100.0 AS x, (i >= 50)::INT AS label FROM range(100) t(i)"
)
SCORE = "SELECT * FROM ML.PREDICT(MODEL api_buyer, (SELECT i / 100.0 AS x FROM range(100) t(i)))"


@pytest.mark.slow
def test_sql_models_through_the_http_api(server: Server) -> None:
    with server.client("admin") as admin, server.client("read") as reader:
        _use_models_over_http(admin, reader)


def _use_models_over_http(admin: httpx.Client, reader: httpx.Client) -> None:
    made = admin.post("/v1/sql", json={"sql": TRAIN})
    assert made.status_code == 200, made.text
    assert made.json()["rows"] == [["api_buyer", 1, "logistic_reg", 100, 0, None]]

    scored = admin.post("/v1/sql", json={"sql": SCORE, "limit": 30}).json()
    names = [c["name"] for c in scored["columns"]]
    assert names == ["predicted_label", "predicted_label_probs", "x"] and scored["truncated"] is True
    first = dict(zip(names, scored["rows"][0], strict=True))
    assert first["predicted_label"] == 0 and [p["label"] for p in first["predicted_label_probs"]] == [0, 1]
    counts = admin.post(
        "/v1/sql", json={"sql": f"SELECT predicted_label, count(*) FROM ({SCORE}) GROUP BY 1 ORDER BY 1"}
    )
    assert counts.json()["rows"] == [[0, 50], [1, 50]]

    unknown = admin.post("/v1/sql", json={"sql": "SELECT * FROM ML.EVALUATE(MODEL nope)"})
    assert unknown.status_code == 400 and "no model 'nope'" in unknown.json()["error"]
    assert reader.post("/v1/sql", json={"sql": TRAIN}).status_code in (401, 403)

    # A registry version like any other: listed, promoted, and served from JSON rows.
    listed = reader.get("/v1/models").json()["models"]
    assert [(m["name"], m["latest_version"]) for m in listed] == [("api_buyer", 1)]
    assert admin.post("/v1/models/api_buyer/aliases/production", json={"version": 1}).status_code == 200
    served = reader.post("/v1/models/api_buyer/predict", json=[{"x": 0.9}, {"x": 0.1}])
    assert served.status_code == 200, served.text
    high, low = served.json()["predictions"]
    assert high > 0.5 > low


def test_kawa_sql_creates_predicts_and_the_model_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path)
    try:
        project.load("separable", separable())
    finally:
        project.close()
    monkeypatch.setenv("KAWA_CONFIG", str(project.config_path))

    def kawa(*args: str) -> str:
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    created = kawa(
        "sql", "CREATE MODEL cli_buyer OPTIONS (model_type = 'logistic_reg') AS SELECT * FROM separable",
        "--format", "json",
    )  # fmt: skip
    assert json.loads(created)[0]["version"] == 1
    scored = json.loads(
        kawa(
            "sql",
            "SELECT * FROM ML.PREDICT(MODEL cli_buyer, TABLE separable)",
            "--format",
            "json",
            "--limit",
            "5",
        )
    )
    assert len(scored) == 5 and {"predicted_label", "predicted_label_probs", "x1", "label"} <= set(scored[0])
    table = kawa("sql", "SELECT * FROM ML.EVALUATE(MODEL cli_buyer)")
    assert "roc_auc" in table and "1 row" in table
    [listed] = json.loads(kawa("models", "list", "--json"))
    assert (listed["name"], listed["latest_version"]) == ("cli_buyer", 1)

    failed = CliRunner().invoke(app, ["sql", "SELECT * FROM ML.PREDICT(MODEL nope, TABLE separable)"])
    assert failed.exit_code != 0 and "no model 'nope'" in failed.output
