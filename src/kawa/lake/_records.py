"""Event log records as Arrow tables, and Parquet files written durably: the lake writer's plumbing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kawa.events.schema import LogBatch

_DAY_US = 86_400_000_000


def lines(body: bytes) -> pa.Table:
    """A one-column table of the newline-separated JSON lines of `body`, built without a Python loop."""
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 0x0A)
    count = len(ends) + 1
    # Line i is body[ends[i-1] + 1 : ends[i]]; with the newlines removed the lines lie end to end.
    lengths = np.diff(ends, prepend=-1, append=len(body)) - 1
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    text = body.replace(b"\n", b"")
    if len(text) < 2**31:
        return pa.table(
            {
                "line": pa.StringArray.from_buffers(
                    count, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(text)
                )
            }
        )
    big = pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(text))
    return pa.table({"line": big.cast(pa.string())})


def events_arrow(batches: list[LogBatch]) -> pa.Table:
    """The lines of accepted-event records, with their time, receipt time, id prefix, project, row number."""
    column = lines(b"\n".join(b.body for b in batches)).column("line")
    times = np.frombuffer(b"".join(b.times for b in batches), dtype="<i8")
    counts = np.array([len(b.times) // 8 for b in batches], dtype=np.int64)
    if int(counts.sum()) != len(column):
        raise ValueError("event log record is inconsistent: line count differs from time count")
    which = np.repeat(np.arange(len(batches)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return pa.table(
        {
            "line": column,
            "ts": pa.array(times),
            "received_at": pa.array(np.array([b.received_at for b in batches], dtype=np.int64)[which]),
            "prefix": pa.DictionaryArray.from_arrays(
                pa.array(which.astype(np.int32)), pa.array([b.id_prefix for b in batches])
            ),
            "idx": pa.array(np.arange(len(column), dtype=np.int64) - starts),
            "project": pa.DictionaryArray.from_arrays(
                pa.array(which.astype(np.int32)), pa.array([b.project for b in batches])
            ).cast(pa.string()),
            "rowno": pa.array(np.arange(len(column), dtype=np.int64)),
        }
    )


def in_order_if_unique(parsed: pa.Table) -> pa.Table | None:
    """`parsed` sorted by rowno when it holds one project and no repeated event_id; else None."""
    if parsed.num_rows > 1:
        if pc.count_distinct(parsed.column("project")).as_py() > 1:
            return None
        if pc.count_distinct(parsed.column("event_id")).as_py() != parsed.num_rows:
            return None
        rowno = parsed.column("rowno").to_numpy()
        if not (np.diff(rowno) > 0).all():
            parsed = parsed.take(np.argsort(rowno, kind="stable"))
    return parsed


def days(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The UTC dates of microsecond timestamps."""
    micros = np.asarray(ts.to_numpy(), dtype=np.int64)
    return pa.array((micros // _DAY_US).astype(np.int32), pa.int32()).cast(pa.date32())


def write_parquet(table: pa.Table, target: Path) -> None:
    """Write `table` beside `target`, fsync it and rename it into place."""
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=256_000)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    tmp.replace(target)
