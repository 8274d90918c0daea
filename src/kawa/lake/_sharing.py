"""What lets several lake writers share one lake: a lock per table and task, and the files each has seen.

Writers that read one event log through a consumer group (Redis) publish into one lake folder. Three
things must not interleave between them:
- publishing: looking at what the lake holds, dropping the event_ids it has already, choosing a file
  name nobody uses, writing the file and listing it in the manifest (the `PUBLISHING` lock), so that
  an event_id handed to two writers (a client sent it twice; a record one writer was still working on
  was claimed by another) lands once, and no file is written over another;
- compacting: a merge that two writers ran at once from the same small files would list both merged
  files, and each row twice (the `COMPACTING` lock);
- removing the unlisted files a crash left behind, at start-up: it takes both locks, so it never
  deletes a file another writer has written and is about to list.
The locks are flock()s on files in the table's folder, so every writer must see that folder through a
file system whose locks hold across them: one machine, or NFSv4. On the file event log there is only
one writer (its group takes one consumer), and the locks are always free.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from kawa.lake.table import DataFile, LakeTable

PUBLISHING = "publish"
COMPACTING = "compact"


@contextmanager
def table_lock(table: LakeTable, task: str) -> Iterator[None]:
    """Hold `table`'s lock for `task` (PUBLISHING or COMPACTING) while the block runs; others wait."""
    table.path.mkdir(parents=True, exist_ok=True)
    # Not the table's own `.lock`, which its commits take (a second flock of it here would deadlock).
    fd = os.open(table.path / f".{task}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class SeenFiles:
    """The files of each project's events table whose event_ids one writer's dedupe window has taken in.

    A file is seen when the writer loaded its ids, wrote it, or made it by compaction. What a manifest
    lists beyond those, other writers listed since this one last looked. Only the files the manifest
    lists now are kept, so the sets stay as small as the manifests.
    """

    def __init__(self) -> None:
        self._paths: dict[str, set[str]] = {}
        self._lock = threading.Lock()  # the flushes and the compaction thread both add

    def reset(self, project: str, paths: Iterable[str]) -> None:
        """`paths` are every file of `project`'s table this writer has now accounted for."""
        fresh = set(paths)
        with self._lock:
            self._paths[project] = fresh

    def add(self, project: str, paths: Iterable[str]) -> None:
        """Files this writer listed itself."""
        with self._lock:
            self._paths.setdefault(project, set()).update(paths)

    def unseen(self, project: str, files: Iterable[DataFile]) -> list[DataFile]:
        """The files among `files` (a manifest's) that this writer has not accounted for."""
        with self._lock:
            known = self._paths.get(project, set())
            return [f for f in files if f.path not in known]
