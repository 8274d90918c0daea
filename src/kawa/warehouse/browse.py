"""Looking around the warehouse: tables with row counts and partitions, one table's columns, its rows a
page at a time, and SQL results cut to a limit.

Counts come from the lake manifests (never COUNT(*)), and a page of rows reads only the files that
hold it: the manifest says how many rows each file has, so page 5,000 of a million-row table opens
one file instead of scanning the 4,999 pages before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import duckdb
import pyarrow as pa

from kawa.lake.table import DataFile
from kawa.warehouse.engine import BUILTIN, SQLError, Warehouse

if TYPE_CHECKING:
    from kawa.catalog import TableDoc

MAX_PAGE_ROWS = 500


@dataclass(frozen=True)
class TableSummary:
    """A table as its manifest describes it."""

    name: str
    rows: int
    files: int
    bytes: int
    partition_by: list[str]
    partitions: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "files": self.files,
            "bytes": self.bytes,
            "partition_by": self.partition_by,
            "partitions": self.partitions,
        }


@dataclass(frozen=True)
class Partition:
    """One partition of a table: its column values and what it holds."""

    values: dict[str, str]
    rows: int
    files: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"values": self.values, "rows": self.rows, "files": self.files, "bytes": self.bytes}


@dataclass(frozen=True)
class Rows:
    """Rows of a table or a query: column (name, type) pairs and JSON-ready values.

    For a table page `total` is the table's row count and `offset` where the page starts; for a query
    `truncated` says there were more rows than the limit.
    """

    columns: list[tuple[str, str]]
    rows: list[list[Any]]
    offset: int = 0
    total: int | None = None
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": [{"name": n, "type": t} for n, t in self.columns],
            "rows": self.rows,
            "row_count": len(self.rows),
            "offset": self.offset,
            "total": self.total,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class TableDetail:
    """One table: its counts, its columns with the catalog's descriptions, and its newest partitions."""

    summary: TableSummary
    description: str
    owner: str | None
    columns: list[dict[str, Any]]  # name, type, description
    partitions: list[Partition]  # newest first, at most `max_partitions`
    catalog_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary.to_json(),
            "description": self.description,
            "owner": self.owner,
            "columns": self.columns,
            "partition_list": [p.to_json() for p in self.partitions],
            "catalog_error": self.catalog_error,
        }


@dataclass(frozen=True)
class TableListing:
    """The project's tables, their catalog descriptions, and why the catalog could not be read, if so."""

    tables: list[TableSummary]
    descriptions: dict[str, str]
    catalog_error: str | None = None


class TableNotFoundError(LookupError):
    """No such table in the project; the message names the tables there are."""


def summaries(warehouse: Warehouse) -> list[TableSummary]:
    """Every table of the project, with counts from its manifest."""
    return [summary(warehouse, name) for name in warehouse.tables()]


def summary(warehouse: Warehouse, name: str) -> TableSummary:
    """One table's row, file, byte and partition counts, from its manifest."""
    manifest = warehouse.table(_known(warehouse, name)).manifest()
    return TableSummary(
        name=name,
        rows=sum(f.rows for f in manifest.files),
        files=len(manifest.files),
        bytes=sum(f.bytes for f in manifest.files),
        partition_by=list(manifest.partition_by),
        partitions=len({tuple(sorted(f.partition.items())) for f in manifest.files})
        if manifest.partition_by
        else 0,
    )


def partitions(warehouse: Warehouse, name: str) -> list[Partition]:
    """The table's partitions, newest value first (dates sort as text), with their counts."""
    manifest = warehouse.table(_known(warehouse, name)).manifest()
    found: dict[tuple[tuple[str, str], ...], list[DataFile]] = {}
    for f in manifest.files:
        found.setdefault(tuple(f.partition.items()), []).append(f)
    out = [
        Partition(dict(key), sum(f.rows for f in files), len(files), sum(f.bytes for f in files))
        for key, files in found.items()
        if key
    ]
    return sorted(out, key=lambda p: tuple(p.values.values()), reverse=True)


def columns(warehouse: Warehouse, name: str) -> list[tuple[str, str]]:
    """The table's columns as SQL sees them: (name, DuckDB type)."""
    with _duckdb() as db:
        return _columns(db, warehouse, _known(warehouse, name))


def listing(warehouse: Warehouse, root: Path) -> TableListing:
    """Every table with its counts and the description the project's catalog (`catalog/*.yaml` under
    `root`) gives it."""
    docs, error = _catalog(root)
    tables = summaries(warehouse)
    return TableListing(tables, {t.name: docs[t.name].description for t in tables if t.name in docs}, error)


def table_detail(warehouse: Warehouse, name: str, root: Path, *, max_partitions: int = 200) -> TableDetail:
    """The table with the descriptions the project's catalog (`catalog/*.yaml` under `root`) gives it."""
    found = summary(warehouse, name)
    docs, error = _catalog(root)
    doc = docs.get(name)
    described = doc.columns if doc is not None else {}
    cols = [
        {"name": n, "type": t, "description": d.description if (d := described.get(n)) else ""}
        for n, t in columns(warehouse, name)
    ]
    return TableDetail(
        summary=found,
        description=doc.description if doc is not None else "",
        owner=doc.owner if doc is not None else None,
        columns=cols,
        partitions=partitions(warehouse, name)[:max_partitions],
        catalog_error=error,
    )


