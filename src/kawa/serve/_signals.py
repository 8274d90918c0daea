"""Stopping on SIGTERM or SIGINT without deadlocking on a second signal."""

from __future__ import annotations

import signal
import threading
from types import FrameType

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def set_on_stop_signals(stop: threading.Event) -> threading.Event:
    """Set `stop` on the first SIGTERM or SIGINT of this process; later ones are ignored.

    Python runs a handler between two bytecodes of the main thread, which may be inside `stop.set()` of
    the first signal: a part of `kawa serve` gets SIGTERM twice when the whole process group is signalled
    (once directly, once from the supervisor), and a second `set()` there waits forever for the lock the
    first one holds. So the first signal turns further ones off before it touches the event.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        stop.set()

    for sig in _STOP_SIGNALS:
        signal.signal(sig, handler)
    return stop
