"""The metadata store on each backend (SQLite, PostgreSQL): migrations, transactions, concurrent openers.

Tests that take `target`, `empty` or `store` run once per backend; the PostgreSQL cases need a real
server (tests/services/postgres.py), and skip loudly, or fail in CI, without one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from kawa.stores._backends import BackendError
from kawa.stores.metadata import MetadataError, MetadataStore, open_metadata
from kawa.stores.metadata.changes import CHANNEL
from kawa.stores.metadata.migrate import MIGRATIONS, alembic_config, head_revision
from kawa.stores.metadata.tables import api_keys, metadata, projects

pytest_plugins = ["tests.services.postgres"]

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

VERSIONS = Path(__file__).parents[2] / "src" / "kawa" / "stores" / "metadata" / "migrations" / "versions"

BACKENDS = ["sqlite", "postgres"]


@dataclass(frozen=True)
class Target:
    """One database under test, and how to open it again (here or in another process)."""

    spec: str  # `sqlite` or a URL
    state: Path

    @property
    def backend(self) -> str:
        return "sqlite" if self.spec.startswith("sqlite") else "postgres"

    def open(self, **options: float) -> MetadataStore:
        if options:
            return MetadataStore(self.url, busy_timeout_s=options["busy_timeout_s"])
        return open_metadata(self.spec, self.state)

    @property
    def url(self) -> str:
        return f"sqlite:///{self.state / 'metadata.sqlite3'}" if self.spec == "sqlite" else self.spec

    def opener(self) -> str:
        """Python source that opens this database, for child processes."""
        return f"open_metadata({self.spec!r}, Path({str(self.state)!r}))"


def _target(request: pytest.FixtureRequest, tmp_path: Path, url_fixture: str) -> Target:
    if request.param == "sqlite":
        return Target("sqlite", tmp_path / "state")
    return Target(request.getfixturevalue(url_fixture), tmp_path / "state")


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """A database at the newest schema, on each backend."""
    return _target(request, tmp_path, "postgres_url")


@pytest.fixture(params=BACKENDS)
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """A database kawa has never opened (an empty folder, or an empty PostgreSQL database)."""
    return _target(request, tmp_path, "postgres_empty_url")


@pytest.fixture
def store(target: Target) -> Iterator[MetadataStore]:
    with target.open() as store:
        yield store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[MetadataStore]:
    with open_metadata("sqlite", tmp_path / "state") as store:
        yield store


def _spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- migrations --------------------------------------------------------------------------------------


def test_migrations_create_the_tables_in_an_empty_database(empty: Target) -> None:
    with empty.open() as store:
        assert store.revision() == head_revision() == sorted(p.name[:4] for p in VERSIONS.glob("0*.py"))[-1]
        tables = set(inspect(store.engine).get_table_names())
    assert {"projects", "api_keys", "runs", "lineage", "alembic_version"} <= tables
    if empty.backend == "sqlite":
        assert (empty.state / "metadata.sqlite3").is_file()


def test_the_migrated_schema_matches_the_tables_module(store: MetadataStore) -> None:
    with store.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_reopening_keeps_data_and_migrates_nothing(target: Target) -> None:
    with target.open() as store, store.begin() as conn:
        conn.execute(insert(projects).values(name="shop", created_at=NOW))
    for _ in range(2):
        with target.open() as store, store.connect() as conn:
            assert conn.scalars(select(projects.c.name)).all() == ["shop"]
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
                head_revision()
            ]


def test_every_migration_downgrades_and_upgrades_again(store: MetadataStore) -> None:
    config = alembic_config()
    with store.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
        command.upgrade(config, "head")
    assert store.revision() == head_revision()
    assert {"projects", "api_keys"} <= set(inspect(store.engine).get_table_names())
    with store.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_migration_files_are_package_data() -> None:
    assert (MIGRATIONS / "env.py").is_file() and (MIGRATIONS / "script.py.mako").is_file()
    assert (MIGRATIONS / "versions" / "0001_projects_and_keys.py").is_file()


def test_processes_opening_a_new_database_at_once_all_succeed(empty: Target) -> None:
    code = f"""
        import sys
        from pathlib import Path
        from sqlalchemy import insert, select, func
        from datetime import datetime, UTC
        from kawa.stores.metadata import open_metadata
        from kawa.stores.metadata.tables import projects
        print("ready", flush=True)
        sys.stdin.readline()
        with {empty.opener()} as store:
            with store.begin() as conn:
                n = conn.scalar(select(func.count()).select_from(projects))
                conn.execute(insert(projects).values(name=f"p{{n}}", created_at=datetime.now(UTC)))
            print(store.revision(), flush=True)
    """
    procs = [_spawn(code) for _ in range(3)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:  # all start migrating within a few milliseconds of each other
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [proc.communicate(timeout=60) for proc in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == head_revision()
    with empty.open() as store, store.connect() as conn:
        # Each writer counted the others' rows: writes were serialised, none lost.
        assert sorted(conn.scalars(select(projects.c.name))) == ["p0", "p1", "p2"]
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_a_database_from_a_newer_kawa_is_refused(target: Target) -> None:
    with target.open() as store, store.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(MetadataError, match=r"9999.*upgrade kawa"):
        target.open()


# -- transactions ------------------------------------------------------------------------------------


def test_foreign_keys_are_enforced(store: MetadataStore) -> None:
    row = {"key_id": "k1", "project": "nope", "role": "read", "secret_hash": "0" * 64, "created_at": NOW}
    with pytest.raises(IntegrityError), store.begin() as conn:
        conn.execute(insert(api_keys).values(**row))


def test_check_constraints_are_enforced(store: MetadataStore) -> None:
    with store.begin() as conn:
        conn.execute(insert(projects).values(name="shop", created_at=NOW))
    row = {"key_id": "k1", "project": "shop", "role": "root", "secret_hash": "0" * 64, "created_at": NOW}
    with pytest.raises(IntegrityError, match="role"), store.begin() as conn:
        conn.execute(insert(api_keys).values(**row))


def test_a_failed_write_transaction_leaves_nothing(store: MetadataStore) -> None:
    with pytest.raises(IntegrityError), store.begin() as conn:
        conn.execute(insert(projects).values(name="a", created_at=NOW))
        conn.execute(insert(projects).values(name="a", created_at=NOW))
    with store.connect() as conn:
        assert conn.scalars(select(projects.c.name)).all() == []
    with store.begin() as conn:  # and the pool hands out healthy connections afterwards
        conn.execute(insert(projects).values(name="b", created_at=NOW))


def test_a_writer_waits_for_another_instead_of_failing(store: MetadataStore, target: Target) -> None:
    holding = threading.Event()

    def slow_writer() -> None:
        with store.begin() as conn:
            conn.execute(insert(projects).values(name="slow", created_at=NOW))
            holding.set()
            time.sleep(0.5)

    # A second store is a separate pool, as another process would be.
    with target.open() as other:
        thread = threading.Thread(target=slow_writer)
        thread.start()
        assert holding.wait(10)
        started = time.monotonic()
        with other.begin() as conn:
            count = conn.execute(text("SELECT count(*) FROM projects")).scalar()
            conn.execute(insert(projects).values(name="fast", created_at=NOW))
        waited = time.monotonic() - started
        thread.join()
    assert waited > 0.2
    assert count == 1, "the second writer read only after the first committed"


def test_a_writer_gives_up_after_the_busy_timeout_saying_why(store: MetadataStore, target: Target) -> None:
    with target.open(busy_timeout_s=0.3) as impatient:
        with store.begin() as conn:
            conn.execute(insert(projects).values(name="held", created_at=NOW))
            started = time.monotonic()
            with (
                pytest.raises(MetadataError, match=r"held the write lock .* for over 0.3 s"),
                impatient.begin() as other,
            ):
                other.execute(insert(projects).values(name="late", created_at=NOW))
            assert 0.25 < time.monotonic() - started < 5
        with impatient.begin() as other:  # once the lock is free it writes as usual
            other.execute(insert(projects).values(name="late", created_at=NOW))
    with store.connect() as conn:
        assert sorted(conn.scalars(select(projects.c.name))) == ["held", "late"]


def test_readers_do_not_wait_for_a_writer(store: MetadataStore) -> None:
    with store.begin() as writer:
        writer.execute(insert(projects).values(name="pending", created_at=NOW))
        started = time.monotonic()
        with store.connect() as reader:
            assert reader.scalars(select(projects.c.name)).all() == []
        assert time.monotonic() - started < 1.0


def test_a_read_connection_sees_one_snapshot_until_it_closes(store: MetadataStore) -> None:
    with store.connect() as reader:
        assert reader.scalars(select(projects.c.name)).all() == []
        with store.begin() as writer:
            writer.execute(insert(projects).values(name="later", created_at=NOW))
        assert reader.scalars(select(projects.c.name)).all() == []
    with store.connect() as reader:
        assert reader.scalars(select(projects.c.name)).all() == ["later"]


def test_datetimes_come_back_aware_in_utc(store: MetadataStore) -> None:
    tokyo = datetime(2026, 5, 6, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=9)))
    with store.begin() as conn:
        conn.execute(insert(projects).values(name="t", created_at=tokyo))
    with store.connect() as conn:
        stored = conn.scalar(select(projects.c.created_at))
        # Comparisons in SQL work on the instant, whatever zone the parameter is in.
        found = conn.scalar(select(projects.c.name).where(projects.c.created_at == tokyo.astimezone(UTC)))
    assert stored == tokyo and stored.tzinfo == UTC and stored.hour == 0 and stored.microsecond == 123456
    assert found == "t"
    with pytest.raises(StatementError, match="naive datetime"), store.begin() as conn:
        conn.execute(insert(projects).values(name="n", created_at=datetime(2026, 1, 1)))


# -- backend choice ------------------------------------------------------------------------------------


def test_a_sqlite_url_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "meta.db"
    with open_metadata(f"sqlite:///{path}", tmp_path / "unused") as store:
        assert store.revision() == head_revision()
    assert path.is_file()
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize("spec", ["mysql://u@h/db", "lmdb", "", "sqlite3"])
def test_unknown_specs_are_refused(spec: str, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="unknown metadata store"):
        open_metadata(spec, tmp_path)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="in-memory"):
        open_metadata(url, tmp_path)


def test_postgresql_urls_use_psycopg_3() -> None:
    for url in ("postgresql://kawa@localhost/kawa", "postgres://kawa@localhost/kawa"):
        try:
            store = MetadataStore(url, migrate=False)
        except BackendError as exc:
            assert "kawa[postgres]" in str(exc)
        else:
            assert store.engine.dialect.driver == "psycopg"
            store.close()


def test_a_postgresql_store_keeps_its_password_out_of_its_repr(postgres_url: str, tmp_path: Path) -> None:
    with open_metadata(postgres_url, tmp_path) as store:
        assert store.revision() == head_revision()
        assert store.engine.dialect.driver == "psycopg"
        assert "***" in repr(store) and store.url.password and store.url.password not in repr(store)
    assert not tmp_path.joinpath("metadata.sqlite3").exists()


def test_a_postgresql_store_reconnects_when_the_server_drops_its_connections(
    postgres_url: str, tmp_path: Path
) -> None:
    import psycopg

    with open_metadata(postgres_url, tmp_path) as store:
        for name in ("before", "after"):
            with store.begin() as conn:
                conn.execute(insert(projects).values(name=name, created_at=NOW))
            with store.connect() as conn:  # two pooled connections now, both idle
                assert name in conn.scalars(select(projects.c.name)).all()
            # As a restart or failover of the server would: every pooled connection is cut.
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                dropped = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
            assert dropped is not None and dropped[0] >= 1
        with store.connect() as conn:
            assert sorted(conn.scalars(select(projects.c.name))) == ["after", "before"]


# -- change watcher ----------------------------------------------------------------------------------


def test_sqlite_pragmas_are_set_on_every_connection(sqlite_store: MetadataStore) -> None:
    with sqlite_store.connect() as first, sqlite_store.connect() as second:
        for conn in (first, second):
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_the_watcher_sees_commits_from_other_connections_and_processes(
    sqlite_store: MetadataStore, tmp_path: Path
) -> None:
    watcher = sqlite_store.watcher()
    try:
        assert watcher.exact
        assert watcher.changed() is True  # first call
        assert watcher.changed() is False
        with sqlite_store.begin() as conn:
            conn.execute(insert(projects).values(name="a", created_at=NOW))
        assert watcher.changed() is True
        assert watcher.changed() is False
        code = f"""
            import sqlite3
            db = sqlite3.connect({str(tmp_path / "state" / "metadata.sqlite3")!r})
            db.execute("INSERT INTO projects VALUES ('b', '2026-01-01 00:00:00.000000')")
            db.commit()
        """
        proc = _spawn(code)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert watcher.changed() is True
    finally:
        watcher.close()


def test_the_postgresql_watcher_sees_kawa_commits_at_once_and_other_writes_within_its_ttl(
    postgres_url: str, tmp_path: Path
) -> None:
    with open_metadata(postgres_url, tmp_path) as store:
        watcher = store.watcher(ttl_s=60)
        try:
            assert watcher.exact
            assert watcher.changed() is True  # first call
            assert watcher.changed() is False
            with store.begin() as conn:
                conn.execute(insert(projects).values(name="a", created_at=NOW))
            assert watcher.changed() is True
            assert watcher.changed() is False
            with store.begin() as conn:  # a rolled-back transaction changed nothing
                conn.execute(insert(projects).values(name="b", created_at=NOW))
                conn.rollback()
            assert watcher.changed() is True  # (this process cannot tell; it errs on the safe side)
            assert watcher.changed() is False
            code = f"""
                from datetime import datetime, UTC
                from sqlalchemy import insert
                from kawa.stores.metadata import open_metadata
                from kawa.stores.metadata.tables import projects
                with open_metadata({postgres_url!r}, None) as store, store.begin() as conn:
                    conn.execute(insert(projects).values(name="c", created_at=datetime.now(UTC)))
            """
            proc = _spawn(code)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert watcher.changed() is True  # notified; the TTL of 60 s cannot explain it
            assert watcher.changed() is False
        finally:
            watcher.close()


def test_the_postgresql_watcher_catches_other_writes_and_a_lost_connection_by_ttl(
    postgres_url: str, tmp_path: Path
) -> None:
    import psycopg

    with open_metadata(postgres_url, tmp_path) as store, psycopg.connect(postgres_url) as by_hand:
        watcher = store.watcher(ttl_s=0.3)
        try:
            assert watcher.changed() is True
            by_hand.execute("INSERT INTO projects VALUES ('psql', now())")  # no NOTIFY
            by_hand.commit()
            assert watcher.changed() is False
            time.sleep(0.35)
            assert watcher.changed() is True
            assert watcher.changed() is False
            # The server drops the listening connection: changes may be missed, so it says changed,
            # and listens again.
            by_hand.execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN {CHANNEL}'"
            )
            by_hand.commit()
            deadline = time.monotonic() + 5
            while watcher.changed() is False and time.monotonic() < deadline:
                time.sleep(0.01)
            assert time.monotonic() < deadline
            time.sleep(0.35)
            watcher.changed()  # reconnects
            assert watcher.exact and watcher.changed() is False
            with store.begin() as conn:
                conn.execute(insert(projects).values(name="again", created_at=NOW))
            assert watcher.changed() is True
        finally:
            watcher.close()
