"""The data catalog: YAML docs in the project merged with the live warehouse, reports, Markdown, CLI."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kawa.catalog import CatalogError, build_catalog, load_docs, write_markdown
from kawa.cli import app
from kawa.lineage import LineageGraph
from kawa.pipelines import run_pipeline
from kawa.runtime import Runtime
from tests.lineage.shop import DAY, ingest, raw_orders
from tests.pipelines.conftest import make_runtime

KPIS_YAML = """
tables:
  orders:
    description: Orders with a positive amount, one partition per logical date.
    owner: data-team
    columns:
      user_id: Who ordered.
      amount:
        description: Order total in EUR.
        owner: finance
      discount: Dropped in November.
  legacy_sales: Sales from the old shop system.
"""


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(tmp_path)
    (tmp_path / "kawa.yaml").write_text("project: shop\n")
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "kpis.yaml").write_text(KPIS_YAML)
    raw_orders(rt, [10.0, 20.0])
    assert run_pipeline(rt, ingest, logical_date=DAY).succeeded
    try:
        yield rt
    finally:
        rt.close()


def test_docs_merge_with_the_live_schema_and_report_what_is_missing(runtime: Runtime, tmp_path: Path) -> None:
    graph = LineageGraph.load(runtime.metadata, "shop")
    catalog = build_catalog(tmp_path, runtime.warehouse("shop"), graph=graph)
    assert [(t.name, t.status) for t in catalog.tables] == [
        ("events", "documented"),
        ("legacy_sales", "vanished"),
        ("orders", "documented"),
        ("raw_orders", "undocumented"),
        ("rejected_events", "documented"),
    ]
    orders = catalog.table("orders")
    assert (orders.owner, orders.source, orders.rows) == ("data-team", "catalog/kpis.yaml", 2)
    assert orders.written_by == ["ingest"] and orders.read_by == []
    assert catalog.table("raw_orders").read_by == ["ingest"]
    columns = {c.name: (c.type, c.status, c.description, c.owner) for c in orders.columns}
    assert columns == {
        "user_id": ("VARCHAR", "documented", "Who ordered.", None),
        "amount": ("DOUBLE", "documented", "Order total in EUR.", "finance"),
        "logical_date": ("VARCHAR", "undocumented", "", None),
        "discount": (None, "vanished", "Dropped in November.", None),
    }
    assert catalog.report() == {
        "undocumented_tables": ["raw_orders"],
        "vanished_tables": ["legacy_sales"],
        "undocumented_columns": {"orders": ["logical_date"], "raw_orders": ["user_id", "amount"]},
        "vanished_columns": {"orders": ["discount"]},
    }
    assert not catalog.complete


def test_markdown_pages_show_docs_lineage_and_what_to_document(runtime: Runtime, tmp_path: Path) -> None:
    graph = LineageGraph.load(runtime.metadata, "shop")
    catalog = build_catalog(tmp_path, runtime.warehouse("shop"), graph=graph)
    written = write_markdown(catalog, tmp_path / "site")
    assert sorted(p.name for p in written) == [
        "events.md",
        "index.md",
        "legacy_sales.md",
        "orders.md",
        "raw_orders.md",
        "rejected_events.md",
    ]
    index = (tmp_path / "site" / "index.md").read_text()
    assert "| [orders](orders.md) | data-team | 2 | Orders with a positive amount" in index
    assert "- table `raw_orders` has no description" in index
    assert "- `orders`: `discount` documented but gone" in index
    page = (tmp_path / "site" / "orders.md").read_text()
    assert page.startswith("# orders\n\nOrders with a positive amount, one partition per logical date.\n")
    assert "- written by pipeline(s): ingest" in page and "- described in: `catalog/kpis.yaml`" in page
    assert "| `amount` | DOUBLE | Order total in EUR. | finance |" in page
    assert "| `discount` (vanished: in the docs only) |  | Dropped in November. |  |" in page


def test_kawa_catalog_writes_docs_and_fails_the_check_until_complete(
    runtime: Runtime, tmp_path: Path
) -> None:
    cli = CliRunner()
    env = {"KAWA_CONFIG": str(tmp_path / "kawa.yaml"), "COLUMNS": "200"}
    checked = cli.invoke(app, ["catalog", "--check"], env=env)
    assert checked.exit_code == 1, checked.output
    assert "5 tables: 1 undocumented, 1 vanished; 3 undocumented and 1 vanished columns" in checked.output
    assert (tmp_path / "docs" / "catalog" / "orders.md").is_file()

    (tmp_path / "catalog" / "kpis.yaml").write_text(
        textwrap.dedent(
            """
            tables:
              orders:
                description: Orders.
                columns: {user_id: Who., amount: How much., logical_date: The run's day.}
              raw_orders:
                description: As loaded.
                columns: {user_id: Who., amount: How much.}
            """
        )
    )
    complete = cli.invoke(app, ["catalog", "--check", "--json", "--out", str(tmp_path / "out")], env=env)
    assert complete.exit_code == 0, complete.output
    data = json.loads(complete.output)
    assert data["report"] == {
        "undocumented_tables": [],
        "vanished_tables": [],
        "undocumented_columns": {},
        "vanished_columns": {},
    }
    assert (tmp_path / "out" / "index.md").is_file()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tables: [orders]", "expected `tables:` mapping"),
        ("tables:\n  orders: {descripton: x}", "unknown key(s) descripton"),
        ("tables:\n  orders: {columns: [a]}", "columns must map column names"),
        ("tables: {orders: x}\nviews: {}", "unknown top-level key(s) views"),
        ("tables: {orders: [", "not valid YAML"),
    ],
)
def test_malformed_catalog_files_are_refused_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "a.yaml").write_text(text)
    with pytest.raises(CatalogError, match=r"catalog/a\.yaml") as raised:
        load_docs(tmp_path)
    assert message in str(raised.value)


def test_a_table_is_described_in_one_file_only(tmp_path: Path) -> None:
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "a.yaml").write_text("tables: {orders: One.}")
    (tmp_path / "catalog" / "b.yml").write_text("tables: {orders: Two.}")
    with pytest.raises(CatalogError, match=r"already described in catalog/a\.yaml"):
        load_docs(tmp_path)
