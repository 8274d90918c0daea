"""Tell an in-process cache whether the metadata database may have changed since it last looked."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Engine


class ChangeWatcher:
    """Answers `changed()` cheaply enough to call before every cache read.

    On SQLite it asks `PRAGMA data_version` on a connection of its own, which changes whenever any
    other connection, in this process or another, commits: so a change is seen at the next call
    (microseconds per call). Other databases have no such counter; there `changed()` says True
    once every `ttl_s` seconds, so a cache lags a commit made elsewhere by at most `ttl_s`.
    """

    def __init__(self, engine: Engine, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._raw: Any = None
        self._driver: Any = None
        self._cursor: Any = None
        self._version: int | None = None
        self._checked_at: float | None = None
        if engine.dialect.name == "sqlite":
            # A dedicated connection: data_version ignores the connection's own commits, and this
            # one never writes, so every commit counts.
            self._raw = engine.raw_connection()
            self._driver = self._raw.driver_connection  # read first: detach() forgets it
            self._raw.detach()
            self._cursor = self._driver.cursor()

    @property
    def exact(self) -> bool:
        """True when every commit is seen at the next call; False when changes are polled by TTL."""
        return self._driver is not None

    def changed(self) -> bool:
        """True on the first call and whenever the database may have changed since the last call."""
        with self._lock:
            if self._driver is not None:
                version = self._cursor.execute("PRAGMA data_version").fetchone()[0]
                seen, self._version = self._version, version
                return seen != version
            now = time.monotonic()
            if self._checked_at is None or now - self._checked_at >= self.ttl_s:
                self._checked_at = now
                return True
            return False

    def close(self) -> None:
        """Close the dedicated connection."""
        with self._lock:
            if self._raw is not None:
                self._cursor.close()
                self._raw.close()
                self._raw = self._driver = self._cursor = None
