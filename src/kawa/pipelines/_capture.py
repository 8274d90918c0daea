"""Capture what a step prints and logs while it runs in this process."""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from typing import TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Sink(io.TextIOBase):
    """A text stream that keeps everything written to it, and optionally passes it on."""

    def __init__(self, *echo: TextIO) -> None:
        self._parts: list[str] = []
        self._lock = threading.Lock()
        self._echo = echo

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
            for stream in self._echo:
                stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._echo:
            stream.flush()

    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)


@contextmanager
def capture(echo: bool = False, tee: TextIO | None = None) -> Iterator[_Sink]:
    """Collect print() output and log records (INFO and up) of the code run inside the block.

    `echo` also passes them to stderr, and `tee` to a file (the live log a follower reads).
    """
    streams = [s for s in (sys.__stderr__ if echo else None, tee) if s is not None]
    sink = _Sink(*streams)
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    # The root logger passes only WARNING and up by default; a step's logger.info lines belong in its log.
    if level > logging.INFO or level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        with redirect_stdout(sink), redirect_stderr(sink):  # type: ignore[type-var]
            yield sink
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
