"""The lake writer: reads the event log from its checkpoint and publishes Parquet, exactly once.

Each flush takes every log record since the checkpoint, lets DuckDB parse the events' JSON in one
vectorised pass, drops event_ids already seen (client retries), writes one Parquet file per project and
day, publishes them in the table manifests, and only then commits the log checkpoint. A crash before the
checkpoint leaves unlisted files that are deleted on restart, and the records are read again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections import defaultdict
from pathlib import Path

import duckdb
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kawa.config import LakeConfig
from kawa.events.schema import EVENTS_SCHEMA, KIND_EVENTS, REJECTED_SCHEMA, LogBatch
from kawa.lake.compact import compact_partition
from kawa.lake.table import DataFile, LakeTable
from kawa.stores.eventlog import EventLog

log = logging.getLogger("kawa.lake")
_FLUSHED = re.compile(r"part-(\d{20})(?:-r\d+)?\.parquet")

CONSUMER = "lake"
EVENTS = "events"
REJECTED = "rejected_events"
_DAY_US = 86_400_000_000
_DUCKDB_MEMORY = "384MB"
_decoder = msgspec.msgpack.Decoder(LogBatch)

_FIELDS = (
    '{"event_id":"VARCHAR","event_name":"VARCHAR",'
    '"keys":{"user_id":"VARCHAR","visitor_id":"VARCHAR","session_id":"VARCHAR"},'
    '"page":"VARCHAR","item_id":"VARCHAR","category":"VARCHAR",'
    '"price":"DOUBLE","quantity":"BIGINT","revenue":"DOUBLE"}'
)
# The batch's events parsed; `_UNSEEN` drops those whose event_id the recent window has seen already.
_PARSE_SQL = f"""
    SELECT * FROM (
      SELECT coalesce(j.event_id, prefix || idx::VARCHAR) AS event_id, j.event_name,
             j.keys, j.page, j.item_id, j.category, j.price, j.quantity, j.revenue,
             rowno, project
      FROM (SELECT json_transform(line, '{_FIELDS}') AS j, * FROM batch)
    ) b
"""
_UNSEEN = """
    WHERE NOT EXISTS (SELECT 1 FROM recent r WHERE r.project = b.project AND r.event_id = b.event_id)
"""
# Within the batch, the first event of each event_id, in batch order.
_FIRST_OF_EACH_ID = """
    QUALIFY row_number() OVER (PARTITION BY project, event_id ORDER BY rowno) = 1
    ORDER BY rowno
"""
# How many of the batch's ids the recent window holds; the hash table is built on the (small) batch
# side, where NOT EXISTS would build one over the whole window (2M ids) on every flush.
_SEEN_SQL = """
    SELECT count(*) FROM recent r SEMI JOIN batch_ids b ON r.project = b.project AND r.event_id = b.event_id
