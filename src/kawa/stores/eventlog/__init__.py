"""The event log interface and its backends, chosen by `stores.event_log` in kawa.yaml."""

from __future__ import annotations

from pathlib import Path

from kawa.stores._backends import load_backend
from kawa.stores.eventlog.base import EventLog, ReadResult, Record

BACKENDS = {
    "files": ("kawa.stores.eventlog.files", "FileEventLog", None),
}


def open_event_log(spec: str, state_path: Path, *, writer: bool = False) -> EventLog:
    """The event log named by `spec` (`files`), kept under `state_path` for embedded backends."""
    cls = load_backend("event log", spec, BACKENDS)
    return cls(state_path / "eventlog", writer=writer)  # type: ignore[no-any-return]


__all__ = ["EventLog", "ReadResult", "Record", "open_event_log"]
