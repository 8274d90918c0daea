"""`kawa load`: ELT of CSV, Parquet or JSON Lines files into a warehouse table, replaced atomically."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from kawa._durable import publish
from kawa.lake.table import DataFile, LakeTable, check_name
from kawa.warehouse.engine import BUILTIN, Warehouse

READERS = {
    "csv": "read_csv(?, auto_detect = true, header = true)",
    "tsv": "read_csv(?, auto_detect = true, header = true, delim = '\\t')",
    "parquet": "read_parquet(?, hive_partitioning = false)",
    "jsonl": "read_json(?, format = 'newline_delimited')",
    "json": "read_json(?, format = 'auto')",
}
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}


class LoadError(ValueError):
    """The file could not be loaded; nothing was changed. The message says why."""


@dataclass(frozen=True)
class LoadResult:
    table: str
    rows: int
    columns: list[str]
    partition: dict[str, str] | None


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in READERS:
            raise LoadError(f"unknown format {fmt!r}; use one of: {', '.join(READERS)}")
        return fmt
    suffixes = [s for s in path.suffixes if s != ".gz"]
    found = _SUFFIXES.get(suffixes[-1].lower()) if suffixes else None
    if found is None:
        raise LoadError(f"cannot tell the format of {path.name}; pass --format ({', '.join(READERS)})")
    return found


def parse_partition(text: str | None) -> dict[str, str] | None:
    """`column=value` as a one-entry dict (None for no partition)."""
    if not text:
        return None
    column, sep, value = text.partition("=")
    if not sep or not value or "/" in value or value.startswith("."):
        raise LoadError(f"--partition {text!r} must look like column=value, e.g. order_date=2026-11-01")
    return {check_name("partition column", column): value}


def load_file(
    warehouse: Warehouse,
    table: str,
    path: Path,
    *,
    partition: dict[str, str] | None = None,
    fmt: str | None = None,
) -> LoadResult:
    """Replace `table` (or one partition of it) with the rows of `path`, atomically."""
    check_name("table", table)
    if table in BUILTIN:
        raise LoadError(f"{table!r} is kawa's own table; load into another name")
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    reader = READERS[detect_format(path, fmt)]
    lake = warehouse.table(table)
    _check_partitioning(lake, table, partition)
    target = lake.new_file(partition or {}, f"load-{uuid.uuid4().hex[:12]}.parquet")
    tmp = target.with_name(target.name + ".tmp")
    db = duckdb.connect(config={"threads": 2})
    try:
        source = db.sql(f"SELECT * FROM {reader}", params=[str(path)])
        columns = source.columns
        select = "*"
        if partition:
            ((column, value),) = partition.items()
            quoted = value.replace("'", "''")
            select = (
                f"* REPLACE ('{quoted}' AS \"{column}\")"
                if column in columns
                else f"*, '{quoted}' AS \"{column}\""
            )
        db.execute(
            f"COPY (SELECT {select} FROM {reader}) TO ? (FORMAT parquet, COMPRESSION zstd)",
            [str(path), str(tmp)],
        ).fetchall()
        written = db.sql("SELECT * FROM read_parquet(?, hive_partitioning = false)", params=[str(tmp)])
        columns = written.columns
        rows = written.count("*").fetchall()[0][0]
    except duckdb.Error as exc:
        tmp.unlink(missing_ok=True)
        raise LoadError(f"cannot read {path.name}: {exc}") from None
    finally:
        db.close()
    _publish(lake, tmp, target, int(rows), partition)
    return LoadResult(table=table, rows=int(rows), columns=columns, partition=partition)


def write_table(
    warehouse: Warehouse, table: str, data: pa.Table, *, partition: dict[str, str] | None = None
) -> LoadResult:
    """Replace `table` (or one partition of it) with the Arrow table `data`, atomically."""
    check_name("table", table)
    if table in BUILTIN:
        raise LoadError(f"{table!r} is kawa's own table; write another name")
    lake = warehouse.table(table)
    _check_partitioning(lake, table, partition)
    if partition:
        ((column, value),) = partition.items()
        if column in data.column_names:
            data = data.drop_columns([column])
        data = data.append_column(column, pa.array([value] * data.num_rows, pa.string()))
    target = lake.new_file(partition or {}, f"write-{uuid.uuid4().hex[:12]}.parquet")
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(data, tmp, compression="zstd")
    _publish(lake, tmp, target, data.num_rows, partition)
    return LoadResult(table=table, rows=data.num_rows, columns=data.column_names, partition=partition)


def _check_partitioning(lake: LakeTable, table: str, partition: dict[str, str] | None) -> None:
    current = lake.manifest()
    if current.files and current.partition_by != (list(partition) if partition else []):
        had = ", ".join(current.partition_by) or "no partitions"
        raise LoadError(
            f"table {table!r} has {had}; load it the same way, or load the whole table under a new name"
        )


def _publish(lake: LakeTable, tmp: Path, target: Path, rows: int, partition: dict[str, str] | None) -> None:
    publish(tmp, target)
    entry = DataFile(
        path=str(target.relative_to(lake.path)),
        rows=rows,
        bytes=target.stat().st_size,
        partition=partition or {},
    )
    if partition:
        lake.commit([entry], replace_partitions=[partition], partition_by=list(partition))
    else:
        lake.commit([entry], replace_all=True, partition_by=[])
