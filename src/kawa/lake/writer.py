"""The lake writer: reads the event log through the `lake` consumer group and publishes Parquet, exactly once.

Each flush takes the records the group hands this writer (and, now and then, those another writer of
the group was handed and left unacknowledged for `claim_idle_s`), lets DuckDB parse the events' JSON in
one vectorised pass, drops event_ids already seen (client retries, records handed out twice), writes
one Parquet file per project and day, publishes them in the table manifests, and only then
acknowledges the records. A crash before the acknowledgement leaves files no manifest lists, deleted at
the next start, and the records pending: read again by the restarted writer (the file log, or a restart
under the same consumer name) or claimed by another writer (Redis); deduplication drops what was
published already. A published file is never written over: a batch whose name is taken gets `-r<n>`.

On the file event log the group has one consumer and its position is the `lake` checkpoint, so a state
folder goes on exactly where it was. On Redis several writers may share one lake; `_sharing` keeps them
out of each other's way, and each takes in the event_ids the others published before it publishes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import duckdb
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kawa.config import LakeConfig
from kawa.events.schema import EVENTS_SCHEMA, KIND_EVENTS, REJECTED_SCHEMA, LogBatch
from kawa.lake._feed import GROUP, GroupFeed
from kawa.lake._records import days, events_arrow, in_order_if_unique, lines, write_parquet
from kawa.lake._sharing import COMPACTING, PUBLISHING, SeenFiles, table_lock
from kawa.lake.compact import compact_partition, merge_in_child
from kawa.lake.table import DataFile, LakeTable
from kawa.stores.eventlog import EventLog

log = logging.getLogger("kawa.lake")
_FLUSHED = re.compile(r"part-(\d{20})(?:-r\d+)?\.parquet")

CONSUMER = GROUP  # the group's name, which is also the checkpoint it starts from
EVENTS = "events"
REJECTED = "rejected_events"
_DUCKDB_MEMORY = "384MB"
_decoder = msgspec.msgpack.Decoder(LogBatch)
_Merge = Callable[[LakeTable, dict[str, str]], DataFile | None]

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
# The ids of `fresh` that the window does not hold yet for project $project.
_NOT_RECENT_SQL = """
    SELECT f.event_id FROM fresh f
    ANTI JOIN (SELECT event_id FROM recent WHERE project = $project) r ON f.event_id = r.event_id
