"""Compaction: merge a partition's small files into one, dropping repeated event_ids."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import msgspec

from kawa.lake.table import DataFile, LakeTable

# Files at least this large are left alone, so compaction never rewrites big files again and again.
TARGET_BYTES = 128 * 1024 * 1024
# One merge reads at most this much. It bounds the merge's memory and time (a merge runs beside the
# flushes and takes CPU from them), and it means files past MERGE_BYTES / compact_min_files (4 MiB
# with the default 16), as flushes under heavy load make, are already big enough to be left alone.
MERGE_BYTES = 64 * 1024 * 1024
# Small files are merged in tiers of similar size (below 4 MiB, 4-16 MiB, 16-64 MiB, ...), so a merged
# file is not merged again with every few new small ones: each byte is rewritten a few times at most.
_TIER_BASE = 4 * 1024 * 1024


def _tier(size: int) -> int:
    tier = 0
    while size >= _TIER_BASE << (2 * tier):
        tier += 1
    return tier


def merge_candidates(table: LakeTable, partition: dict[str, str], *, min_files: int) -> list[DataFile]:
    """The small files of `partition` the next merge takes: `min_files` or more of one size tier, or none."""
    tiers: dict[int, list[DataFile]] = {}
    for file in table.manifest().files:
        if file.partition == partition and file.bytes < TARGET_BYTES:
            tiers.setdefault(_tier(file.bytes), []).append(file)
    for _, group in sorted(tiers.items()):
        # At most MERGE_BYTES of input per merge, oldest first: one merge's time and memory stay bounded.
        total = 0
        chosen = []
        for file in group:
            if total + file.bytes > MERGE_BYTES:
                break
            chosen.append(file)
            total += file.bytes
        if len(chosen) >= min_files:
            return chosen
    return []


def compact_partition(
    table: LakeTable, partition: dict[str, str], *, min_files: int, db: duckdb.DuckDBPyConnection
) -> DataFile | None:
    """Merge small files of `partition` once `min_files` of them share a size tier; returns the new file."""
    small = merge_candidates(table, partition, min_files=min_files)
    if not small:
        return None
    sources = [str(table.path / f.path) for f in small]
    target = table.new_file(partition, f"compact-{uuid.uuid4().hex[:12]}.parquet")
    tmp = target.with_name(target.name + ".tmp")
    # Repeated event_ids are rare (the writer drops most): look at that one column first, and pay for
    # the window that keeps the first of each only when some id does repeat.
    repeats = db.execute(
        "SELECT count(*) - count(DISTINCT event_id) FROM read_parquet(?, hive_partitioning = false)",
        [sources],
    ).fetchall()[0][0]
    # Row groups of DuckDB's default size: the Parquet writer holds a whole row group in memory that
    # it cannot spill (256k rows of raw events needed >100MB at once), which is what bounds a merge.
    first_of_each = "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY received_at) = 1 "
    db.execute(
        "COPY (SELECT * FROM read_parquet(?, hive_partitioning = false) "
        + (first_of_each if repeats else "")
        + "ORDER BY sync_date) TO ? (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)",
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


class _Job(msgspec.Struct):
    """One merge for `merge_in_child`: which partition of which table, and the merge's DuckDB limits."""

    lake_root: str
    table: str
    project: str
    partition: dict[str, str]
    min_files: int
    memory_limit: str
    spill: str


def merge_in_child(
    table: LakeTable,
    partition: dict[str, str],
    *,
    min_files: int,
    memory_limit: str,
    spill: Path,
    timeout_s: float = 3600.0,
) -> DataFile | None:
    """`compact_partition` in a process of its own, which ends with the merge.

    A merge sorts and rewrites up to MERGE_BYTES of Parquet: hundreds of MB at its peak. In the
    long-lived lake writer the allocators keep such peaks after the merge ends (and each larger merge
    raises what they keep), so its memory would creep up for hours; a process that exits gives all of
    it back. The caller holds the table's COMPACTING lock; the child commits the manifest as an
    in-process merge would (the manifest's own lock orders it with the flushes).

    No process starts when the manifest shows no merge due: the writer asks after every flush, and
    starting Python with DuckDB costs about 0.15 CPU-seconds (at a flush a second, 0.15 of a core spent
    finding nothing to merge).
    """
    if not merge_candidates(table, partition, min_files=min_files):
        return None
    job = _Job(
        lake_root=str(table.path.parent.parent),
        table=table.table,
        project=table.project,
        partition=partition,
        min_files=min_files,
        memory_limit=memory_limit,
        spill=str(spill),
    )
    done = subprocess.run(
        [sys.executable, "-m", "kawa.lake.compact"],
        input=msgspec.json.encode(job),
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise RuntimeError(f"the merge process exited with {done.returncode}: " + " | ".join(tail))
    return msgspec.json.decode(done.stdout, type=DataFile | None)


def _main() -> None:
    job = msgspec.json.decode(sys.stdin.buffer.read(), type=_Job)
    db = duckdb.connect(config={"threads": 1, "memory_limit": job.memory_limit, "temp_directory": job.spill})
    try:
        merged = compact_partition(
            LakeTable(Path(job.lake_root), job.table, job.project),
            job.partition,
            min_files=job.min_files,
            db=db,
        )
    finally:
        db.close()
    sys.stdout.buffer.write(msgspec.json.encode(merged))


if __name__ == "__main__":
    _main()
