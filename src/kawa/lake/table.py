"""A lake table: Parquet files of one project, listed in a manifest that is replaced atomically.

Layout (documented in docs/lake.md):

    <lake>/<table>/project=<project>/_manifest.json
    <lake>/<table>/project=<project>/<column>=<value>/<file>.parquet

Readers take the file list from `_manifest.json`, so they always see a whole snapshot: a compaction or a
`kawa load` that replaces files swaps the manifest in one rename and deletes the old files only after a
grace period. Other engines (Spark, Trino, BigQuery external tables) can glob the Hive-style folders
when no compaction is running, or read the manifest for a consistent snapshot.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from kawa._durable import write_bytes

MANIFEST = "_manifest.json"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class DataFile(msgspec.Struct):
    path: str  # relative to the table's project folder
    rows: int
    bytes: int
    partition: dict[str, str] = msgspec.field(default_factory=dict)


class Retired(msgspec.Struct):
    path: str
    at: float


class Manifest(msgspec.Struct):
    version: int = 0
    partition_by: list[str] = msgspec.field(default_factory=list)
    files: list[DataFile] = msgspec.field(default_factory=list)
    retired: list[Retired] = msgspec.field(default_factory=list)


def check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(
            f"{kind} name {name!r} is not allowed; "
            "use lowercase letters, digits and '_', starting with a letter"
        )
    return name


class LakeTable:
    """One table of one project in the lake."""

    def __init__(self, lake_root: Path, table: str, project: str) -> None:
        self.table = check_name("table", table)
        self.project = project
        self.path = Path(lake_root) / table / f"project={project}"

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> Manifest:
        try:
            return msgspec.json.decode(self.manifest_path.read_bytes(), type=Manifest)
        except FileNotFoundError:
            return Manifest()

    def files(self) -> list[Path]:
        """Absolute paths of the current snapshot's data files."""
        return [self.path / f.path for f in self.manifest().files]

    def new_file(self, partition: dict[str, str], name: str) -> Path:
        """Where to write a data file for `partition` (written first, then added with `commit`)."""
        folder = self.path.joinpath(*(f"{k}={v}" for k, v in partition.items()))
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def commit(
        self,
        add: list[DataFile],
        *,
        remove: list[str] | None = None,
        replace_partitions: list[dict[str, str]] | None = None,
        replace_all: bool = False,
        partition_by: list[str] | None = None,
    ) -> Manifest:
        """Atomically publish `add` and drop `remove`, whole partitions, or every file (`replace_all`)."""
        with self._locked():
            current = self.manifest()
            keep: list[DataFile] = []
            dropped: list[str] = []
            drop = set(remove or [])
            parts = replace_partitions or []
            added = {f.path for f in add}
            for f in current.files:
                if replace_all or f.path in drop or f.partition in parts:
                    if f.path not in added:
                        dropped.append(f.path)
                elif f.path not in added:
                    keep.append(f)
            now = time.time()
            new = Manifest(
                version=current.version + 1,
                partition_by=partition_by if partition_by is not None else current.partition_by,
                files=keep + add,
                retired=current.retired + [Retired(p, now) for p in dropped],
            )
            write_bytes(self.manifest_path, msgspec.json.format(msgspec.json.encode(new)))
            return new

    def collect_garbage(self, grace_s: float) -> int:
        """Delete retired files older than `grace_s` and files no manifest lists; returns files removed."""
        with self._locked():
            current = self.manifest()
            cutoff = time.time() - grace_s
            due = [r for r in current.retired if r.at <= cutoff]
            if due:
                current.retired = [r for r in current.retired if r.at > cutoff]
                write_bytes(self.manifest_path, msgspec.json.format(msgspec.json.encode(current)))
            for r in due:
                (self.path / r.path).unlink(missing_ok=True)
            return len(due)

    def remove_orphans(self) -> int:
        """Delete data files that no manifest entry lists (left by a crash before their commit)."""
        with self._locked():
            current = self.manifest()
            known = {f.path for f in current.files} | {r.path for r in current.retired}
            removed = 0
            for file in self.path.rglob("*.parquet"):
                if str(file.relative_to(self.path)) not in known:
                    file.unlink()
                    removed += 1
            return removed


def list_tables(lake_root: Path, project: str) -> list[str]:
    """Names of the tables that have a manifest for `project`."""
    root = Path(lake_root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / f"project={project}" / MANIFEST).is_file())
