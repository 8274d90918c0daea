"""Compaction: merge a partition's small files into one, dropping repeated event_ids."""

from __future__ import annotations

import os
import uuid

import duckdb

from kawa.lake.table import DataFile, LakeTable

# Files at least this large are left alone, so compaction never rewrites big files again and again.
TARGET_BYTES = 128 * 1024 * 1024
# Small files are merged in tiers of similar size (below 4 MiB, 4-16 MiB, 16-64 MiB, ...), so a merged
# file is not merged again with every few new small ones: each byte is rewritten a few times at most.
_TIER_BASE = 4 * 1024 * 1024


def _tier(size: int) -> int:
    tier = 0
    while size >= _TIER_BASE << (2 * tier):
        tier += 1
    return tier


def compact_partition(
    table: LakeTable, partition: dict[str, str], *, min_files: int, db: duckdb.DuckDBPyConnection
) -> DataFile | None:
    """Merge small files of `partition` once `min_files` of them share a size tier; returns the new file."""
    tiers: dict[int, list[DataFile]] = {}
    for file in table.manifest().files:
        if file.partition == partition and file.bytes < TARGET_BYTES:
            tiers.setdefault(_tier(file.bytes), []).append(file)
    small = next((group for _, group in sorted(tiers.items()) if len(group) >= min_files), [])
    if not small:
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
