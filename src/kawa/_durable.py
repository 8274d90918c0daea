"""Durable file publication: write beside the target, fsync, rename, fsync the folder.

Every store that publishes files (lake tables, loaded tables, manifests, log checkpoints, artifacts) uses
these, so a power cut leaves either the old file or the whole new one, never a torn or vanished name.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make the names in folder `path` (a rename, a new file) survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, target: Path) -> None:
    """Fsync the finished file `tmp`, rename it over `target`, and fsync the folder."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


def write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    publish(tmp, path)
