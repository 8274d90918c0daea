"""`kawa pipeline test`: a real run on a sample of the warehouse in a sandbox that touches nothing real."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from kawa.cli import app
from kawa.config import load_config
from kawa.lake.table import list_tables
from kawa.pipelines import RunStore, find_pipeline
from kawa.pipelines.sandbox import make_sandbox, run_in_sandbox
from kawa.runtime import Runtime
from kawa.warehouse import Warehouse
from kawa.warehouse.load import write_table

PIPELINES = """
import pyarrow as pa

from kawa.pipelines import Pipeline, RunContext, step

@step
def summary(ctx: RunContext, fail: bool) -> int:
    rows = ctx.warehouse.query("SELECT count(*) AS n, sum(amount) AS total FROM orders").to_pylist()[0]
    print(f"orders in the sample: {rows['n']}")
    if fail:
        raise ValueError("the new code divides by zero")
    ctx.write_table("order_summary", pa.table({"n": [rows["n"]]}), partition=ctx.logical_date)
    return rows["n"]

daily = Pipeline("daily", steps=[summary], params={"fail": False})
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "kawa.yaml").write_text(
        "project: shop\nnotify: {webhook: 'http://127.0.0.1:9/never-called'}\n"
    )
    (tmp_path / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
    warehouse = Warehouse(tmp_path / ".kawa" / "lake", "shop")
    orders = pa.table({"user_id": [f"u{i}" for i in range(5000)], "amount": [1.0] * 5000})
    write_table(warehouse, "orders", orders)
    for day in ("2026-11-01", "2026-11-02"):
        write_table(warehouse, "visits", pa.table({"n": [1, 2, 3]}), partition={"day": day})
    return tmp_path


def test_the_sandbox_holds_a_sample_and_the_run_touches_nothing_real(project: Path) -> None:
    config = load_config(project / "kawa.yaml")
    sandbox = make_sandbox(config, "shop", fraction=0.1, min_rows=100, seed=7)
    try:
        sampled = {t.name: (t.rows, t.source_rows) for t in sandbox.tables}
        assert set(sampled) == {"orders", "visits"}
        assert 350 < sampled["orders"][0] < 650 and sampled["orders"][1] == 5000
        assert sampled["visits"] == (6, 6)  # small files are copied whole
        visits = Warehouse(sandbox.folder / "lake", "shop").table("visits").manifest()
        assert visits.partition_by == ["day"] and sorted(f.partition["day"] for f in visits.files) == [
            "2026-11-01",
            "2026-11-02",
        ]
        record = run_in_sandbox(sandbox, find_pipeline(config, "daily"), project="shop")
        assert record.succeeded, record.error
        assert (record.kind, record.experiment) == ("test", "test")
        assert record.message is not None and [r["sink"] for r in record.message["delivery"]] == ["log"]
        assert "order_summary" in list_tables(sandbox.folder / "lake", "shop")
        again = make_sandbox(config, "shop", fraction=0.1, min_rows=100, seed=7)
        assert {t.name: t.rows for t in again.tables} == {n: r for n, (r, _) in sampled.items()}
        again.close()
    finally:
        sandbox.close()
    assert not sandbox.folder.exists()
    # The real project saw nothing: no new table, no run.
    assert list_tables(project / ".kawa" / "lake", "shop") == ["orders", "visits"]
    runtime = Runtime(config)
    try:
        assert RunStore(runtime.metadata).list("shop") == []
    finally:
        runtime.close()


def test_kawa_pipeline_test_gives_a_ci_exit_code(project: Path) -> None:
    cli = CliRunner()
    env = {"KAWA_CONFIG": str(project / "kawa.yaml"), "COLUMNS": "200"}
    ok = cli.invoke(app, ["pipeline", "test", "daily", "--keep", str(project / "sandbox")], env=env)
    assert ok.exit_code == 0, ok.output
    assert "sample of orders:" in ok.output and "of 5,000 rows" in ok.output
    assert "summary: succeeded" in ok.output and "sandbox kept in" in ok.output
    assert (project / "sandbox" / "lake" / "order_summary").is_dir()
    bad = cli.invoke(app, ["pipeline", "test", "daily", "-p", "fail=true"], env=env)
    assert bad.exit_code == 1
    assert "summary: failed" in bad.output and "ValueError: the new code divides by zero" in bad.output
    unknown = cli.invoke(app, ["pipeline", "test", "weekly"], env=env)
    assert unknown.exit_code == 1 and "no pipeline named 'weekly'" in unknown.output
