"""The event ids the trigger worker saw last, so an event sent twice (a client retry) counts once.

The lake drops repeated event_ids the same way; doing it here too keeps the streaming features equal
to the offline ones and scores a retried event once. The window is rebuilt after a restart by
reading the log again from the first record it covers (`start`), which the worker stores with its
offset, and remembering each record's new ids in order, as the worker did.
"""

from __future__ import annotations

from collections import deque

WINDOW = 200_000


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
