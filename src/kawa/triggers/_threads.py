"""The trigger worker scores on its own thread: OpenMP runtimes are held to one thread while it runs.

LightGBM (and some scikit-learn models) predict a batch in OpenMP parallel regions, and after each region
the runtime's idle threads spin for a while waiting for the next one. The worker predicts hundreds of
small batches a second, so the spinning cost more CPU than the work: with it the served worker used
about 2.3 times the CPU per event, on a machine whose cores the API and the lake writer need as well.
While any worker of the process runs, each OpenMP runtime loaded has one thread (`threadpoolctl`); the
process's own setting comes back when the last one stops.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from threadpoolctl import threadpool_limits

_lock = threading.Lock()
_running = 0
_limits: Any = None  # the limits in force, which restore the original settings


@contextmanager
def single_threaded() -> Iterator[None]:
    """Hold every OpenMP runtime loaded to one thread until the last user of this block leaves it."""
    global _running, _limits
    with _lock:
        if _running == 0:
            _limits = threadpool_limits(limits=1, user_api="openmp")
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _limits is not None:
                _limits.restore_original_limits()
                _limits = None
