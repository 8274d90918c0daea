"""The metadata store: SQLAlchemy Core over SQLite (embedded) or PostgreSQL, migrated on open."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url

from kawa.stores._backends import BackendError
from kawa.stores.metadata.changes import ChangeWatcher

log = logging.getLogger(__name__)

# Execution option that marks a write transaction; see `_sqlite_begin` and `_postgres_begin`.
WRITE_OPTION = "kawa_write"
# Key of the PostgreSQL advisory lock that serialises kawa's metadata writers (ASCII "kawameta").
POSTGRES_WRITE_LOCK = 0x6B6177616D657461


class MetadataError(RuntimeError):
    """The metadata database cannot be opened or migrated; the message says why and what to do."""


class MetadataStore:
    """Runs, models, schedules, catalog and keys in one SQL database, at the newest schema once opened.

    `begin()` opens a write transaction (committed on success, rolled back on error); `connect()`
    opens a connection for reads. On SQLite, writers take the write lock up front (`BEGIN IMMEDIATE`)
    and wait up to `busy_timeout_s` for each other; on PostgreSQL an advisory lock does the same, so
    read-then-write code behaves alike on both.
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
        try:
            self.engine: Engine = create_engine(self.url)
        except ImportError as exc:
            raise BackendError(
                f"cannot load the {self.url.drivername} driver: {exc}; install kawa[postgres] "
                "to keep metadata in PostgreSQL"
            ) from exc
        if self.is_sqlite:
            event.listen(self.engine, "connect", self._sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        elif self.engine.dialect.name == "postgresql":
            event.listen(self.engine, "begin", _postgres_begin)
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
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

    def begin(self) -> AbstractContextManager[Connection]:
        """A write transaction: `with store.begin() as conn: conn.execute(...)`."""
        return self._writer.begin()

    def connect(self) -> Connection:
        """A connection for reads (one consistent snapshot until it is closed or committed)."""
        return self.engine.connect()

    def revision(self) -> str | None:
        """The schema revision the database is at (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def watcher(self, ttl_s: float = 1.0) -> ChangeWatcher:
        """A change detector for caches of this database's rows; close it when done."""
        return ChangeWatcher(self.engine, ttl_s=ttl_s)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetadataStore({self.url.render_as_string(hide_password=True)!r})"

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


def _sqlite_begin(conn: Connection) -> None:
    # A write takes the lock at BEGIN, waiting up to busy_timeout; a deferred BEGIN that later
    # writes could fail at once with "database is locked" when another writer got there first.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


def _postgres_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({POSTGRES_WRITE_LOCK})")


def _normalise(url: URL) -> URL:
    """`postgresql://` and `postgres://` mean psycopg 3 (the `kawa[postgres]` extra), not psycopg2."""
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url
