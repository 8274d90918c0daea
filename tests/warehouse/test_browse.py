"""Browsing the warehouse: counts from manifests, a page of rows from only the files that hold it, SQL."""

from __future__ import annotations

import doctest
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kawa.lake.table import DataFile
from kawa.warehouse import SQLError, Warehouse, browse
from kawa.warehouse.load import write_table


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "lake", "shop")


def add_file(warehouse: Warehouse, table: str, data: pa.Table, partition: dict[str, str], name: str) -> Path:
    """One more Parquet file in `table`'s manifest (as the lake writer adds them, one per flush)."""
    lake = warehouse.table(table)
    path = lake.new_file(partition, name)
    pq.write_table(data, path, row_group_size=7)
    entry = DataFile(str(path.relative_to(lake.path)), data.num_rows, path.stat().st_size, partition)
    lake.commit([entry], partition_by=list(partition))
    return path


@pytest.fixture
def orders(warehouse: Warehouse) -> list[Path]:
    """`orders` in three files of 40, 25 and 35 rows over two days; ids 0..99 in file order."""
    paths = []
    start = 0
    for i, (rows, day) in enumerate([(40, "2026-01-01"), (25, "2026-01-02"), (35, "2026-01-02")]):
        ids = list(range(start, start + rows))
        data = pa.table(
            {"id": ids, "amount": [x * 1.5 for x in ids], "note": [f"n{x}" for x in ids], "day": [day] * rows}
        )
        paths.append(add_file(warehouse, "orders", data, {"day": day}, f"part-{i}.parquet"))
        start += rows
    return paths


def test_counts_come_from_the_manifest(warehouse: Warehouse, orders: list[Path]) -> None:
    found = {t.name: t for t in browse.summaries(warehouse)}
    assert set(found) == {"events", "rejected_events", "orders"}  # kawa's own tables are always there
    assert (found["orders"].rows, found["orders"].files, found["orders"].partitions) == (100, 3, 2)
    assert found["orders"].partition_by == ["day"]
    assert found["events"].rows == 0
    days = browse.partitions(warehouse, "orders")
    assert [(p.values["day"], p.rows, p.files) for p in days] == [
        ("2026-01-02", 60, 2),
        ("2026-01-01", 40, 1),
    ]
    # A count from the manifest, not COUNT(*): remove a file behind the manifest's back and it still says 100.
    orders[0].unlink()
    assert browse.summary(warehouse, "orders").rows == 100


def test_pages_cross_file_boundaries_in_file_order(warehouse: Warehouse, orders: list[Path]) -> None:
    seen: list[int] = []
    offset = 0
    while True:
        rows = browse.page(warehouse, "orders", offset, 15)
        assert rows.total == 100 and rows.offset == offset
        if not rows.rows:
            break
        assert [c for c, _ in rows.columns] == ["id", "amount", "note", "day"]
        seen.extend(r[0] for r in rows.rows)
        offset += 15
    assert seen == list(range(100))
    middle = browse.page(warehouse, "orders", 38, 30)  # files 1, 2 and 3
    assert [r[0] for r in middle.rows] == list(range(38, 68))
    assert middle.rows[0] == [38, 57.0, "n38", "2026-01-01"]
    assert browse.page(warehouse, "orders", 100, 10).rows == []


def test_a_page_reads_only_the_files_that_hold_it(warehouse: Warehouse, orders: list[Path]) -> None:
    orders[0].write_bytes(b"not parquet at all")  # rows 0-39
    assert [r[0] for r in browse.page(warehouse, "orders", 70, 10).rows] == list(range(70, 80))
    with pytest.raises(Exception, match=r"(?i)parquet|magic"):
        browse.page(warehouse, "orders", 0, 10)


def test_a_million_row_table_pages_to_its_end(warehouse: Warehouse) -> None:
    n = 1_000_000
    write_table(warehouse, "big", pa.table({"id": pa.array(range(n), pa.int64())}))
    last = browse.page(warehouse, "big", n - 30, 50)
    assert [r[0] for r in last.rows] == list(range(n - 30, n))
    assert last.total == n


def test_columns_carry_the_catalog_descriptions(
    warehouse: Warehouse, orders: list[Path], tmp_path: Path
) -> None:
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "shop.yaml").write_text(
        "tables:\n  orders:\n    description: One row per order.\n    owner: sales\n"
        "    columns:\n      amount: Order value in EUR.\n"
    )
    detail = browse.table_detail(warehouse, "orders", tmp_path)
    assert detail.description == "One row per order." and detail.owner == "sales"
    by_name = {c["name"]: c for c in detail.columns}
    assert by_name["amount"] == {"name": "amount", "type": "DOUBLE", "description": "Order value in EUR."}
    assert by_name["note"]["description"] == ""
    assert [p.values["day"] for p in detail.partitions] == ["2026-01-02", "2026-01-01"]
    listing = browse.listing(warehouse, tmp_path)
    assert listing.descriptions["orders"] == "One row per order."
    assert "refused" in listing.descriptions["rejected_events"]  # kawa documents its own tables
    (tmp_path / "catalog" / "shop.yaml").write_text("tables: [oops]\n")
    assert "catalog" in (browse.listing(warehouse, tmp_path).catalog_error or "")
    events = {c["name"]: c for c in browse.table_detail(warehouse, "events", tmp_path).columns}
    assert events["received_at"]["type"] == "TIMESTAMP WITH TIME ZONE"  # an empty built-in table has columns


def test_unknown_tables_and_bad_pages_are_refused(warehouse: Warehouse, orders: list[Path]) -> None:
    with pytest.raises(browse.TableNotFoundError, match="orders"):
        browse.page(warehouse, "nope", 0, 10)
    with pytest.raises(ValueError, match="limit"):
        browse.page(warehouse, "orders", 0, browse.MAX_PAGE_ROWS + 1)


def test_sql_results_are_cut_at_the_limit(warehouse: Warehouse, orders: list[Path]) -> None:
    result = browse.query_rows(warehouse, "SELECT id, day, {'a': id} AS s FROM orders ORDER BY id", 5)
    assert result.truncated and [r[0] for r in result.rows] == [0, 1, 2, 3, 4]
    assert result.rows[0][1:] == ["2026-01-01", {"a": 0}]
    whole = browse.query_rows(warehouse, "SELECT count(*) AS n FROM orders", 5)
    assert whole.rows == [[100]] and not whole.truncated
    with pytest.raises(SQLError, match="nope"):
        browse.query_rows(warehouse, "SELECT * FROM nope", 5)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(browse)
    assert result.attempted > 0 and result.failed == 0
