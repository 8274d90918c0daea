"""Streaming feature states of the trigger worker, kept in the online store a slice at a time.

Storing every changed state with every batch costs an encode per event (most events of a batch touch
different entities), which was the worker's largest cost. Instead each view's entities are split by a
stable hash of their key into `SHARDS` shards, each with its own StreamEngine; every batch stores the
changed states of a few shards, round robin, with the log offset the shard is complete up to (its
stamp), in the same atomic write as the batch's results. Every shard is stored at least once per
`ROUND_S` seconds and `ROUND_EVENTS` events, so a hot entity's many changes cost one encode per round,
and no batch stalls on storing everything at once.

After a restart each shard's states are loaded as of its stamp; the worker reads the log again from the
oldest stamp and applies each event only to the shards whose stamp is at or before the event's record,
which rebuilds exactly the states the crashed worker had in memory. With several trigger workers,
each partition owns, stores and stamps whole shards (`_partition`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from kawa.stores.online import OnlineStore
from kawa.streaming import StreamEngine, StreamView
from kawa.triggers._partition import SHARDS, Partition, shard_of
from kawa.triggers.state import stream_ns

ROUND_S = 5.0
ROUND_EVENTS = 100_000  # within the duplicate window (200,000), so a replay sees the same duplicates
SHARD_MEMO = 1 << 18  # keys whose shard is remembered (forgotten all at once past this)

_stamp = msgspec.json.Decoder(int)


def stamps_ns(project: str) -> str:
    return f"stream-stamps/{project}"


class StreamStates:
    """The views' engines, one per (view, shard), and which of them to store with the next write."""

    def __init__(
        self,
        views: Sequence[StreamView],
        online: OnlineStore,
        project: str,
        origin: int,
        partition: Partition | None = None,
    ) -> None:
        self.project = project
        self.views = list(views)
        self._ns = {view.name: stream_ns(project, view.name) for view in self.views}

        def load(view: str, key: str) -> bytes | None:
            return online.get(self._ns[view], key)

        capacity = max(100_000 // SHARDS, 1_000)
        self._engines = {
            view.name: [StreamEngine([view], load=load, capacity=capacity) for _ in range(SHARDS)]
            for view in self.views
        }
        self._plan = [
            (view.key_of, view.name, [engine.updater(view.name) for engine in self._engines[view.name]])
            for view in self.views
        ]
        self._shards: dict[str, int] = {}  # shard_of, remembered: a key's events come in bursts
        # A partition stores (and stamps) only its own shards: other workers own the rest.
        part = partition or Partition()
        self.units = [
            (v.name, shard) for v in self.views for shard in range(SHARDS) if part.owns_shard(shard)
        ]
        stored = dict(online.scan(stamps_ns(project)))
        # A shard never stored (a view new to the worker) starts empty at `origin`, where the worker is.
        self.stamps = {
            (view, shard): _stamp.decode(stored[f"{view}/{shard}"]) if f"{view}/{shard}" in stored else origin
            for view, shard in self.units
        }
        self._oldest = min(self.stamps.values(), default=None)  # kept: asked for with every write
        self._cursor = 0
        self._due = 0.0
        self._last = time.monotonic()

    @property
    def oldest(self) -> int | None:
        """The oldest stamp: where to read the log again from to rebuild what was not stored."""
        return self._oldest

    def apply(self, event: dict[str, Any], t_us: int) -> None:
        """Update every view whose key `event` carries."""
        shards = self._shards
        for key_of, _, updates in self._plan:
            key = key_of(event)
            if key is not None:
                shard = shards.get(key)
                if shard is None:
                    shard = self._shard(key)
                updates[shard](key, event, t_us)

    def replay(self, event: dict[str, Any], t_us: int, offset: int) -> None:
        """`apply`, but only to shards whose stored state does not already include the record at `offset`."""
        for key_of, name, updates in self._plan:
            key = key_of(event)
            if key is None:
                continue
            shard = self._shard(key)
            if offset >= self.stamps[name, shard]:
                updates[shard](key, event, t_us)

    def _shard(self, key: str) -> int:
        if len(self._shards) >= SHARD_MEMO:
            self._shards.clear()
        shard = self._shards[key] = shard_of(key)
        return shard

    def values(self, view: StreamView, key: str, t_us: int) -> dict[str, Any]:
        return self._engines[view.name][shard_of(key)].values(view.name, key, t_us)

    def puts(self, events: int, offset: int, *, everything: bool = False) -> dict[str, dict[str, bytes]]:
        """What to store with the write that moves the worker to `offset`: the next shards' states and stamps.

        `events` is how many events the batch applied; `everything` stores every shard (at start-up).
        """
        now = time.monotonic()
        total = len(self.units)
        if everything:
            count = total
        else:
            share = max((now - self._last) / ROUND_S, events / ROUND_EVENTS)
            self._due = min(self._due + total * share, total)
            count = int(self._due)
            self._due -= count
        self._last = now
        out: dict[str, dict[str, bytes]] = {}
        stamps = out.setdefault(stamps_ns(self.project), {})
        encoded = str(offset).encode()
        for _ in range(count):
            view, shard = unit = self.units[self._cursor]
            self._cursor = (self._cursor + 1) % total
            for name, key, value in self._engines[view][shard].take_dirty():
                out.setdefault(self._ns[name], {})[key] = value
            stamps[f"{view}/{shard}"] = encoded
            self.stamps[unit] = offset
        if count:
            self._oldest = min(self.stamps.values())
        return out if count else {}
