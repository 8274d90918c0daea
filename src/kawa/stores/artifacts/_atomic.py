"""Atomic writes for the artifact stores: write a temporary file, fsync it, then publish it whole."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from kawa._durable import fsync_dir
from kawa.stores.artifacts.base import TEMP_MARK


class StagedWriter(io.BufferedWriter):
    """A file written at `temp`, handed to `publish` once closed cleanly, removed if anything fails.

    Leaving a `with` block by an exception, or dropping the writer unclosed, discards what was written:
    a half-written model must never be published.
    """

    def __init__(self, temp: Path, publish: Callable[[Path], None]) -> None:
        super().__init__(io.FileIO(temp, "xb"))
        self._temp = temp
        self._publish: Callable[[Path], None] | None = publish

    def close(self) -> None:
        if self.closed:
            return
        publish, self._publish = self._publish, None
        try:
            self.flush()
            os.fsync(self.raw.fileno())  # type: ignore[attr-defined]
        except BaseException:
            self.discard()
            raise
        super().close()
        if publish is None:
            return
        try:
            publish(self._temp)
        finally:
            self._temp.unlink(missing_ok=True)  # a no-op once `publish` has moved it

    def discard(self) -> None:
        """Close without publishing, and remove the temporary file."""
        self._publish = None
        with contextlib.suppress(OSError):  # buffered bytes that fail to flush are thrown away anyway
            super().close()
        self._temp.unlink(missing_ok=True)

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def __del__(self) -> None:
        if not self.closed:
            self.discard()


def temp_beside(target: Path) -> Path:
    """A fresh temporary path in `target`'s folder (created), so publishing it is a same-disk rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.name}{TEMP_MARK}{secrets.token_hex(6)}")


def replace_durably(temp: Path, target: Path) -> None:
    """Rename `temp` over `target` and fsync the folder, so the new name survives a power cut."""
    os.replace(temp, target)
    fsync_dir(target.parent)


def copy_durably(source: Path, target: Path) -> None:
    """Copy `source` to `target` atomically: to a temporary file beside it, fsynced, then renamed."""
    temp = temp_beside(target)
    try:
        with open(source, "rb") as src, open(temp, "xb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
        replace_durably(temp, target)
    finally:
        temp.unlink(missing_ok=True)