"""
_REJECTED_FIELDS = '{"reason":"VARCHAR","index":"BIGINT","event_id":"VARCHAR","payload":"VARCHAR"}'


class LakeWriter:
    """Moves events from the log into the lake; one per state folder on the file log, any number on Redis.

    `consumer` names this writer in the group: a writer restarted under the same name gets its own
    unacknowledged records back at once; under a new name, they are claimed after `claim_idle_s`.
    """

    def __init__(self, log: EventLog, lake_root: Path, config: LakeConfig, *, consumer: str = "lake") -> None:
        self.log = log
        self.lake_root = Path(lake_root)
        self.config = config
        self.consumer = consumer
        self.db = duckdb.connect()
        self.db.execute("SET threads = 1")
        # Bounded memory: big sorts (compaction) spill to disk instead of growing the process.
        self.db.execute(f"SET memory_limit = '{_DUCKDB_MEMORY}'")
        # Hand freed memory back soon (the default keeps up to 128MB-512MB cached in the allocator).
        self.db.execute("SET allocator_flush_threshold = '16MB'")
        self.db.execute("SET allocator_bulk_deallocation_flush_threshold = '16MB'")
        self._spill = self.lake_root.parent / "tmp" / "lake-spill"
        self._spill.mkdir(parents=True, exist_ok=True)  # DuckDB makes the last folder only
        self.db.execute("SET temp_directory = ?", [str(self._spill)])
        self._maintainer: threading.Thread | None = None
        self._due: set[tuple[str, str]] = set()
        self.db.execute("CREATE TABLE recent (project VARCHAR, event_id VARCHAR, seq BIGINT)")
        self._seq = 0
        self._seen = SeenFiles()
        self.feed = GroupFeed(log, consumer, config)
        try:
            self._recover()
        except BaseException:
            self.feed.close()
            raise

    @property
    def offset(self) -> int:
        """Everything before this log offset is in the lake (as far as this writer knows)."""
        return self.feed.offset

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
        """Drop files a crash left unlisted, and remember recent event_ids for deduplication."""
        for table in self._tables(EVENTS) + self._tables(REJECTED):
            # Another writer of the group may be between writing a file and listing it: wait for it.
            with table_lock(table, COMPACTING), table_lock(table, PUBLISHING):
                removed = table.remove_orphans()
            if removed:
                log.info("removed %d unpublished files from %s", removed, table.path)
        budget = self.config.dedupe_window_events
        for table in self._tables(EVENTS):
            files = table.manifest().files
            self._seen.reset(table.project, (f.path for f in files))
            chosen: list[str] = []
            rows = 0
            for f in reversed(files):
                if rows >= budget:
                    break
                chosen.append(str(table.path / f.path))
                rows += f.rows
            if chosen:
                self._remember(table.project, _event_ids(chosen))

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

    def _not_recent(self, project: str, ids: pa.Array) -> pa.Array:
        """The ids among `ids` that the window does not hold for `project`."""
        self.db.register("fresh", pa.table({"event_id": ids}))
        found = self.db.sql(_NOT_RECENT_SQL, params={"project": project}).to_arrow_table()
        self.db.unregister("fresh")
        return found.column("event_id").combine_chunks()

    # -- flushing --------------------------------------------------------------------------------

    def flush(self, *, background: bool = False) -> int:
        """Publish what the group hands this writer now; returns the events written.

        One read of up to `flush_max_bytes` is one file per project; another follows only when that
        read was cut short by the limit (the writer is behind). Records logged meanwhile wait for the
        next flush: going on while any arrive would, under steady load, publish a small file every few
        milliseconds, each paying a flush's fixed cost (a writer doing that never rests).

        Compaction and garbage collection follow each publish; with `background` they run in a thread
        of their own, so a long compaction does not hold back the next flush (events stay fresh).
        """
        written = 0
        claim = self.feed.claim_due()
        while True:
            try:
                records = self.feed.take(claim=claim)
                claim = False
                if not records:
                    return written
                first = records[0].offset
                events: list[LogBatch] = []
                rejected: list[LogBatch] = []
                for record in records:
                    batch = _decoder.decode(record.payload)
                    (events if batch.kind == KIND_EVENTS else rejected).append(batch)
                touched: set[tuple[str, str]] = set()
                if events:
                    written += self._write_events(events, first, touched)
                if rejected:
                    self._write_rejected(rejected, first)
                self.feed.settle(records)
            except BaseException:
                self.feed.drop()
                raise
            if background:
                self._maintain_later(touched)
            else:
                self._maintain(touched, self._merge_here)
            if sum(len(r.payload) for r in records) <= self.config.flush_max_bytes // 2:
                return written  # not cut short by the limit: what came since waits for the next flush

    def _write_events(self, batches: list[LogBatch], first: int, touched: set[tuple[str, str]]) -> int:
        table = events_arrow(batches)
        self.db.register("batch", table)
        # The usual flush repeats no event_id, seen before or within itself: then the parsed rows are
        # the answer, and the anti-join, window and sort of the full query run only when one repeats.
        parsed = self.db.sql(_PARSE_SQL).to_arrow_table()
        self.db.register("batch_ids", parsed.select(["project", "event_id"]))
        seen = self.db.execute(_SEEN_SQL).fetchall()[0][0]
        self.db.unregister("batch_ids")
        deduped = in_order_if_unique(parsed) if seen == 0 else None
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
                "_date": days(base.column("ts")),
            },
            schema=EVENTS_SCHEMA,
        )
        projects = base.column("project")
        names = pc.unique(projects).to_pylist()
        written = 0
        for project in names:
            mine = out if len(names) == 1 else out.filter(pc.equal(projects, project))
            lake = LakeTable(self.lake_root, EVENTS, project)
            with table_lock(lake, PUBLISHING):
                taken = self._catch_up(lake)
                if taken is not None:  # other writers published some of these ids meanwhile
                    mine = mine.filter(pc.invert(pc.is_in(mine.column("event_id"), value_set=taken)))
                if mine.num_rows == 0:
                    continue
                added = self._publish(lake, mine, first, touched)
                self._seen.add(project, (f.path for f in added))
            self._remember(project, mine.column("event_id").combine_chunks())
            written += mine.num_rows
        return written

    def _catch_up(self, lake: LakeTable) -> pa.Array | None:
        """Take into the window the event_ids of files others listed since this writer last looked.

        Returns those ids (None if there are none). Called under the table's publishing lock, so no
        file is listed between this look and this writer's publish.
        """
        files = lake.manifest().files
        unseen = self._seen.unseen(lake.project, files)
        self._seen.reset(lake.project, (f.path for f in files))
        if not unseen:
            return None
        taken: list[pa.Array] = []
        flushed = [str(lake.path / f.path) for f in unseen if _first_offset(f.path) is not None]
        if flushed:
            # A flushed file holds ids new to the lake: its writer dropped the others under this lock.
            ids = _event_ids(flushed)
            self._remember(lake.project, ids)
            taken.append(ids)
        merged = [str(lake.path / f.path) for f in unseen if _first_offset(f.path) is None]
        if merged:
            # A compaction's (or a load's) file mostly repeats ids of files seen already.
            ids = _event_ids(merged)
            self._remember(lake.project, self._not_recent(lake.project, ids))
            taken.append(ids)
        log.debug("took in the event_ids of %d files other lake writers listed", len(unseen))
        return pa.concat_arrays(taken)

    def _write_rejected(self, batches: list[LogBatch], first: int) -> None:
        by_project: dict[str, list[LogBatch]] = defaultdict(list)
        for b in batches:
            by_project[b.project].append(b)
        for project, group in by_project.items():
            body = b"\n".join(b.body for b in group)
            self.db.register("lines", lines(body))
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
                    "_date": days(received),
                },
                schema=REJECTED_SCHEMA,
            )
            lake = LakeTable(self.lake_root, REJECTED, project)
            with table_lock(lake, PUBLISHING):
                self._publish(lake, out, first, set())

    def _publish(
        self, lake: LakeTable, table: pa.Table, first: int, touched: set[tuple[str, str]]
    ) -> list[DataFile]:
        """Write `table`'s files (one per day) and list them; call under the table's publishing lock."""
        dates = pc.unique(table.column("_date")).to_pylist()
        added: list[DataFile] = []
        for day in dates:
            part = table if len(dates) == 1 else table.filter(pc.equal(table.column("_date"), day))
            partition = {"_date": day.isoformat()}
            # A name in use stays as it is: records read again (a replay after a crash, a failed
            # acknowledgement, a claim of a dead writer's records) may start at the offset of a file
            # published with rows that deduplication now leaves out; replacing it would lose them.
            target = lake.new_file(partition, f"part-{first:020d}.parquet")
            replay = 0
            while target.exists():
                replay += 1
                target = lake.new_file(partition, f"part-{first:020d}-r{replay}.parquet")
            write_parquet(part, target)
            added.append(
                DataFile(
                    path=str(target.relative_to(lake.path)),
                    rows=part.num_rows,
                    bytes=target.stat().st_size,
                    partition=partition,
                )
            )
            touched.add((lake.project, day.isoformat()))
        lake.commit(added, partition_by=["_date"])
        return added

    def _maintain(self, touched: set[tuple[str, str]], merge: _Merge) -> None:
        for project, day in touched:
            table = LakeTable(self.lake_root, EVENTS, project)
            with table_lock(table, COMPACTING):
                merged = merge(table, {"_date": day})
            if merged is not None:
                self._seen.add(project, [merged.path])  # its ids are in the window already
        for table in self._tables(EVENTS) + self._tables(REJECTED):
            table.collect_garbage(self.config.gc_grace_s)

    def _merge_here(self, table: LakeTable, partition: dict[str, str]) -> DataFile | None:
        return compact_partition(table, partition, min_files=self.config.compact_min_files, db=self.db)

    def _merge_in_child(self, table: LakeTable, partition: dict[str, str]) -> DataFile | None:
        return merge_in_child(
            table,
            partition,
            min_files=self.config.compact_min_files,
            memory_limit=_DUCKDB_MEMORY,
            spill=self._spill,
        )

    def _maintain_later(self, touched: set[tuple[str, str]]) -> None:
        """Start maintenance of what flushes touched, unless a round is still running (it is then due)."""
        self._due |= touched
        if self._maintainer is not None and self._maintainer.is_alive():
            return
        due, self._due = self._due, set()
        self._maintainer = threading.Thread(target=self._maintain_in_thread, args=(due,), daemon=True)
        self._maintainer.start()

    def _maintain_in_thread(self, due: set[tuple[str, str]]) -> None:
        # Merges yield the CPU to flushes (Linux nice applies per thread, and the merge process started
        # from this thread inherits it): freshness comes first.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        # Manifest commits take the table's file lock, so the merge process and the flushes never lose
        # a file. Merging in a process of its own keeps this long-lived writer's memory flat.
        try:
            self._maintain(due, self._merge_in_child)
        except Exception:
            log.exception("lake compaction failed; it is retried after the next flush")
            self._due |= due

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
        self.feed.close()
        self.db.close()


def _first_offset(path: str) -> int | None:
    """The log offset a flushed file is named for (`part-<offset>[-r<n>].parquet`), or None for others."""
    match = _FLUSHED.fullmatch(path.rsplit("/", 1)[-1])
    return None if match is None else int(match.group(1))


def _event_ids(paths: list[str]) -> pa.Array:
    """The event_id column of the Parquet files at `paths`, in one array."""
    return pq.read_table(paths, columns=["event_id"], partitioning=None).column("event_id").combine_chunks()