def page(warehouse: Warehouse, name: str, offset: int = 0, limit: int = 50) -> Rows:
    """Rows `offset` to `offset + limit` of the table in file order, reading only the files that hold them."""
    if offset < 0 or not 1 <= limit <= MAX_PAGE_ROWS:
        raise ValueError(f"offset must be 0 or more and limit 1 to {MAX_PAGE_ROWS}; got {offset} and {limit}")
    lake = warehouse.table(_known(warehouse, name))
    manifest = lake.manifest()
    total = sum(f.rows for f in manifest.files)
    start = 0
    chosen: list[str] = []
    skip = 0
    for f in manifest.files:
        end = start + f.rows
        if end > offset and start < offset + limit:
            if not chosen:
                skip = offset - start
            chosen.append(str(lake.path / f.path))
        start = end
    with _duckdb() as db:
        if not chosen:
            return Rows(_columns(db, warehouse, name), [], offset=offset, total=total)
        # The page's own files' columns: a page never reads the footers of the rest of the table.
        names = _columns(db, warehouse, name, chosen)
        table = db.sql(
            f"SELECT * FROM {_READ} LIMIT ? OFFSET ?", params=[chosen, limit, skip]
        ).to_arrow_table()
    return Rows(names, _aligned(table, [n for n, _ in names]), offset=offset, total=total)


def run_sql(warehouse: Warehouse, sql: str, limit: int) -> tuple[pa.Table, bool]:
    """`sql`'s first `limit` rows, and whether there were more; SQLError with DuckDB's message if it fails."""
    table = warehouse.query(sql, limit=limit + 1)
    return table.slice(0, limit), table.num_rows > limit


def query_rows(warehouse: Warehouse, sql: str, limit: int) -> Rows:
    """`run_sql` as JSON-ready rows with their column types."""
    table, truncated = run_sql(warehouse, sql, limit)
    columns_ = [(f.name, str(f.type)) for f in table.schema]
    return Rows(columns_, _aligned(table, [n for n, _ in columns_]), truncated=truncated)


def plain(value: Any) -> Any:
    """A value from the warehouse as JSON: times as ISO text, decimals as numbers, structs as objects.

    >>> plain({"when": datetime(2026, 1, 2, 3, 4, 5), "n": Decimal("1.5"), "tags": [b"x"]})
    {'when': '2026-01-02T03:04:05', 'n': 1.5, 'tags': ['x']}
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def _catalog(root: Path) -> tuple[dict[str, TableDoc], str | None]:
    from kawa.catalog import CatalogError, load_docs

    try:
        return load_docs(root), None
    except CatalogError as exc:
        return {}, f"the catalog files cannot be read: {exc}"


_READ = "read_parquet(?, union_by_name = true, hive_partitioning = false)"


def _duckdb() -> duckdb.DuckDBPyConnection:
    # Only files the manifest lists are read, by paths kawa builds, so no lock-down is needed here.
    return duckdb.connect(config={"threads": 2})


def _columns(
    db: duckdb.DuckDBPyConnection, warehouse: Warehouse, name: str, files: list[str] | None = None
) -> list[tuple[str, str]]:
    """The columns of `files` (default: every file of the table) as one schema, by name."""
    if files is None:
        files = [str(p) for p in warehouse.table(name).files()]
    if files:
        described = db.execute(f"DESCRIBE SELECT * FROM {_READ}", [files]).fetchall()
    elif name in BUILTIN:
        db.register("empty", BUILTIN[name].empty_table())
        described = db.execute("DESCRIBE SELECT * FROM empty").fetchall()
    else:
        return []
    return [(str(r[0]), str(r[1])) for r in described]


def _aligned(table: pa.Table, names: list[str]) -> list[list[Any]]:
    """The table's rows as lists in the order of `names` (a column a file lacks is null)."""
    data = {name: table.column(name).to_pylist() for name in table.column_names}
    empty = [None] * table.num_rows
    if not names:
        return []
    return [[plain(v) for v in row] for row in zip(*(data.get(n, empty) for n in names), strict=True)]


def _known(warehouse: Warehouse, name: str) -> str:
    tables = warehouse.tables()
    if name not in tables:
        raise TableNotFoundError(
            f"no table {name!r} in project {warehouse.project!r}; it has {', '.join(tables)}"
        )
    return name


__all__ = [
    "MAX_PAGE_ROWS",
    "Partition",
    "Rows",
    "SQLError",
    "TableDetail",
    "TableListing",
    "TableNotFoundError",
    "TableSummary",
    "columns",
    "listing",
    "page",
    "partitions",
    "plain",
    "query_rows",
    "run_sql",
    "summaries",
    "summary",
    "table_detail",
]