"""
_REJECTED_FIELDS = '{"reason":"VARCHAR","index":"BIGINT","event_id":"VARCHAR","payload":"VARCHAR"}'


class LakeWriter:
    """Moves events from the log into the lake; one per state folder."""

    def __init__(self, log: EventLog, lake_root: Path, config: LakeConfig) -> None:
        self.log = log
        self.lake_root = Path(lake_root)
        self.config = config
        self.db = duckdb.connect()
        self.db.execute("SET threads = 1")
        # Bounded memory: big sorts (compaction) spill to disk instead of growing the process.
        self.db.execute(f"SET memory_limit = '{_DUCKDB_MEMORY}'")
        # Hand freed memory back soon (the default keeps up to 128MB-512MB cached in the allocator).
        self.db.execute("SET allocator_flush_threshold = '16MB'")
        self.db.execute("SET allocator_bulk_deallocation_flush_threshold = '16MB'")
        spill = self.lake_root.parent / "tmp" / "lake-spill"
        spill.mkdir(parents=True, exist_ok=True)  # DuckDB makes the last folder only
        self.db.execute("SET temp_directory = ?", [str(spill)])
        self._maintainer: threading.Thread | None = None
        self._due: set[tuple[str, str]] = set()
        self.db.execute("CREATE TABLE recent (project VARCHAR, event_id VARCHAR, seq BIGINT)")
        self._seq = 0
        self.offset = log.committed(CONSUMER)
        self._published_ahead: set[tuple[str, str, str]] = set()  # (table, project, path); see _recover
        self._recover()

    # -- start-up --------------------------------------------------------------------------------

    def _tables(self, name: str) -> list[LakeTable]:
        folder = self.lake_root / name
        if not folder.is_dir():
            return []
        return [
            LakeTable(self.lake_root, name, p.name.removeprefix("project="))
            for p in folder.iterdir()
            if p.name.startswith("project=")
        ]

    def _recover(self) -> None:
        """Drop files a crash left unpublished, and remember recent event_ids for deduplication."""
        for table in self._tables(EVENTS) + self._tables(REJECTED):
            removed = table.remove_orphans()
            if removed:
                log.info("removed %d unpublished files from %s", removed, table.path)
        # A crash between publishing a flush and committing the log checkpoint replays the log from that
        # flush's first offset, and the replay may read further than the flush did. Its rows are the
        # ones deduplication lets through (events after the published ones): they must go to a file of
        # their own, never over the published file of the same first offset, which still holds its rows.
        # Only files named for offsets at or past the checkpoint can be written again.
        for name in (EVENTS, REJECTED):
            for table in self._tables(name):
                for f in table.manifest().files:
                    first = _first_offset(f.path)
                    if first is not None and first >= self.offset:
                        self._published_ahead.add((name, table.project, f.path))
        budget = self.config.dedupe_window_events
        for table in self._tables(EVENTS):
            files = table.manifest().files
            chosen: list[str] = []
            rows = 0
            for f in reversed(files):
                if rows >= budget:
                    break
                chosen.append(str(table.path / f.path))
                rows += f.rows
            if chosen:
                ids = pq.read_table(chosen, columns=["event_id"], partitioning=None).column("event_id")
                self._remember(table.project, ids.combine_chunks())

    def _remember(self, project: str, ids: pa.Array) -> None:
        n = len(ids)
        if n == 0:
            return
        fresh = pa.table({"event_id": ids, "seq": np.arange(self._seq, self._seq + n, dtype=np.int64)})
        self._seq += n
        self.db.register("fresh", fresh)
        self.db.execute("INSERT INTO recent SELECT ?, event_id, seq FROM fresh", [project]).fetchall()
        self.db.unregister("fresh")
        window = self.config.dedupe_window_events
        if self._seq % max(window // 2, 1) < n:
            self.db.execute("DELETE FROM recent WHERE seq < ?", [self._seq - window]).fetchall()

    # -- flushing --------------------------------------------------------------------------------

    def flush(self, *, background: bool = False) -> int:
        """Publish everything the log holds past the checkpoint; returns the events written.

        Compaction and garbage collection follow each publish; with `background` they run in a thread
        of their own, so a long compaction does not hold back the next flush (events stay fresh).
        """
        written = 0
        while True:
            result = self.log.read(self.offset, max_bytes=self.config.flush_max_bytes)
            if not result.records:
                return written
            first = result.records[0].offset
            events: list[LogBatch] = []
            rejected: list[LogBatch] = []
            for record in result.records:
                batch = _decoder.decode(record.payload)
                (events if batch.kind == KIND_EVENTS else rejected).append(batch)
            touched: set[tuple[str, str]] = set()
            if events:
                written += self._write_events(events, first, touched)
            if rejected:
                self._write_rejected(rejected, first)
            self.log.commit(CONSUMER, result.next_offset)
            self.offset = result.next_offset
            self._forget_published_before(self.offset)
            if background:
                self._maintain_later(touched)
            else:
                self._maintain(touched, self.db)

    def _forget_published_before(self, offset: int) -> None:
        """Drop the files a re-read can no longer reach (named for offsets before the checkpoint)."""
        self._published_ahead = {
            entry for entry in self._published_ahead if (_first_offset(entry[2]) or 0) >= offset
        }

    def _write_events(self, batches: list[LogBatch], first: int, touched: set[tuple[str, str]]) -> int:
        table = _events_arrow(batches)
        self.db.register("batch", table)
        # The usual flush repeats no event_id, seen before or within itself: then the parsed rows are
        # the answer, and the anti-join, window and sort of the full query run only when one repeats.
        parsed = self.db.sql(_PARSE_SQL).to_arrow_table()
        self.db.register("batch_ids", parsed.select(["project", "event_id"]))
        seen = self.db.execute(_SEEN_SQL).fetchall()[0][0]
        self.db.unregister("batch_ids")
        deduped = _in_order_if_unique(parsed) if seen == 0 else None
        if deduped is None:
            deduped = self.db.sql(_PARSE_SQL + _UNSEEN + _FIRST_OF_EACH_ID).to_arrow_table()
        self.db.unregister("batch")
        rowno = deduped.column("rowno")
        whole = len(rowno) == len(table) and (len(rowno) == 0 or rowno[-1].as_py() == len(table) - 1)
        base = table if whole else table.take(rowno)  # rowno ascends, so all rows means 0..n-1
        out = pa.table(
            {
                "event_id": deduped.column("event_id"),
                "event_name": deduped.column("event_name"),
                "sync_date": base.column("ts").cast(pa.timestamp("us", tz="UTC")),
                "received_at": base.column("received_at").cast(pa.timestamp("us", tz="UTC")),
                "keys": deduped.column("keys"),
                "page": deduped.column("page"),
                "item_id": deduped.column("item_id"),
                "category": deduped.column("category"),
                "price": deduped.column("price"),
                "quantity": deduped.column("quantity"),
                "revenue": deduped.column("revenue"),
                "properties": base.column("line"),
                "_date": _days(base.column("ts")),
            },
            schema=EVENTS_SCHEMA,
        )
        projects = base.column("project")
        names = pc.unique(projects).to_pylist()
        for project in names:
            mine = out if len(names) == 1 else out.filter(pc.equal(projects, project))
            self._publish(EVENTS, project, mine, first, touched)
            self._remember(project, mine.column("event_id").combine_chunks())
        return out.num_rows

    def _write_rejected(self, batches: list[LogBatch], first: int) -> None:
        by_project: dict[str, list[LogBatch]] = defaultdict(list)
        for b in batches:
            by_project[b.project].append(b)
        for project, group in by_project.items():
            body = b"\n".join(b.body for b in group)
            lines = _lines(body)
            self.db.register("lines", lines)
            parsed = self.db.sql(
                f"SELECT j.* FROM (SELECT json_transform(line, '{_REJECTED_FIELDS}') AS j FROM lines)"
            ).to_arrow_table()
            self.db.unregister("lines")
            received = pa.array(
                np.concatenate(
                    [np.full(b.body.count(b"\n") + 1, b.received_at, dtype=np.int64) for b in group]
                )
            )
            out = pa.table(
                {
                    "received_at": received.cast(pa.timestamp("us", tz="UTC")),
                    "reason": parsed.column("reason"),
                    "index": parsed.column("index"),
                    "event_id": parsed.column("event_id"),
                    "payload": parsed.column("payload"),
                    "_date": _days(received),
                },
                schema=REJECTED_SCHEMA,
            )
            self._publish(REJECTED, project, out, first, set())

    def _publish(
        self, name: str, project: str, table: pa.Table, first: int, touched: set[tuple[str, str]]
    ) -> None:
        lake = LakeTable(self.lake_root, name, project)
        days = pc.unique(table.column("_date")).to_pylist()
        added: list[DataFile] = []
        for day in days:
            part = table if len(days) == 1 else table.filter(pc.equal(table.column("_date"), day))
            partition = {"_date": day.isoformat()}
            target = lake.new_file(partition, f"part-{first:020d}.parquet")
            replay = 0
            while (name, project, str(target.relative_to(lake.path))) in self._published_ahead:
                replay += 1
                target = lake.new_file(partition, f"part-{first:020d}-r{replay}.parquet")
            _write_parquet(part, target)
            added.append(
                DataFile(
                    path=str(target.relative_to(lake.path)),
                    rows=part.num_rows,
                    bytes=target.stat().st_size,
                    partition=partition,
                )
            )
            touched.add((project, day.isoformat()))
        lake.commit(added, partition_by=["_date"])
        # Until the checkpoint moves past them, a re-read of these records (the checkpoint commit
        # failed, e.g. the log's server went away) must not replace these files: dedupe would leave
        # their events out of the new file, and replacing the old one would lose them.
        self._published_ahead.update((name, project, f.path) for f in added)

    def _maintain(self, touched: set[tuple[str, str]], db: duckdb.DuckDBPyConnection) -> None:
        for project, day in touched:
            compact_partition(
                LakeTable(self.lake_root, EVENTS, project),
                {"_date": day},
                min_files=self.config.compact_min_files,
                db=db,
            )
        for table in self._tables(EVENTS) + self._tables(REJECTED):
            table.collect_garbage(self.config.gc_grace_s)

    def _maintain_later(self, touched: set[tuple[str, str]]) -> None:
        """Start maintenance of what flushes touched, unless a round is still running (it is then due)."""
        self._due |= touched
        if self._maintainer is not None and self._maintainer.is_alive():
            return
        due, self._due = self._due, set()
        self._maintainer = threading.Thread(target=self._maintain_in_thread, args=(due,), daemon=True)
        self._maintainer.start()

    def _maintain_in_thread(self, due: set[tuple[str, str]]) -> None:
        # Merges yield the CPU to flushes (Linux nice applies per thread): freshness comes first.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        # Manifest commits take the table's file lock, so this and the flushes never lose a file.
        db = self.db.cursor()  # a DuckDB connection may not be shared between threads; a cursor may
        try:
            self._maintain(due, db)
        except Exception:
            log.exception("lake compaction failed; it is retried after the next flush")
            self._due |= due
        finally:
            db.close()

    # -- running ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Flush every `flush_interval_s` until `stop` is set, then flush once more."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.flush(background=True)
            except Exception:
                log.exception("lake flush failed; retrying")
            stop.wait(max(self.config.flush_interval_s - (time.monotonic() - started), 0.01))
        self.flush(background=True)

    def close(self) -> None:
        if self._maintainer is not None:
            self._maintainer.join()
        self.db.close()


def _first_offset(path: str) -> int | None:
    """The log offset a flushed file is named for (`part-<offset>[-r<n>].parquet`), or None for others."""
    match = _FLUSHED.fullmatch(path.rsplit("/", 1)[-1])
    return None if match is None else int(match.group(1))


def _lines(body: bytes) -> pa.Table:
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
    lines = pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(text))
    return pa.table({"line": lines.cast(pa.string())})


def _events_arrow(batches: list[LogBatch]) -> pa.Table:
    lines = _lines(b"\n".join(b.body for b in batches)).column("line")
    times = np.frombuffer(b"".join(b.times for b in batches), dtype="<i8")
    counts = np.array([len(b.times) // 8 for b in batches], dtype=np.int64)
    if int(counts.sum()) != len(lines):
        raise ValueError("event log record is inconsistent: line count differs from time count")
    which = np.repeat(np.arange(len(batches)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return pa.table(
        {
            "line": lines,
            "ts": pa.array(times),
            "received_at": pa.array(np.array([b.received_at for b in batches], dtype=np.int64)[which]),
            "prefix": pa.DictionaryArray.from_arrays(
                pa.array(which.astype(np.int32)), pa.array([b.id_prefix for b in batches])
            ),
            "idx": pa.array(np.arange(len(lines), dtype=np.int64) - starts),
            "project": pa.DictionaryArray.from_arrays(
                pa.array(which.astype(np.int32)), pa.array([b.project for b in batches])
            ).cast(pa.string()),
            "rowno": pa.array(np.arange(len(lines), dtype=np.int64)),
        }
    )


def _in_order_if_unique(parsed: pa.Table) -> pa.Table | None:
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


def _days(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    micros = np.asarray(ts.to_numpy(), dtype=np.int64)
    return pa.array((micros // _DAY_US).astype(np.int32), pa.int32()).cast(pa.date32())


def _write_parquet(table: pa.Table, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=256_000)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    tmp.replace(target)
