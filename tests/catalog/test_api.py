"""`GET /v1/catalog` and `GET /v1/lineage/{name}` of a real `kawa serve`, for the UI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kawa.config import load_config
from kawa.pipelines import run_pipeline
from kawa.runtime import Runtime
from tests.conftest import Server
from tests.lineage.shop import DAY, ingest, kpis, raw_orders


@pytest.fixture(scope="module")
def served(server: Server) -> Iterator[Server]:
    (server.root / "catalog").mkdir(exist_ok=True)
    (server.root / "catalog" / "shop.yaml").write_text(
        "tables:\n  orders:\n    description: Orders.\n    owner: data-team\n    columns: {amount: EUR}\n"
    )
    runtime = Runtime(load_config(server.root / "kawa.yaml", env={"KAWA__SERVER__PORT": str(server.port)}))
    try:
        raw_orders(runtime, [10.0, 20.0])
        for pipeline in (ingest, kpis):
            assert run_pipeline(runtime, pipeline, logical_date=DAY, project=server.project).succeeded
    finally:
        runtime.close()
    yield server


def test_the_catalog_lists_tables_with_docs_lineage_and_the_report(served: Server) -> None:
    with served.client("read") as client:
        catalog = client.get("/v1/catalog").json()
    tables = {t["name"]: t for t in catalog["tables"]}
    assert tables["orders"]["description"] == "Orders." and tables["orders"]["owner"] == "data-team"
    assert tables["orders"]["written_by"] == ["ingest"] and tables["orders"]["read_by"] == ["kpis"]
    amount = next(c for c in tables["orders"]["columns"] if c["name"] == "amount")
    assert amount == {
        "name": "amount",
        "type": "DOUBLE",
        "description": "EUR",
        "owner": None,
        "status": "documented",
    }
    assert catalog["report"]["undocumented_columns"]["orders"] == ["user_id", "logical_date"]
    assert "raw_orders" in catalog["report"]["undocumented_tables"]


def test_lineage_of_a_table_with_its_impact(served: Server) -> None:
    with served.client("read") as client:
        found = client.get("/v1/lineage/orders", params={"impact": "true"}).json()
        missing = client.get("/v1/lineage/nothing")
    assert [p["pipeline"] for p in found["written_by"]] == ["ingest"]
    assert found["upstream"] == [
        {"depth": 1, "pipeline": "ingest", "kind": "table", "name": "raw_orders", "steps": ["clean"]}
    ]
    assert [(i["kind"], i["name"], i["status"]) for i in found["impact"]] == [
        ("pipeline", "kpis", "ok"),
        ("table", "daily_kpis", "ok"),
    ]
    assert missing.status_code == 404 and "has read or written 'nothing'" in missing.json()["error"]
    with served.client("write") as client:
        assert client.get("/v1/catalog").status_code == 403
