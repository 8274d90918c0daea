"""`kawa load`: CSV, Parquet and JSON Lines into warehouse tables, whole or by partition, atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kawa.warehouse import Warehouse
from kawa.warehouse.load import LoadError, load_file, parse_partition
from tests.conftest import kawa


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "lake", "shop")


def write_csv(path: Path, rows: list[tuple[object, ...]], header: str = "item_id,title,price") -> Path:
    path.write_text(header + "\n" + "\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return path


def test_csv_parquet_and_jsonl_load_and_replace(warehouse: Warehouse, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "items.csv", [("i1", "Shoe", 59.0), ("i2", "Hat", 19.5)])
    result = load_file(warehouse, "items", csv)
    assert (result.rows, result.columns) == (2, ["item_id", "title", "price"])
    assert warehouse.query("SELECT item_id, price FROM items ORDER BY 1").to_pylist() == [
        {"item_id": "i1", "price": 59.0},
        {"item_id": "i2", "price": 19.5},
    ]
    parquet = tmp_path / "items.parquet"
    pq.write_table(pa.table({"item_id": ["i9"], "title": ["Bag"], "price": [5.0]}), parquet)
    load_file(warehouse, "items", parquet)  # replaces the whole table
    assert warehouse.query("SELECT item_id FROM items").to_pylist() == [{"item_id": "i9"}]
    jsonl = tmp_path / "crm.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"user_id": f"u{i}", "tier": "gold" if i % 2 else "silver"}) for i in range(5))
    )
    load_file(warehouse, "crm", jsonl)
    assert warehouse.query("SELECT tier, count(*) AS n FROM crm GROUP BY 1 ORDER BY 1").to_pylist() == [
        {"tier": "gold", "n": 2},
        {"tier": "silver", "n": 3},
    ]


def test_partitions_replace_only_their_own_rows(warehouse: Warehouse, tmp_path: Path) -> None:
    day1 = write_csv(tmp_path / "d1.csv", [("o1", 10), ("o2", 20)], "order_id,amount")
    day2 = write_csv(tmp_path / "d2.csv", [("o3", 30)], "order_id,amount")
    load_file(warehouse, "orders", day1, partition={"order_date": "2026-11-01"})
    load_file(warehouse, "orders", day2, partition={"order_date": "2026-11-02"})
    fixed = write_csv(tmp_path / "d1b.csv", [("o1", 11)], "order_id,amount")
    load_file(
        warehouse, "orders", fixed, partition={"order_date": "2026-11-01"}
    )  # a rerun replaces, never appends
    rows = warehouse.query("SELECT order_date, order_id, amount FROM orders ORDER BY 2").to_pylist()
    assert rows == [
        {"order_date": "2026-11-01", "order_id": "o1", "amount": 11},
        {"order_date": "2026-11-02", "order_id": "o3", "amount": 30},
    ]


def test_a_bad_file_changes_nothing(warehouse: Warehouse, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "items.csv", [("i1", "Shoe", 59.0)])
    load_file(warehouse, "items", good)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(LoadError, match=r"cannot read broken\.parquet"):
        load_file(warehouse, "items", broken)
    assert warehouse.query("SELECT count(*) AS n FROM items").to_pylist() == [{"n": 1}]
    assert not list(warehouse.table("items").path.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("table", "file", "partition", "message"),
    [
        ("events", "items.csv", None, "kawa's own table"),
        ("Bad-Name", "items.csv", None, "not allowed"),
        ("items", "missing.csv", None, "no such file"),
        ("items", "items.xlsx", None, "cannot tell the format"),
    ],
)
def test_bad_requests_are_explained(
    warehouse: Warehouse,
    tmp_path: Path,
    table: str,
    file: str,
    partition: dict[str, str] | None,
    message: str,
) -> None:
    write_csv(tmp_path / "items.csv", [("i1", "Shoe", 59.0)])
    (tmp_path / "items.xlsx").write_bytes(b"x")
    with pytest.raises((LoadError, ValueError), match=message):
        load_file(warehouse, table, tmp_path / file, partition=partition)


def test_partition_flag_parsing() -> None:
    assert parse_partition("day=2026-11-01") == {"day": "2026-11-01"}
    assert parse_partition(None) is None
    for bad in ("day", "day=", "day=../x", "Bad=1"):
        with pytest.raises((LoadError, ValueError)):
            parse_partition(bad)


def test_cli_load_then_sql(tmp_path: Path) -> None:
    kawa("init", "--project", "shop", cwd=tmp_path)
    write_csv(tmp_path / "items.csv", [("i1", "Shoe", 59.0), ("i2", "Hat", 19.5)])
    out = kawa("load", "items", "items.csv", cwd=tmp_path)
    assert "loaded 2 rows into items" in out.stdout
    out = kawa("sql", "SELECT sum(price) AS total FROM items", "--format", "json", cwd=tmp_path)
    assert json.loads(out.stdout) == [{"total": 78.5}]
    bad = kawa("load", "events", "items.csv", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "kawa's own table" in bad.stderr
    bad = kawa("sql", "SELECT nope FROM items", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "nope" in bad.stderr
