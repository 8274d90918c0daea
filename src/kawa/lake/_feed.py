"""The lake writer's side of the event log: records from the `lake` consumer group, and acknowledgements."""

from __future__ import annotations

import contextlib
import logging
import time

from kawa.config import LakeConfig
from kawa.stores.eventlog import EventLog, GroupReader, Record

log = logging.getLogger("kawa.lake")

# The consumer group every lake writer reads through; on the file log, also the checkpoint it moves.
GROUP = "lake"


class GroupFeed:
    """One lake writer's records: its own and new ones from the group, and now and then a dead writer's.

    `offset` says how far the lake has got: everything before it is published. On the file log it is
    the group's checkpoint; on Redis, the end of the newest record this writer acknowledged at a
    moment when the group had nothing out, kept as the `lake` checkpoint too. Either way it equals
    the log's end offset once the lake has caught up.
    """

    def __init__(self, log: EventLog, consumer: str, config: LakeConfig) -> None:
        self.log = log
        self.consumer = consumer
        self.config = config
        # The file log refuses a second consumer here, before the writer touches the lake.
        self._group: GroupReader | None = log.group(GROUP, consumer)
        self.offset = log.committed(GROUP)
        self._newest = -1  # the newest record this writer acknowledged
        self._unacked: list[int] = []  # records published whose acknowledgement failed
        self._claimed_at = -float("inf")

    def _reader(self) -> GroupReader:
        if self._group is None:
            # A fresh reader hands out this consumer's unacknowledged records first (the file log's
            # reads again from the checkpoint), so nothing a failed flush held is left behind.
            self._group = self.log.group(GROUP, self.consumer)
        return self._group

    def claim_due(self) -> bool:
        """Whether it is time to look for records other writers left unacknowledged."""
        return time.monotonic() - self._claimed_at >= self.config.claim_idle_s / 2

    def take(self, *, claim: bool) -> list[Record]:
        """The next records to publish, in log order: claimed ones (with `claim`), then the group's."""
        reader = self._reader()
        if self._unacked:
            reader.ack(self._unacked)
            self._unacked = []
        budget = self.config.flush_max_bytes
        claimed: list[Record] = []
        if claim:
            claimed = reader.claim_stale(self.config.claim_idle_s, budget)
            self._claimed_at = time.monotonic()
            if claimed:
                log.info("claimed %d log records another lake writer left unacknowledged", len(claimed))
            budget -= sum(len(r.payload) for r in claimed)
        records = reader.read(max_bytes=budget) if budget > 0 else []
        if not claimed:
            return records
        # A reader opened again may be handed a record that it also claimed: keep one of each.
        unique = {r.offset: r for r in claimed + records}
        return [unique[offset] for offset in sorted(unique)]

    def settle(self, records: list[Record]) -> None:
        """Acknowledge `records`, which are published, and move `offset`."""
        reader = self._reader()
        self._unacked = [r.offset for r in records]
        reader.ack(self._unacked)
        self._unacked = []
        self._newest = max(self._newest, records[-1].offset)
        if reader.pending():
            return
        # Nothing of the group is out, so every record up to the newest acknowledged one is in the
        # lake. The file log's group has moved the checkpoint past it already; a Redis group keeps no
        # checkpoint, so this one says how far the lake has got (and a group made anew starts there).
        mark = self.log.committed(GROUP)
        if mark <= self._newest:
            newest = self.log.read(self._newest, max_bytes=1)
            if newest.records and newest.records[0].offset == self._newest:  # not trimmed meanwhile
                mark = newest.next_offset  # just past it, where the next record starts
                self.log.commit(GROUP, mark)
        self.offset = mark

    def drop(self) -> None:
        """Forget the reader after a failed flush; the next `take` opens it again."""
        group, self._group = self._group, None
        if group is not None:
            with contextlib.suppress(Exception):
                group.close()

    def close(self) -> None:
        """Leave the group (what is unacknowledged stays pending, for a restart or a claim)."""
        self.drop()
