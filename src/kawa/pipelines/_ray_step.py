"""The Ray task that runs one pipeline step in a Ray worker process and streams its log back.

`RayExecutor` submits `run_step_task` as a streaming generator: it yields `("started", pid)` as soon
as a worker runs it, `("log", bytes)` pieces of what the step prints while it runs (so the driver's
live log file, and `kawa runs logs -f`, follow it from any machine), `("stopped", message)` when the
step went over its memory hint, and finally `("result", dict)`: the same result
`kawa.pipelines._child` writes for the subprocess executor (the stored return value's reference and
what the step recorded on its context).

The step runs in a thread of the worker while the task's own thread ships its output; the worker
serves this one task (`max_calls=1`), so taking over its stdout, stderr and working folder is safe.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kawa.pipelines import resources
from kawa.pipelines._capture import LOG_FORMAT

# How often the step's output is shipped to the driver and its memory checked.
POLL_S = 0.25


def run_step_task(
    call: dict[str, Any], step: str, cwd: str, hints: dict[str, Any]
) -> Iterator[tuple[str, Any]]:
    """Run step `step` as `call` says (see `process.child_call`); yields log pieces, then its result."""
    yield "started", os.getpid()  # the step's timeout counts from here, not from its wait for a worker
    for entry in reversed(call["sys_path"]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if os.path.isdir(cwd):
        os.chdir(cwd)  # relative paths in a step mean what they mean beside `kawa pipeline run`
    # Thread counts follow the cpus hint, as in a subprocess; Ray itself sets CUDA_VISIBLE_DEVICES.
    os.environ.update(resources.step_env({"cpus": hints.get("cpus")}, {}))
    limit = resources.memory_bytes(hints["memory"]) if hints.get("memory") else None
    folder = Path(tempfile.mkdtemp(prefix="kawa-ray-step-"))
    box: dict[str, Any] = {}
    try:
        log = folder / "step.log"
        with _redirected(log), log.open("rb") as reader:
            # Written and read through open descriptors from here on: nothing is left behind when the
            # driver ends this worker (a timeout), which skips the `finally` below.
            shutil.rmtree(folder, ignore_errors=True)
            thread = threading.Thread(target=_run, args=(call, box), name="kawa-step", daemon=True)
            thread.start()
            while thread.is_alive():
                thread.join(POLL_S)
                if chunk := reader.read():
                    yield "log", chunk
                used = resources.tree_rss(os.getpid()) if limit is not None else 0
                if limit is not None and used > limit:
                    why = (
                        f"memory: step {step!r} used {used / 1e6:,.0f} MB, over its memory "
                        f"hint of {hints['memory']}, and was stopped; raise it with @step(memory=...)"
                    )
                    yield "stopped", why
                    thread.join()  # the driver cancels this task (and so ends this worker) now
            sys.stdout.flush()
            sys.stderr.flush()
            if rest := reader.read():
                yield "log", rest
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    yield "result", box.get("result") or {"ok": False, "error": "the step's thread ended without a result\n"}


def _run(call: dict[str, Any], box: dict[str, Any]) -> None:
    # The same body as the subprocess executor's child process: one way to run a step elsewhere.
    from kawa.pipelines._child import _run as run_child

    try:
        box["result"] = run_child(call)
    except BaseException as exc:
        error = "".join(traceback.format_exception(exc))
        sys.stderr.write(error)
        box["result"] = {"ok": False, "error": error}


@contextmanager
def _redirected(path: Path) -> Iterator[None]:
    """Send this process's stdout, stderr (C code's too) and INFO+ log records to `path` meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    saved = os.dup(1), os.dup(2)
    streams = sys.stdout, sys.stderr
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    alembic = logging.getLogger("alembic")  # the metadata store's migration check is not the step's
    alembic_level = alembic.level
    alembic.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        alembic.setLevel(alembic_level)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            stream.close()
        sys.stdout, sys.stderr = streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
