"""The event ids the trigger worker saw last, so an event sent twice (a client retry) counts once.

The lake drops repeated event_ids the same way; doing it here too keeps the streaming features equal
to the offline ones and scores a retried event once. The window is rebuilt after a restart by
reading the log again from the first record it covers (`start`), which the worker stores with its
offset.
"""

from __future__ import annotations

from collections import deque

import msgspec

from kawa.events.schema import KIND_EVENTS, LogBatch
from kawa.stores.eventlog import EventLog

WINDOW = 200_000


class _Id(msgspec.Struct, gc=False):
    event_id: str | int | None = None


_batch = msgspec.msgpack.Decoder(LogBatch)
_ids = msgspec.json.Decoder(_Id)


class RecentIds:
    """The ids of about the last `window` events of one project, by log record."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self.ids: set[str] = set()
        self._records: deque[tuple[int, list[str]]] = deque()
        self._count = 0

    @property
    def start(self) -> int | None:
        """The offset of the oldest log record whose ids are remembered."""
        return self._records[0][0] if self._records else None

    def remember(self, offset: int, ids: list[str]) -> None:
        """Note the new ids of the record at `offset` (already in `ids`), dropping the oldest records."""
        if not ids:
            return
        self._records.append((offset, ids))
        self._count += len(ids)
        while self._count - len(self._records[0][1]) >= self.window:
            _, old = self._records.popleft()
            self._count -= len(old)
            self.ids.difference_update(old)

    def replay(self, log: EventLog, project: str, start: int, end: int) -> None:
        """Remember the ids of `project`'s events in the log records from `start` up to `end`."""
        offset = start
        while offset < end:
            result = log.read(offset, max_bytes=16 * 1024 * 1024)
            if not result.records:
                return
            for record in result.records:
                if record.offset >= end:
                    return
                batch = _batch.decode(record.payload)
                if batch.kind != KIND_EVENTS or batch.project != project:
                    continue
                fresh = []
                for i, found in enumerate(_ids.decode_lines(batch.body)):
                    event_id = batch.id_prefix + str(i) if found.event_id is None else str(found.event_id)
                    if event_id not in self.ids:
                        self.ids.add(event_id)
                        fresh.append(event_id)
                self.remember(record.offset, fresh)
            offset = result.next_offset
