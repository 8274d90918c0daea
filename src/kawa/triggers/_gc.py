"""Garbage collection in a trigger worker process, paced so that no full collection stalls the worker.

The streaming features keep millions of small objects alive (the windows of every entity), and
CPython's full collection walks all of them: at ~100,000 users a pause of 0.3-0.4 s, growing with the
states, several times a minute under load, and every event arriving meanwhile is scored late. The pacer
moves the objects alive now out of the collector's sight every few seconds (`gc.freeze`), so automatic
collections walk only what was made since. Frozen objects are still freed by reference counting; a
reference cycle among them that became garbage is freed by the full collection the pacer runs once
every `FULL_EVERY_S` (one pause that long, instead of one every few seconds).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

FULL_EVERY_S = 600.0


class GcPacer:
    """Call `tick()` every few seconds from any thread of the process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._full_at = clock()

    def tick(self) -> None:
        now = self._clock()
        if now - self._full_at >= FULL_EVERY_S:
            gc.unfreeze()
            gc.collect()
            self._full_at = now
        gc.freeze()
