"""Tell an in-process cache whether the metadata database may have changed since it last looked."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger(__name__)

# The channel every kawa write transaction on PostgreSQL notifies (delivered when it commits).
CHANNEL = "kawa_metadata"

_commits_lock = threading.Lock()
_commits: dict[str, int] = {}  # per database: write transactions this process committed


def note_commit(database: str) -> None:
    """Count a write transaction this process committed to `database` (a URL without password)."""
    with _commits_lock:
        _commits[database] = _commits.get(database, 0) + 1


def _local_commits(database: str) -> int:
    with _commits_lock:
        return _commits.get(database, 0)


class ChangeWatcher:
    """Answers `changed()` cheaply enough to call before every cache read (microseconds, no round trip).

    On SQLite it asks `PRAGMA data_version` on a connection of its own, which changes whenever any
    other connection, in this process or another, commits: so a change is seen at the next call.
    With `recheck_s` above 0 it asks at most once per `recheck_s` seconds (a query costs several
    microseconds, on every request of a busy API): a commit another process makes is then seen
    within `recheck_s`, and one this process reports with `committed()` at the next call.
    On PostgreSQL every kawa write transaction sends NOTIFY on `CHANNEL`; the watcher LISTENs on a
    connection of its own and reads what has arrived without waiting. A commit by this process is
    seen at the next call; one by another process as soon as its notification arrives (well under a
    millisecond on a LAN). Writes made outside kawa (by hand in psql) send no notification, so
    `changed()` also says True once every `ttl_s` seconds. A lost listening connection counts as a
    change; the watcher reconnects at the next call (then at most once per `ttl_s`), polling by TTL
    meanwhile, and counts the reconnection as a change too.
    """

    def __init__(
        self, engine: Engine, ttl_s: float = 1.0, *, database: str | None = None, recheck_s: float = 0.0
    ) -> None:
        self.ttl_s = ttl_s
        self.recheck_s = recheck_s
        self._engine = engine
        self._database = database or engine.url.render_as_string(hide_password=True)
        self._lock = threading.Lock()
        self._raw: Any = None
        self._driver: Any = None
        self._cursor: Any = None
        self._version: int | None = None
        self._checked_at: float | None = None
        self._listener: Any = None
        self._listen_tried_at: float | None = None
        self._local_seen: int | None = None
        if engine.dialect.name == "sqlite":
            # A dedicated connection: data_version ignores the connection's own commits, and this
            # one never writes, so every commit counts.
            self._raw = engine.raw_connection()
            self._driver = self._raw.driver_connection  # read first: detach() forgets it
            self._raw.detach()
            self._cursor = self._driver.cursor()
        elif engine.dialect.name == "postgresql":
            self._listen()

    @property
    def exact(self) -> bool:
        """True when every kawa commit is seen at once; False while changes are only polled by TTL."""
        return self._driver is not None or self._listener is not None

    def changed(self) -> bool:
        """True on the first call and whenever the database may have changed since the last call."""
        with self._lock:
            if self._driver is not None:
                if self.recheck_s > 0:
                    now, local = time.monotonic(), _local_commits(self._database)
                    recent = self._checked_at is not None and now - self._checked_at < self.recheck_s
                    if recent and local == self._local_seen:
                        return False
                    self._checked_at, self._local_seen = now, local
                version = self._cursor.execute("PRAGMA data_version").fetchone()[0]
                seen, self._version = self._version, version
                return seen != version
            now = time.monotonic()
            changed = self._checked_at is None or now - self._checked_at >= self.ttl_s
            local = _local_commits(self._database)
            if local != self._local_seen:
                self._local_seen = local
                changed = True
            if self._listener is None and (
                self._listen_tried_at is None or now - self._listen_tried_at >= self.ttl_s
            ):
                changed = self._listen() or changed
            if self._listener is not None:
                changed = self._notified() or changed
            if changed:
                self._checked_at = now
            return changed

    def committed(self) -> None:
        """Report a write transaction this process committed, so every watcher here sees it next call.

        Needed on SQLite with `recheck_s` (PostgreSQL's commits are counted by the store itself).
        """
        note_commit(self._database)

    def close(self) -> None:
        """Close the dedicated connection."""
        with self._lock:
            if self._raw is not None:
                self._cursor.close()
                self._raw.close()
                self._raw = self._driver = self._cursor = None
            self._drop_listener()

    def _listen(self) -> bool:
        """Open the listening connection (PostgreSQL); True if it is new, so changes may have been missed."""
        if self._engine.dialect.name != "postgresql":
            return False
        self._listen_tried_at = time.monotonic()
        args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        # It runs inside a request's changed() call: an unreachable server must not hold that up long.
        kwargs.setdefault("connect_timeout", 5)
        try:
            listener = self._engine.dialect.loaded_dbapi.connect(*args, **kwargs, autocommit=True)
        except Exception as exc:
            log.warning("cannot listen for metadata changes (%s); polling every %g s", exc, self.ttl_s)
            return False
        try:
            listener.execute(f"LISTEN {CHANNEL}")
        except Exception:
            listener.close()
            raise
        self._listener = listener
        return True

    def _notified(self) -> bool:
        """Whether notifications arrived since the last look; True (and reconnect later) on a lost link."""
        pgconn = self._listener.pgconn
        try:
            pgconn.consume_input()  # reads what the socket holds, without waiting
            found = False
            while pgconn.notifies() is not None:
                found = True
            return found
        except Exception as exc:
            log.warning("lost the connection that listens for metadata changes (%s); reconnecting", exc)
            self._drop_listener()
            self._listen_tried_at = None  # try again at the next call, then once per ttl_s
            return True

    def _drop_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None
