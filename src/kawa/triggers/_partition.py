"""Splitting the trigger worker's events between processes by entity key, so each entity has one reader.

Streaming features and the latest prediction of an entity depend on the order of its events, and a
retried event must meet the duplicate check that saw it first. So the work is split by entity, not by
log record: partition i of n takes the events whose key falls in the streaming shards s with
s % n == i (see `_states`), and the whole event goes there (its feature updates, its hits, its id).
Every trigger and streaming view of a project must then share one key field. An event without that
key (it gets an error record, it updates no feature) is placed by its event_id instead.

Each partition reads the log through its own consumer group and is held by one process at a time,
through a lease on the event log (`EventLog.hold`); see `runner`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kawa.triggers.spec import Trigger, TriggerError

GROUP = "triggers"
SHARDS = 64  # the streaming state shards (`_states.SHARDS`); partitions own whole shards


@dataclass(frozen=True)
class Partition:
    """Part `index` of `count`; the sole partition (0 of 1) is the whole log, as one worker reads it."""

    index: int = 0
    count: int = 1

    @property
    def tag(self) -> str:
        """What the partition adds to its online-store keys: nothing for the sole partition.

        >>> Partition().tag, Partition(1, 3).tag
        ('', '@1of3')
        """
        return "" if self.count == 1 else f"@{self.index}of{self.count}"

    @property
    def group(self) -> str:
        """Its consumer group, lease and checkpoint name (`triggers` for the sole partition)."""
        return GROUP if self.count == 1 else f"{GROUP}-{self.index}of{self.count}"

    def owns_shard(self, shard: int) -> bool:
        return shard % self.count == self.index


def shard_of(key: str) -> int:
    """The streaming shard of an entity key: stable across processes (Python's own str hash is not)."""
    return zlib.crc32(key.encode()) % SHARDS


def partition_key(triggers: Sequence[Trigger]) -> str | None:
    """The one key field every trigger and its streaming views use; refuses a mix (None: no triggers)."""
    keys: dict[str, str] = {}
    for trigger in triggers:
        keys.setdefault(trigger.key, f"trigger {trigger.name!r}")
        for view in trigger.features:
            keys.setdefault(view.key, f"streaming view {view.name!r} of trigger {trigger.name!r}")
    if len(keys) > 1:
        found = ", ".join(f"{key} ({where})" for key, where in keys.items())
        raise TriggerError(
            f"triggers.workers > 1 splits events between workers by entity, so every trigger and its "
            f"streaming views must use one key field; found {found}. Key them alike, or set "
            "triggers.workers: 1"
        )
    return next(iter(keys), None)


def event_filter(partition: Partition, triggers: Sequence[Trigger]) -> Callable[[dict[str, Any], str], bool]:
    """`mine(event, event_id)`: whether the event belongs to `partition`."""
    if partition.count == 1:
        return lambda event, event_id: True
    field = partition_key(triggers)
    key_of = next((t.key_of for t in triggers if t.key == field), None)
    count, index = partition.count, partition.index

    def mine(event: dict[str, Any], event_id: str) -> bool:
        key = key_of(event) if key_of is not None else None
        return shard_of(event_id if key is None else key) % count == index

    return mine
