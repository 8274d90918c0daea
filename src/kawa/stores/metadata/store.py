"""The metadata store: SQLAlchemy Core over SQLite (embedded) or PostgreSQL, migrated on open."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError

from kawa.observe.metrics import store_error
from kawa.stores._backends import BackendError
from kawa.stores.metadata.changes import CHANNEL, ChangeWatcher, note_commit

log = logging.getLogger(__name__)

# Execution option that marks a write transaction; see `_sqlite_begin` and `_postgres_begin`.
WRITE_OPTION = "kawa_write"
# Execution option: seconds a write transaction waits for the write lock (default: busy_timeout_s).
LOCK_TIMEOUT_OPTION = "kawa_lock_timeout_s"
# Key of the PostgreSQL advisory lock that serialises kawa's metadata writers (ASCII "kawameta").
POSTGRES_WRITE_LOCK = 0x6B6177616D657461
# SQLSTATE of "canceling statement due to lock timeout".
LOCK_NOT_AVAILABLE = "55P03"


class MetadataError(RuntimeError):
    """The metadata database cannot be opened or migrated; the message says why and what to do."""


class MetadataStore:
    """Runs, models, schedules, catalog and keys in one SQL database, at the newest schema once opened.

    `begin()` opens a write transaction (committed on success, rolled back on error); `connect()`
    opens a connection for reads. On SQLite, writers take the write lock up front (`BEGIN IMMEDIATE`)
    and wait up to `busy_timeout_s` for each other; on PostgreSQL an advisory lock does the same, so
    read-then-write code behaves alike on both. Reads see one snapshot on both: SQLite's WAL gives it,
    PostgreSQL reads run at REPEATABLE READ (writers stay at READ COMMITTED, so that once they hold the
    lock they see everything committed before).
    """

    def __init__(self, url: str | URL, *, busy_timeout_s: float = 5.0, migrate: bool = True) -> None:
        self.url = _normalise(make_url(url))
        self.busy_timeout_s = busy_timeout_s
        if self.is_sqlite:
            database = self.url.database or ""
            if database in ("", ":memory:") or "mode=memory" in database:
                raise MetadataError(
                    f"in-memory SQLite ({self.url}) is not supported: every pooled connection would see "
                    "its own empty database; use a file, e.g. sqlite:///path/metadata.sqlite3"
                )
            if not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # A PostgreSQL server restarts and fails over while kawa runs: test pooled connections first.
        options: dict[str, Any] = {} if self.is_sqlite else {"pool_pre_ping": True}
        try:
            self.engine: Engine = create_engine(self.url, **options)
        except ImportError as exc:
            raise BackendError(
                f"cannot load the {self.url.drivername} driver: {exc}; install kawa[postgres] "
                "to keep metadata in PostgreSQL"
            ) from exc
        if self.is_sqlite:
            event.listen(self.engine, "connect", self._sqlite_connect)
            event.listen(self.engine, "begin", self._sqlite_begin)
        event.listen(self.engine, "handle_error", lambda _: store_error("metadata"))
        self._reader: Engine = self.engine
        if self.engine.dialect.name == "postgresql":
            event.listen(self.engine, "begin", self._postgres_begin)
            self._reader = self.engine.execution_options(isolation_level="REPEATABLE READ")
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        self._identity = self.url.render_as_string(hide_password=True)
        if migrate:
            from kawa.stores.metadata.migrate import upgrade

            try:
                upgrade(self.engine)
            except BaseException:
                self.engine.dispose()
                raise

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: `with store.begin() as conn: conn.execute(...)`."""
        with self._writer.begin() as conn:
            yield conn
        if not self.is_sqlite:
            # After the commit: this process's change watchers see it at their next call.
            note_commit(self._identity)

    def connect(self) -> Connection:
        """A connection for reads (one consistent snapshot until it is closed or committed)."""
        return self._reader.connect()

    def revision(self) -> str | None:
        """The schema revision the database is at (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def watcher(self, ttl_s: float = 1.0, *, recheck_s: float = 0.0) -> ChangeWatcher:
        """A change detector for caches of this database's rows; close it when done."""
        return ChangeWatcher(self.engine, ttl_s=ttl_s, database=self._identity, recheck_s=recheck_s)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetadataStore({self.url.render_as_string(hide_password=True)!r})"

    def _sqlite_begin(self, conn: Connection) -> None:
        if not conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN")
            return
        # A write takes the lock at BEGIN, waiting up to busy_timeout; a deferred BEGIN that later
        # writes could fail at once with "database is locked" when another writer got there first.
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except OperationalError as exc:
            if "locked" not in str(exc.orig):
                raise
            raise self._lock_timeout(self.busy_timeout_s) from exc

    def _postgres_begin(self, conn: Connection) -> None:
        options = conn.get_execution_options()
        if not options.get(WRITE_OPTION):
            return
        # lock_timeout bounds the wait for the advisory lock as busy_timeout does on SQLite; without
        # it a writer stuck inside its transaction would hang every other writer for good.
        timeout_ms = max(1, int(options.get(LOCK_TIMEOUT_OPTION, self.busy_timeout_s) * 1000))
        # NOTIFY is delivered when the transaction commits (never on rollback): see ChangeWatcher.
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {timeout_ms}; NOTIFY {CHANNEL}")
        try:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({POSTGRES_WRITE_LOCK})")
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            raise self._lock_timeout(timeout_ms / 1000) from exc

    def _lock_timeout(self, waited_s: float) -> MetadataError:
        where = (
            "find it with: SELECT pid, query FROM pg_locks JOIN pg_stat_activity USING (pid) "
            "WHERE locktype = 'advisory' AND granted"
            if not self.is_sqlite
            else "find it with: fuser " + str(self.url.database)
        )
        return MetadataError(
            f"another process has held the write lock of {self!r} for over {waited_s:g} s; "
            f"retry when it is done, or {where}"
        )

    def _sqlite_connect(self, dbapi_connection: Any, _record: object) -> None:
        # sqlite3's own transaction handling skips BEGIN before SELECT and DDL; kawa emits BEGIN
        # itself (`_sqlite_begin`) so reads are consistent and migrations are atomic.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning(
                    "SQLite at %s stays in %s journal mode (WAL unavailable on this file system); "
                    "readers will wait for writers",
                    self.url.database,
                    mode,
                )
            # NORMAL can lose the last commits on power loss in WAL mode; FULL fsyncs every commit.
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()


def _normalise(url: URL) -> URL:
    """`postgresql://` and `postgres://` mean psycopg 3 (the `kawa[postgres]` extra), not psycopg2."""
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url
