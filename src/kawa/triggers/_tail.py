"""Wake the trigger worker as soon as the event log grows: inotify on Linux, short polls elsewhere.

The event log is written by the API process; the worker reads it. Polling every few hundred
microseconds would cost a core's worth of wake-ups on an idle server, so on Linux the worker sleeps
on an inotify descriptor watching the log's folder and wakes on the write itself (before the
writer's fsync returns), tens of microseconds later. A log without a local folder (a scale-out
backend) that can wait for appends itself (`EventLog.wait`, e.g. XREAD BLOCK on Redis) is asked
to; any other log is polled.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import sys
import time
from pathlib import Path

from kawa.stores.eventlog import EventLog

log = logging.getLogger("kawa.triggers")

_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_IN_MODIFY = 0x00000002
_IN_CREATE = 0x00000100
_IN_MOVED_TO = 0x00000080
_POLL_S = 0.0005  # the fallback: at most this late, at ~2,000 cheap wake-ups a second when idle


class LogWaiter:
    """`wait(timeout)` returns early when the log may have new records; `close()` releases the watch."""

    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        self._fd: int | None = None
        folder = getattr(event_log, "path", None)
        if sys.platform.startswith("linux") and isinstance(folder, Path) and folder.is_dir():
            self._fd = _watch(folder)
        self._poll = select.poll() if self._fd is not None else None
        if self._poll is not None and self._fd is not None:
            self._poll.register(self._fd, select.POLLIN)
        # No folder to watch, but a backend that blocks until an append (not the polling default).
        self._asks = self._fd is None and type(event_log).wait is not EventLog.wait
        self._from = 0

    @property
    def notified(self) -> bool:
        """Whether the log tells this waiter about writes (else it polls)."""
        return self._fd is not None or self._asks

    def clear(self) -> None:
        """Forget notifications so far; call before reading the log, so a later write wakes `wait`."""
        if self._asks:
            self._from = self._log.end_offset()  # a record appended from here on ends the wait
            return
        if self._fd is None:
            return
        try:
            while os.read(self._fd, 65536):
                pass
        except BlockingIOError:
            pass

    def wait(self, timeout: float) -> None:
        """Sleep until the log was written since `clear()`, or `timeout` seconds."""
        if self._asks:
            self._log.wait(self._from, timeout)
            return
        if self._poll is None:
            time.sleep(min(timeout, _POLL_S))
            return
        self._poll.poll(max(int(timeout * 1000), 0))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._poll = None


def _watch(folder: Path) -> int | None:
    """An inotify descriptor reporting writes to files in `folder`, or None where that is not possible."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        mask = _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO
        if int(libc.inotify_add_watch(fd, os.fsencode(folder), mask)) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, "inotify_add_watch failed")
        return fd
    except (OSError, AttributeError) as exc:
        log.warning("cannot watch the event log at %s (%s); polling it instead", folder, exc)
        return None
