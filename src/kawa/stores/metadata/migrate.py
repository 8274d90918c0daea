"""Bring a metadata database to the newest schema with Alembic, safely when processes race to do it."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine

from kawa.stores.metadata.store import LOCK_TIMEOUT_OPTION, WRITE_OPTION, MetadataError

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_TIMEOUT_S = 300.0


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config for kawa's migrations, built in code (no alembic.ini needed)."""
    config = Config()
    # Config values go through configparser interpolation, so a literal % must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
        config.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest schema revision this kawa knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "kawa ships at least one migration"
    return head


def upgrade(engine: Engine) -> None:
    """Apply every migration the database lacks, in one transaction."""
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    sqlite = engine.dialect.name == "sqlite"
    # Another process may be migrating: wait for it as long as for the SQLite migration lock.
    options = {WRITE_OPTION: True, LOCK_TIMEOUT_OPTION: LOCK_TIMEOUT_S}
    with _migration_lock(engine), engine.execution_options(**options).connect() as conn:
        if sqlite:
            # Batch migrations on SQLite copy and drop tables; with foreign keys on, dropping a parent
            # table would cascade-delete its children. The pragma is ignored inside a transaction,
            # so it is set before BEGIN and the keys are checked before COMMIT instead.
            _driver(conn).execute("PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                current = MigrationContext.configure(conn).get_current_revision()
                if current == head:
                    return
                if current is not None and current not in {s.revision for s in script.walk_revisions()}:
                    raise _newer_schema(engine, current, head)
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise MetadataError(f"migration to {head} broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                _driver(conn).execute("PRAGMA foreign_keys = ON")


def _driver(conn: Connection) -> Any:
    """The sqlite3 connection under `conn`, for pragmas that must run outside SQLAlchemy's BEGIN."""
    driver = conn.connection.driver_connection
    assert driver is not None, "a checked-out connection has a driver connection"
    return driver


def _newer_schema(engine: Engine, current: str, head: str | None) -> Exception:
    return MetadataError(
        f"the metadata database {engine.url.render_as_string(hide_password=True)} is at schema "
        f"revision {current}, newer than this kawa knows (newest: {head}); upgrade kawa"
    )


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Hold a file lock beside a SQLite database while migrating it (PostgreSQL locks in SQL)."""
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database.startswith("file:"):
        yield
        return
    path = Path(database).expanduser()
    fd = os.open(path.with_name(path.name + ".migrate.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MetadataError(
                        f"another process has been migrating {path} for over {LOCK_TIMEOUT_S:.0f} s; "
                        "wait for it to finish or stop it, then retry"
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
