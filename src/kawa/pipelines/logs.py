"""Step logs: written live to a local file while a step runs, kept in the artifact store once it ends.

While a step runs, everything it prints and logs goes to `<state>/logs/<run_id>/<step>.log`; when it
ends the runner copies those exact bytes to the artifact store (`runs/<run_id>/<step>.log`) and removes
the live file. `follow` reads both, so `kawa runs logs RUN -f` and `GET /v1/runs/{id}/logs?follow=true`
show a step's output as it is written and carry on seamlessly once it has moved.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kawa.pipelines.runs import FINISHED, QUEUED, RUNNING, RunStore

if TYPE_CHECKING:
    from kawa.runtime import Runtime

_CHUNK = 64 * 1024


def log_path(run_id: str, step: str) -> str:
    """Where a step's captured output is kept in the artifact store."""
    return f"runs/{run_id}/{step}.log"


def live_log_path(state_path: Path, run_id: str, step: str) -> Path:
    """The local file a running step's output is written to."""
    return Path(state_path) / "logs" / run_id / f"{step}.log"


def follow(
    runtime: Runtime,
    run_id: str,
    *,
    step: str | None = None,
    live: bool = True,
    poll_s: float = 0.25,
    timeout_s: float | None = None,
) -> Iterator[str]:
    """The log text of a run's steps in run order, each after a `== step (status)` line.

    With `live`, waits for running and queued steps and yields their output as it is written, until
    the run has finished (or `timeout_s` passed); without, yields what there is now and stops.
    """
    tail = LogTail(runtime, run_id, step=step)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        yield from tail.read()
        if tail.finished or not live:
            return
        if deadline is not None and time.monotonic() > deadline:
            return
        time.sleep(poll_s)


class LogTail:
    """A run's log read piece by piece without waiting: each `read` yields what is new since the last.

    `finished` turns true once a read reached the end of the last step of a finished run. A web page
    that follows a run calls `read` now and then instead of holding a thread in `follow`.
    """

    def __init__(self, runtime: Runtime, run_id: str, *, step: str | None = None) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.step = step
        self.finished = False
        self._store = RunStore(runtime.metadata)
        self._done: set[str] = set()
        self._current: _Reader | None = None

    def read(self) -> Iterator[str]:
        """The text written since the last read (step headers included); LookupError for no such run."""
        record = self._store.get(self.run_id)
        if record is None:
            raise LookupError(f"no run with id {self.run_id!r}; see `kawa runs list`")
        for s in record.steps:
            if (self.step is not None and s.step != self.step) or s.step in self._done:
                continue
            if s.status == QUEUED and record.status not in FINISHED:
                return
            if self._current is None or self._current.step != s.step:
                shown = s.status if s.status in FINISHED else RUNNING
                yield f"== {s.step} ({shown})\n"
                self._current = _Reader(self.runtime, self.run_id, s.step)
            if s.status not in FINISHED:
                yield from self._current.live()
                return
            yield from self._current.rest()
            self._done.add(s.step)
            self._current = None
        self.finished = True


class _Reader:
    """Reads one step's log from where it left off: the live file first, the stored copy after."""

    def __init__(self, runtime: Runtime, run_id: str, step: str) -> None:
        self.runtime = runtime
        self.step = step
        self.live_path = live_log_path(runtime.state_path, run_id, step)
        self.stored_path = log_path(run_id, step)
        self.offset = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def live(self) -> Iterator[str]:
        try:
            with self.live_path.open("rb") as f:
                f.seek(self.offset)
                while chunk := f.read(_CHUNK):
                    self.offset += len(chunk)
                    text = self.decoder.decode(chunk)
                    if text:
                        yield text
        except FileNotFoundError:
            return

    def rest(self) -> Iterator[str]:
        """What is left once the step ended: from the stored copy (the same bytes as the live file)."""
        try:
            data = self.runtime.artifacts.get_bytes(self.stored_path)
        except FileNotFoundError:
            yield from self.live()  # the copy failed; the live file is all there is
            data = b""
        text = self.decoder.decode(data[self.offset :], final=True)
        self.offset = max(self.offset, len(data))
        if text:
            yield text if text.endswith("\n") else text + "\n"
