"""The trigger worker: tails the event log, scores matching events, stores the results exactly once.

One loop reads what the log holds past the worker's offset (waking within a fraction of a millisecond
of a write), decodes each record's events once, drops repeated event_ids, updates the streaming
features, matches the triggers, scores the hits per model, and writes the predictions, counters, error
records, queued deliveries, a slice of the stream states and the new offset in ONE atomic online-store
write. The offset in the online store is the truth: after a crash the worker resumes from it, so every
triggering event is scored once and counters never drift from the results they count; what the
streaming features had not stored yet is rebuilt from the log (see `_states`).

Several workers (`triggers.workers`, Redis event log) split the events by entity key into partitions
(`_partition`); each partition reads the log through its own consumer group, keeps its own offset and
state, and acknowledges its records once the write that covers them returned (see `runner`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec

from kawa.events.schema import KIND_EVENTS, LogBatch
from kawa.models import Registry
from kawa.observe import tracing
from kawa.stores.eventlog import EventLog, GroupReader, Record
from kawa.stores.online import OnlineStore
from kawa.triggers import state
from kawa.triggers._dedupe import RecentIds
from kawa.triggers._partition import Partition, event_filter
from kawa.triggers._results import Puts, add_results, fold_latencies, now_rfc3339
from kawa.triggers._scoring import Hit, Scorer
from kawa.triggers._states import StreamStates
from kawa.triggers._tail import LogWaiter
from kawa.triggers._threads import single_threaded
from kawa.triggers.delivery import Deliverer, EmitSender, WebhookSender
from kawa.triggers.spec import Trigger
from kawa.triggers.state import Position, TriggerStats

log = logging.getLogger("kawa.triggers")

CONSUMER = "triggers"  # the checkpoint (and on Redis the group) of the sole partition
READ_BYTES = 1 << 20  # per read: big enough to amortise a commit when behind, small enough to stay fresh
IDLE_WRITE_S = 1.0  # how long an offset with nothing else to write may wait before it is stored
# Under load, batches start at least this far apart, so each carries more events for its fixed costs
# (a log read, a store write); an event arriving at an idle worker is read at once.
MIN_BATCH_S = 0.001
# A read may hold hundreds of milliseconds of work when the worker is behind (a 1 MiB read is ~10
# background batches of 500 events): once a batch has worked this long and holds hits, it stops at
# the end of the current record and writes them; the records left are the next batch's, unread again.
STEP_BUDGET_S = 0.005

_batch = msgspec.msgpack.Decoder(LogBatch)
_lines = msgspec.json.Decoder()


class TriggerWorker:
    """Runs `triggers` of `project` over the event log; one per state folder (`kawa serve` starts it)."""

    def __init__(
        self,
        *,
        project: str,
        triggers: Sequence[Trigger],
        event_log: EventLog,
        online: OnlineStore,
        registry: Registry,
        api_url: str | None = None,
        write_key: str | None = None,
        partition: Partition | None = None,
        consumer: str | None = None,
    ) -> None:
        self.project = project
        self.triggers = list(triggers)
        self.log = event_log
        self.online = online
        self.partition = partition = partition or Partition()
        self.tag = partition.tag
        self._mine = event_filter(partition, self.triggers) if partition.count > 1 else None
        self.scorer = Scorer(registry, online, project)
        position = state.read_position(online, self.tag)
        new = position is None
        if position is None:
            # A first start begins at the end: events sent before triggers existed are not scored.
            end = event_log.end_offset()
            position = Position(offset=end, project=project, dedupe_from=end)
        position.project = project
        position.triggers = [t.name for t in self.triggers]
        self.position = position
        self.offset = position.offset
        self.stats = self._load_stats()
        self._dirty: set[str] = set(self.stats)  # written with the first batch: declarations may change
        self._latencies: dict[str, list[float]] = defaultdict(list)
        self.recent = RecentIds()
        views = {view.name: view for t in self.triggers for view in t.features}
        self.states = (
            StreamStates(list(views.values()), online, project, self.offset, partition) if views else None
        )
        self._recover()
        self.deliverers = self._deliverers(api_url, write_key)
        self._keep_from = min(self.offset, self.position.dedupe_from)
        self.reader: GroupReader | None = None
        self._unacked: list[int] = []
        self._left: list[Record] = []  # records read but not processed yet (a batch stopped early)
        self._left_end = 0  # the offset after them
        self._written_at = time.monotonic()
        self._lock = threading.Lock()
        if self.states is not None or new:
            # Every shard stamped where the worker is; a new position stored before any record is
            # read, so whoever takes the partition over goes on from here, not from a later end.
            self._write([], self.offset, 0, everything=True)
        if consumer is not None:
            self.reader = self._group(consumer)  # records come from the partition's consumer group

    # -- set-up ------------------------------------------------------------------------------------

    def _load_stats(self) -> dict[str, TriggerStats]:
        stored = state.read_stats(self.online, self.project, self.tag)
        out = {}
        for trigger in self.triggers:
            stats = stored.get(trigger.name) or TriggerStats(definition={})
            stats.definition = trigger.describe()
            out[trigger.name] = stats
        return out

    def _recover(self) -> None:
        """Read the log again up to the offset: the duplicate window, and stream states not stored yet."""
        start, end = self.position.dedupe_from, self.position.offset
        states = self.states
        if states is not None and states.oldest is not None:
            start = min(start, states.oldest)
        seen = self.recent.ids
        while start < end:
            result = self.log.read(start, max_bytes=16 * READ_BYTES)
            if not result.records:
                break
            for record in result.records:
                offset = record.offset
                if offset >= end:
                    return
                batch = _batch.decode(record.payload)
                if batch.kind != KIND_EVENTS or batch.project != self.project:
                    continue
                tracked = offset >= self.position.dedupe_from
                times = memoryview(batch.times).cast("q")
                fresh: list[str] = []
                for i, event in enumerate(_lines.decode_lines(batch.body)):
                    found = event.get("event_id")
                    event_id = batch.id_prefix + str(i) if found is None else str(found)
                    if self._mine is not None and not self._mine(event, event_id):
                        continue
                    if tracked:
                        if event_id in seen:
                            continue
                        seen.add(event_id)
                        fresh.append(event_id)
                    if states is not None:
                        states.replay(event, times[i], offset)
                self.recent.remember(offset, fresh)
            start = result.next_offset

    def _deliverers(self, api_url: str | None, write_key: str | None) -> dict[tuple[str, str], Deliverer]:
        out: dict[tuple[str, str], Deliverer] = {}
        for t in self.triggers:
            if t.webhook:
                sender = WebhookSender(t.webhook)
                out[t.name, "webhook"] = Deliverer(
                    self.online, self.project, t.name, "webhook", sender, self.tag
                )
            if t.emit:
                emitter = EmitSender(api_url or "http://127.0.0.1:8642", write_key, self.project)
                out[t.name, "emit"] = Deliverer(self.online, self.project, t.name, "emit", emitter, self.tag)
        return out

    def _group(self, consumer: str) -> GroupReader:
        """The partition's group reader, holding every record a previous holder left unacknowledged.

        Only the lease holder reads a partition's group, so whatever is pending there was handed to
        a holder that died (or to this consumer before a restart): claim it all, and `read` hands it
        out first, in log order. What the stored offset shows as done is acknowledged unprocessed.
        """
        # A new group starts where a restart would read from (not the whole log).
        if self.log.committed(self.partition.group) < self._keep_from:
            self.log.commit(self.partition.group, self._keep_from)
        reader = self.log.group(self.partition.group, consumer)
        claimed = reader.claim_stale(0.0, max_bytes=1 << 62)
        if claimed:
            log.info(
                "trigger partition %s: claimed %d log records a stopped worker left unacknowledged",
                self.partition.group, len(claimed),
            )  # fmt: skip
        return reader

    def warm_up(self) -> None:
        """Load every trigger's model now, so the first event does not wait for imports and files."""
        for model, alias in {(t.model, t.alias) for t in self.triggers}:
            try:
                self.scorer.model(model, alias)
            except Exception as exc:  # not registered yet: its events get error records until it is
                log.warning("trigger model %s@%s is not ready: %s", model, alias, exc)

    # -- running -----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Process the log until `stop` is set; returns after storing where it got to."""
        for deliverer in self.deliverers.values():
            deliverer.start()
        waiter = LogWaiter(self.log)
        log.info(
            "trigger worker for project %r at log offset %d: %s (log writes %s)",
            self.project,
            self.offset,
            ", ".join(t.name for t in self.triggers) or "no triggers",
            "wake it at once" if waiter.notified else "are polled",
        )
        try:
            with single_threaded():  # after `warm_up`: the models' OpenMP runtimes are loaded to be limited
                while not stop.is_set():
                    if any(d.full for d in self.deliverers.values()):
                        stop.wait(0.05)  # a receiver is behind: leave the log where it is, catch up later
                        continue
                    waiter.clear()
                    started = time.monotonic()
                    if not self.step():
                        waiter.wait(0.1)
                    elif (rest := MIN_BATCH_S - (time.monotonic() - started)) > 0:
                        time.sleep(rest)
        finally:
            waiter.close()
            self.flush()
            for deliverer in self.deliverers.values():
                deliverer.stop()

    def step(self) -> bool:
        """Process what the log holds past the offset (one read); False if there was nothing new."""
        if not self.triggers:
            return self._skip()
        records, next_offset = self._read()
        if not records:
            idle = time.monotonic() - self._written_at > IDLE_WRITE_S
            if idle and (self.offset != self.position.offset or self._unacked):
                self._write([], next_offset, 0)
            return False
        hits, applied, done = self._apply(records, time.monotonic() + STEP_BUDGET_S)
        if done < len(records):
            self._left, self._left_end = records[done:], next_offset
            next_offset = records[done].offset
            records = records[:done]
        if self.reader is not None:
            self._unacked.extend(r.offset for r in records)
        if hits:
            self.scorer.score(hits)
        if hits or applied or time.monotonic() - self._written_at > IDLE_WRITE_S:
            self._write(hits, next_offset, applied)
        self.offset = next_offset
        return True

    def _read(self) -> tuple[list[Record], int]:
        """The next records past the offset, and the offset after them."""
        if self._left:
            records, self._left = self._left, []
            return records, self._left_end
        if self.reader is None:
            result = self.log.read(self.offset, max_bytes=READ_BYTES)
            return result.records, result.next_offset
        # A group hands out what this partition has not acknowledged: records the stored offset
        # shows as done (written before a crash, not acknowledged) are acknowledged as they are.
        handed = self.reader.read(max_bytes=READ_BYTES)
        done = [r.offset for r in handed if r.offset < self.offset]
        if done:
            self.reader.ack(done)
        records = [r for r in handed if r.offset >= self.offset]
        if not records:
            return [], self.offset
        last = records[-1]
        return records, last.offset + len(last.payload) + 1

    def _skip(self) -> bool:
        """Without triggers, keep up with the log without reading it (a trigger added later starts there)."""
        end = self.log.end_offset()
        if end == self.offset:
            return False
        self.offset = end
        if time.monotonic() - self._written_at > IDLE_WRITE_S:
            self._write([], end, 0)
        return True

    def flush(self) -> None:
        """Store the offset if a batch with nothing else to store moved it."""
        if self.offset != self.position.offset:
            self._write([], self.offset, 0)

    def checkpoint(self) -> None:
        """Make the results written so far durable, then tell the event log what it must keep.

        The committed offset is where a restart would read from (the duplicate window and the stream
        states not stored yet go back before the worker's offset); the log may drop what lies before.
        """
        with self._lock:
            offset = self._keep_from
        self.online.sync()  # everything committed before this call, the write that chose `offset` included
        self.log.commit(self.partition.group, offset)

    # -- one batch ---------------------------------------------------------------------------------

    def _apply(self, records: Sequence[Any], until: float) -> tuple[list[Hit], int, int]:
        """The hits of `records`, how many events updated the streaming features, how many records it took.

        Past the monotonic time `until`, it stops after the first record that leaves it holding hits.
        """
        hits: list[Hit] = []
        project, states = self.project, self.states
        tests = [(trigger, trigger.match.test) for trigger in self.triggers]
        apply = states.apply if states is not None else None
        seen = self.recent.ids
        position = self.position
        mine = self._mine
        applied = 0
        for done, record in enumerate(records, 1):
            if hits and done > 1 and time.monotonic() > until:
                return hits, applied, done - 1
            batch = _batch.decode(record.payload)
            if batch.kind != KIND_EVENTS or batch.project != project:
                continue
            events = _lines.decode_lines(batch.body)
            times = memoryview(batch.times).cast("q")
            prefix, received_at, offset = batch.id_prefix, batch.received_at, record.offset
            fresh: list[str] = []
            for i, event in enumerate(events):
                found = event.get("event_id")
                event_id = prefix + str(i) if found is None else found if type(found) is str else str(found)
                if mine is not None and not mine(event, event_id):
                    continue
                if event_id in seen:
                    position.duplicates += 1
                    continue
                seen.add(event_id)
                fresh.append(event_id)
                t_us = times[i]
                if apply is not None:
                    apply(event, t_us)
                for trigger, test in tests:
                    if test(event):
                        hits.append(self._hit(trigger, event, event_id, t_us, received_at, offset, i))
            if apply is not None:
                applied += len(fresh)
            position.events += len(fresh)
            position.received_at = received_at
            self.recent.remember(offset, fresh)
        return hits, applied, len(records)

    def _hit(
        self,
        trigger: Trigger,
        event: dict[str, Any],
        event_id: str,
        t_us: int,
        received_at: int,
        offset: int,
        line: int,
    ) -> Hit:
        hit = Hit(trigger, event, event_id, t_us, received_at, offset, line, trigger.key_of(event))
        if hit.entity is None:
            hit.fail("key", f"the event has no {trigger.key}; it is needed as the entity key")
            return hit
        if trigger.features and self.states is not None:
            # Now, before later events of the batch are applied: the values as of this event.
            try:
                for view in trigger.features:
                    key = view.key_of(event)
                    if key is not None:
                        hit.stream.update(self.states.values(view, key, t_us))
            except Exception as exc:
                hit.fail("features", f"streaming features: {type(exc).__name__}: {exc}")
        return hit

    def _write(self, hits: list[Hit], next_offset: int, applied: int, *, everything: bool = False) -> None:
        """Store the batch's results, a slice of the stream states and the new offset in one atomic write."""
        puts: Puts = {}
        queued = add_results(puts, self.project, hits, self.stats, now_rfc3339(), self.tag)
        if self.states is not None:
            for ns, items in self.states.puts(applied, next_offset, everything=everything).items():
                puts.setdefault(ns, {}).update(items)
        self._dirty.update(hit.trigger.name for hit in hits)
        stats_puts = puts.setdefault(state.stats_ns(self.project), {})
        for name in self._dirty:
            fold_latencies(self.stats[name], self._latencies.pop(name, []))
            stats_puts[name + self.tag] = state.encode(self.stats[name])
        position = self.position
        position.offset = next_offset
        position.updated_at = time.time()
        start = self.recent.start
        position.dedupe_from = next_offset if start is None else start
        puts[state.WORKER_NS] = {state.POSITION + self.tag: state.encode(position)}
        self.online.write(puts)
        if self._unacked and self.reader is not None:
            # Acknowledged only once the write that covers them returned: a crash before leaves them
            # pending for the next holder of the partition.
            self.reader.ack(self._unacked)
            self._unacked = []
        done_us = time.time_ns() // 1000
        tracing.trigger_spans(self.project, hits, done_us)
        # A restart reads the log again from the oldest of these: the log must keep it.
        keep = min(position.dedupe_from, next_offset)
        if self.states is not None and self.states.oldest is not None:
            keep = min(keep, self.states.oldest)
        with self._lock:
            self._keep_from = keep
        self._written_at = time.monotonic()
        # Latencies are known once the write returned; they are stored with the next write.
        self._dirty = set()
        for hit in hits:
            if hit.error is None:
                self._latencies[hit.trigger.name].append((done_us - hit.received_at) / 1000)
                self._dirty.add(hit.trigger.name)
        for (name, channel), count in queued.items():
            self.deliverers[name, channel].queued(count)
