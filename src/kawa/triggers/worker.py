"""The trigger worker: tails the event log, scores matching events, stores the results exactly once.

One loop reads what the log holds past the worker's offset (waking within a fraction of a millisecond
of a write), decodes each record's events once, drops repeated event_ids, updates the streaming
features, matches the triggers, scores the hits per model, and writes the predictions, stream states,
counters, error records, queued deliveries and the new offset in ONE atomic online-store write. The
offset in the online store is the truth: after a crash the worker resumes from it, so every
triggering event is scored once, and counters never drift from the results they count.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from kawa.events.schema import KIND_EVENTS, LogBatch
from kawa.models import Registry
from kawa.serving.store import Prediction, now_rfc3339, realtime_namespace
from kawa.serving.store import encode as encode_prediction
from kawa.stores.eventlog import EventLog
from kawa.stores.online import OnlineStore
from kawa.triggers import state
from kawa.triggers._dedupe import RecentIds
from kawa.triggers._scoring import Hit, Scorer
from kawa.triggers._tail import LogWaiter
from kawa.triggers.delivery import Deliverer, emit_sender, webhook_sender
from kawa.triggers.spec import Trigger
from kawa.triggers.state import LATENCY_BUCKETS_MS, ErrorRecord, Position, TriggerStats

if TYPE_CHECKING:
    from kawa.streaming import StreamEngine

log = logging.getLogger("kawa.triggers")

CONSUMER = "triggers"
READ_BYTES = 1 << 20  # per read: big enough to amortise a commit when behind, small enough to stay fresh
IDLE_WRITE_S = 1.0  # how long an offset with nothing else to write may wait before it is stored

_batch = msgspec.msgpack.Decoder(LogBatch)
_lines = msgspec.json.Decoder()
_stats = msgspec.json.Decoder(TriggerStats)


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
    ) -> None:
        self.project = project
        self.triggers = list(triggers)
        self.log = event_log
        self.online = online
        self.scorer = Scorer(registry, online, project)
        position = state.read_position(online)
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
        self.recent.replay(event_log, project, position.dedupe_from, position.offset)
        self.engine = self._engine()
        self.deliverers = self._deliverers(api_url, write_key)
        self._last_written = self.offset
        self._written_at = time.monotonic()
        self._lock = threading.Lock()

    # -- set-up ------------------------------------------------------------------------------------

    def _load_stats(self) -> dict[str, TriggerStats]:
        stored = state.read_stats(self.online, self.project)
        out = {}
        for trigger in self.triggers:
            stats = stored.get(trigger.name) or TriggerStats(definition={})
            stats.definition = trigger.describe()
            out[trigger.name] = stats
        return out

    def _engine(self) -> StreamEngine | None:
        views = {view.name: view for t in self.triggers for view in t.features}
        if not views:
            return None
        from kawa.streaming import StreamEngine

        project, online = self.project, self.online

        def load(view: str, key: str) -> bytes | None:
            return online.get(state.stream_ns(project, view), key)

        return StreamEngine(list(views.values()), load=load)

    def _deliverers(self, api_url: str | None, write_key: str | None) -> dict[tuple[str, str], Deliverer]:
        out: dict[tuple[str, str], Deliverer] = {}
        for t in self.triggers:
            if t.webhook:
                out[t.name, "webhook"] = Deliverer(
                    self.online, self.project, t.name, "webhook", webhook_sender(t.webhook)
                )
            if t.emit:
                url = api_url or "http://127.0.0.1:8642"
                sender = emit_sender(url, write_key, self.project)
                out[t.name, "emit"] = Deliverer(self.online, self.project, t.name, "emit", sender)
        return out

    def warm_up(self) -> None:
        """Load every trigger's model now, so the first event does not wait for imports and files."""
        for model, alias in {(t.model, t.alias) for t in self.triggers}:
            try:
                registry = self.scorer.registry
                registry.load(self.project, model, registry.resolve(self.project, model, alias))
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
            while not stop.is_set():
                if any(d.full for d in self.deliverers.values()):
                    stop.wait(0.05)  # a receiver is behind: leave the log where it is and catch up later
                    continue
                waiter.clear()
                if not self.step():
                    waiter.wait(0.1)
        finally:
            waiter.close()
            self.flush()
            for deliverer in self.deliverers.values():
                deliverer.stop()

    def step(self) -> bool:
        """Process what the log holds past the offset (one read); False if there was nothing new."""
        result = self.log.read(self.offset, max_bytes=READ_BYTES)
        if not result.records:
            if self.offset != self.position.offset and time.monotonic() - self._written_at > IDLE_WRITE_S:
                self._write([], result.next_offset)
            return False
        hits, changed = self._apply(result.records)
        if hits:
            self.scorer.score(hits)
        if hits or changed or time.monotonic() - self._written_at > IDLE_WRITE_S:
            self._write(hits, result.next_offset)
        self.offset = result.next_offset
        return True

    def flush(self) -> None:
        """Store the offset if a batch with nothing else to store moved it."""
        if self.offset != self.position.offset:
            self._write([], self.offset)

    def checkpoint(self) -> None:
        """Make the results written so far durable, then tell the event log, so it can be trimmed."""
        with self._lock:
            offset = self._last_written
        self.online.sync()  # everything committed before this call, the write at `offset` included
        self.log.commit(CONSUMER, offset)

    # -- one batch ---------------------------------------------------------------------------------

    def _apply(self, records: Sequence[Any]) -> tuple[list[Hit], bool]:
        """The hits of `records`, after feeding every new event of the project to the stream engine."""
        hits: list[Hit] = []
        project, triggers, engine = self.project, self.triggers, self.engine
        seen = self.recent.ids
        position = self.position
        changed = False
        for record in records:
            batch = _batch.decode(record.payload)
            if batch.kind != KIND_EVENTS or batch.project != project:
                continue
            events = _lines.decode_lines(batch.body)
            times = memoryview(batch.times).cast("q")
            prefix, received_at, offset = batch.id_prefix, batch.received_at, record.offset
            fresh: list[str] = []
            for i, event in enumerate(events):
                found = event.get("event_id")
                event_id = prefix + str(i) if found is None else str(found)
                if event_id in seen:
                    position.duplicates += 1
                    continue
                seen.add(event_id)
                fresh.append(event_id)
                t_us = times[i]
                if engine is not None:
                    engine.apply(event, t_us)
                    changed = True
                for trigger in triggers:
                    if trigger.match.test(event):
                        hits.append(self._hit(trigger, event, event_id, t_us, received_at, offset, i))
            position.events += len(fresh)
            position.received_at = received_at
            self.recent.remember(offset, fresh)
        return hits, changed

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
        if trigger.features and self.engine is not None:
            # Now, before later events of the batch are applied: the values as of this event.
            try:
                for view in trigger.features:
                    key = view.key_of(event)
                    if key is not None:
                        hit.stream.update(self.engine.values(view.name, key, t_us))
            except Exception as exc:
                hit.fail("features", f"streaming features: {type(exc).__name__}: {exc}")
        return hit

    def _write(self, hits: list[Hit], next_offset: int) -> None:
        """Store the batch's results and the new offset in one atomic write."""
        puts: dict[str, dict[str, bytes]] = defaultdict(dict)
        computed_at = now_rfc3339()
        queued: dict[tuple[str, str], int] = defaultdict(int)
        for hit in hits:
            trigger = hit.trigger
            stats = self.stats[trigger.name]
            self._dirty.add(trigger.name)
            stats.matched += 1
            if hit.error is not None:
                stats.errors += 1
                record = ErrorRecord(
                    seq=stats.errors, at=computed_at, stage=hit.stage or "model", error=hit.error,
                    event_id=hit.event_id, entity=hit.entity, offset=hit.offset, model_version=hit.version,
                )  # fmt: skip
                ns = state.errors_ns(self.project, trigger.name)
                puts[ns][state.error_key("e", stats.errors)] = state.encode(record)
                continue
            assert hit.entity is not None and hit.version is not None
            stats.scored += 1
            stats.last_version = hit.version
            stats.last_scored_at = computed_at
            prediction = Prediction(
                score=hit.score, model_version=hit.version, computed_at=computed_at, source="realtime",
                event_id=hit.event_id, trigger=trigger.name,
            )  # fmt: skip
            puts[realtime_namespace(self.project, trigger.model)][hit.entity] = encode_prediction(prediction)
            key = f"{hit.offset:020d}-{hit.line:06d}"
            for channel, body in _deliveries(hit, computed_at):
                puts[state.outbox_ns(self.project, trigger.name, channel)][key] = body
                queued[trigger.name, channel] += 1
                stats.queued += 1
        if self.engine is not None:
            for view, key, value in self.engine.take_dirty():
                puts[state.stream_ns(self.project, view)][key] = value
        for name in self._dirty:
            self._fold_latencies(name)
            puts[state.stats_ns(self.project)][name] = state.encode(self.stats[name])
        self.position.offset = next_offset
        self.position.updated_at = time.time()
        start = self.recent.start
        self.position.dedupe_from = next_offset if start is None else start
        puts[state.WORKER_NS][state.POSITION] = state.encode(self.position)
        self.online.write(puts)
        done_us = time.time_ns() // 1000
        with self._lock:
            self._last_written = next_offset
        self._written_at = time.monotonic()
        self._dirty = set()
        for hit in hits:
            if hit.error is None:
                self._latencies[hit.trigger.name].append((done_us - hit.received_at) / 1000)
                self._dirty.add(hit.trigger.name)
        for (name, channel), count in queued.items():
            self.deliverers[name, channel].queued(count)

    def _fold_latencies(self, name: str) -> None:
        """Add the latencies measured after the last write to the trigger's histogram."""
        found = self._latencies.pop(name, None)
        if not found:
            return
        stats = self.stats[name]
        for ms in found:
            stats.latency_counts[bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
            stats.latency_sum_ms += ms
        stats.last_latency_ms = round(found[-1], 3)


def _deliveries(hit: Hit, computed_at: str) -> list[tuple[str, bytes]]:
    """The outbox entries of a scored hit: its webhook body and its emitted event, as configured."""
    trigger = hit.trigger
    out: list[tuple[str, bytes]] = []
    result = {
        "trigger": trigger.name,
        "model": trigger.model,
        "model_version": hit.version,
        "entity": hit.entity,
        "score": hit.score,
        "event_id": hit.event_id,
        "event_name": hit.event.get("event_name"),
        "computed_at": computed_at,
    }
    if trigger.webhook:
        out.append(("webhook", state.encode({"id": f"{trigger.name}:{hit.event_id}", **result})))
    if trigger.emit:
        keys = hit.event.get("keys")
        emitted: Mapping[str, Any] = {
            "event_id": f"{trigger.name}:{hit.event_id}",
            "event_name": trigger.emit,
            "keys": {k: v for k, v in keys.items() if k != "api_key"} if isinstance(keys, dict) else {},
            "sync_date": computed_at,
            **{k: v for k, v in result.items() if k not in ("event_id", "event_name", "computed_at")},
            "source_event_id": hit.event_id,
        }
        out.append(("emit", state.encode(emitted)))
    return out
