"""Metrics that any kawa process counts, and how several processes' counts reach one /metrics.

`kawa serve` runs the API (one or more processes), the lake writer, the trigger worker and the
scheduler as separate processes. Counters and histograms use prometheus_client's multiprocess mode:
the supervisor points PROMETHEUS_MULTIPROC_DIR at `<state>/run/prometheus/<its pid>` (new at each start),
each process writes its values to memory-mapped files there, and whichever API process answers
/metrics adds them all up. So `--workers N` scrapes agree, and a restarted part's counts are kept.
Values that live in the stores (log offsets, trigger counters, pipeline runs) are read from them at
scrape time instead (`kawa.observe.scrape`): exact whichever process asks.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import Counter, Histogram

from kawa.observe import tracing

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STORES = ("event_log", "online", "metadata", "artifacts", "lake")

STORE_ERRORS = Counter(
    "kawa_store_errors", "Store calls that failed (unreachable server, I/O error, database error)", ["store"]
)
PREDICT_SECONDS = Histogram(
    "kawa_predict_seconds",
    "Time a model takes to predict one request's rows (path: request = /v1/models/.../predict, "
    "trigger = the real-time trigger worker)",
    ["project", "model", "version", "path"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)


def store_error(store: str) -> None:
    """Count one failed call of `store` (one of `STORES`)."""
    STORE_ERRORS.labels(store).inc()


@contextmanager
def timed_predict(project: str, model: str, version: int | None, path: str, rows: int = 1) -> Iterator[None]:
    """Observe how long the block (one predict call of `rows` rows) takes, also when it raises; a span too."""
    start = time.perf_counter()
    try:
        with tracing.predict_span(project, model, version, path, rows):
            yield
    finally:
        PREDICT_SECONDS.labels(project, model, str(version), path).observe(time.perf_counter() - start)


def multiprocess_dir(state_path: Path, supervisor_pid: int) -> Path:
    """Where the processes of the `kawa serve` (supervisor `supervisor_pid`) keep their metric files."""
    return state_path / "run" / "prometheus" / str(supervisor_pid)


def reset_multiprocess_dir(folder: Path) -> Path:
    """Make `folder` empty for a new `kawa serve` (counters start at zero, as after any restart).

    Folders of supervisors that are gone are removed; a live one's is left alone (a second `kawa
    serve` started by mistake over the same state must not blank the running one's metrics).
    """
    for other in folder.parent.glob("*") if folder.parent.is_dir() else ():
        if other != folder and not (other.name.isdigit() and _alive(int(other.name))):
            shutil.rmtree(other, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def multiprocess_enabled() -> bool:
    """Whether this process shares its metrics through files (it runs under `kawa serve`)."""
    return bool(os.environ.get(MULTIPROC_ENV))
