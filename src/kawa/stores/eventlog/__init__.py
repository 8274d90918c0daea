"""The event log interface and its backends, chosen by `stores.event_log` in kawa.yaml."""

from __future__ import annotations

from pathlib import Path

from kawa.stores._backends import load_backend
from kawa.stores.eventlog.base import EventLog, GroupReader, ReadResult, Record

# name (or URL scheme) -> (module, class, extra that installs its dependencies)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "files": ("kawa.stores.eventlog.files", "FileEventLog", None),
    "redis": ("kawa.stores.eventlog.redis", "RedisEventLog", "redis"),
    "rediss": ("kawa.stores.eventlog.redis", "RedisEventLog", "redis"),
}


def open_event_log(spec: str, state_path: Path, *, writer: bool = False) -> EventLog:
    """The event log named by `spec` (`files`, `redis://...`), kept under `state_path` if embedded.

    `writer`: the handle may append (the file log allows one such process per state folder).
    """
    cls = load_backend("event log", spec, BACKENDS)
    return cls.from_spec(spec, state_path, writer=writer)  # type: ignore[no-any-return]


__all__ = ["EventLog", "GroupReader", "ReadResult", "Record", "open_event_log"]
