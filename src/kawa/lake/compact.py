"""Compaction: merge a partition's small files into one, dropping repeated event_ids."""

from __future__ import annotations

import os
import uuid

import duckdb

from kawa.lake.table import DataFile, LakeTable

# Files at least this large are left alone, so compaction never rewrites big files again and again.
TARGET_BYTES = 128 * 1024 * 1024


def compact_partition(
    table: LakeTable, partition: dict[str, str], *, min_files: int, db: duckdb.DuckDBPyConnection
) -> DataFile | None:
    """Merge the small files of `partition` once there are `min_files` of them; returns the new file."""
    small = [f for f in table.manifest().files if f.partition == partition and f.bytes < TARGET_BYTES]
    if len(small) < min_files:
        return None
    sources = [str(table.path / f.path) for f in small]
    target = table.new_file(partition, f"compact-{uuid.uuid4().hex[:12]}.parquet")
    tmp = target.with_name(target.name + ".tmp")
    db.execute(
        "COPY (SELECT * FROM read_parquet(?, hive_partitioning = false) "
        "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY received_at) = 1 "
        "ORDER BY sync_date) TO ? (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 256000)",
        [sources, str(tmp)],
    ).fetchall()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    tmp.replace(target)
    rows = db.execute("SELECT count(*) FROM read_parquet(?)", [str(target)]).fetchall()[0][0]
    entry = DataFile(
        path=str(target.relative_to(table.path)),
        rows=int(rows),
        bytes=target.stat().st_size,
        partition=partition,
    )
    table.commit([entry], remove=[f.path for f in small])
    return entry
