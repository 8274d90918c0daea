"""A real PostgreSQL server for the tests: one cluster per session on 127.0.0.1, a fresh database per test.

Use it from a test module with `pytest_plugins = ["tests.services.postgres"]`; then the fixtures
`postgres` (the server), `postgres_url` (a new database at kawa's newest schema, dropped after the
test) and `postgres_empty_url` (a new empty database) are there. The cluster lives in a temporary
folder, listens on a free port of 127.0.0.1 only, and trades durability for speed (fsync off): it
holds nothing but test data. Each test's database is a copy of a template migrated once per session,
so a test pays ~50 ms for its database instead of a migration.

Without PostgreSQL's binaries (initdb, pg_ctl, postgres) the tests that need it skip, and the end of
the run says so loudly; with KAWA_TEST_REQUIRE_SERVICES=1 (CI) they fail instead.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import pytest

REQUIRE_ENV = "KAWA_TEST_REQUIRE_SERVICES"
BIN_ENV = "KAWA_TEST_POSTGRES_BIN"
USER = "kawa"
# Characters that must be escaped in a URL, so the tests also cover a URL-encoded password.
PASSWORD = "kawa:t%st@pw"
TEMPLATE = "kawa_template"
INSTALL_HINT = "run `bash scripts/test-services.sh` as root, or `apt-get install postgresql`"

SKIP_MARK = "PostgreSQL unavailable"

_skipped: list[str] = []  # skip reports of tests that needed PostgreSQL


def find_bindir() -> Path | None:
    """The folder with initdb, pg_ctl and postgres: $KAWA_TEST_POSTGRES_BIN if set, else on PATH, else
    the newest /usr/lib/postgresql/N/bin (Debian keeps them off PATH)."""
    names = ("initdb", "pg_ctl", "postgres")
    if BIN_ENV in os.environ:
        folder = Path(os.environ[BIN_ENV])
        return folder if all((folder / n).is_file() for n in names) else None
    on_path = [shutil.which(n) for n in names]
    if all(on_path):
        folder = Path(str(on_path[0])).resolve().parent
        if all((folder / n).is_file() for n in names):
            return folder
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if all((p / n).is_file() for n in names)),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0],
    )
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(
        "running as root and found neither a `postgres` nor a `nobody` user to run PostgreSQL as"
    )


class PostgresServer:
    """A throwaway PostgreSQL cluster: `start()`, then `create_database()` per test, `stop()` at the end."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="kawa-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._admin: Any = None

    def _run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self.user is not None:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(a) for a in args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"},
            **extra,
        )

    def start(self) -> None:
        """initdb a new cluster and start it on a free port of 127.0.0.1 (tries three ports)."""
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.user is not None:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        done = self._run(
            self.bindir / "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        for _ in range(3):
            self.port = _free_port()
            options = " ".join(
                [
                    f"-p {self.port}",
                    "-c listen_addresses=127.0.0.1",
                    "-c unix_socket_directories=''",  # TCP only: no socket folder to own
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c max_connections=200",  # each kawa process keeps a small pool
                ]
            )
            started = self._run(
                self.bindir / "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                "-o", options,
            )  # fmt: skip
            if started.returncode == 0:
                return
        raise RuntimeError(f"pg_ctl start failed:\n{started.stdout}\n{started.stderr}\n{self.server_log()}")

    def server_log(self) -> str:
        """The server's log so far (for failure messages)."""
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def url(self, database: str) -> str:
        """A postgresql:// URL for `database` (password URL-encoded)."""
        return f"postgresql://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """Run one statement in the `postgres` database outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg

        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.url("postgres"), autocommit=True)
        self._admin.execute(sql)

    def create_database(self, template: str = "template0") -> str:
        """A new database copied from `template`; returns its name."""
        name = f"kawa_test_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name`, disconnecting whoever still holds it open."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server at once and delete its folder."""
        if self._admin is not None:
            self._admin.close()
        pidfile = self.data / "postmaster.pid"
        if pidfile.exists():
            # SIGQUIT is pg_ctl's immediate shutdown, without pg_ctl's one-second polling.
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def unavailable(reason: str) -> NoReturn:
    """Skip the test loudly, or fail it when the environment requires services (CI)."""
    message = f"{SKIP_MARK}: {reason}; {INSTALL_HINT}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1 forbids skipping)", pytrace=False)
    pytest.skip(f"*** {message} ***")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole test session."""
    bindir = find_bindir()
    if bindir is None:
        where = os.environ.get(BIN_ENV, "on PATH or in /usr/lib/postgresql/*/bin")
        unavailable(f"initdb, pg_ctl and postgres are not installed ({where})")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresServer) -> str:
    """A database migrated to kawa's newest schema once, that each test's database is copied from."""
    from kawa.stores.metadata import open_metadata

    postgres.execute(f'CREATE DATABASE "{TEMPLATE}"')
    with open_metadata(postgres.url(TEMPLATE), Path(postgres.root)):
        pass  # opening migrates; closing leaves no connection, as CREATE DATABASE ... TEMPLATE needs
    return TEMPLATE


@pytest.fixture
def postgres_url(postgres: PostgresServer, postgres_template: str) -> Iterator[str]:
    """The URL of a new database at kawa's newest schema, dropped after the test."""
    name = postgres.create_database(template=postgres_template)
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture
def postgres_empty_url(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a new empty database (no tables), dropped after the test."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count the tests skipped for want of PostgreSQL."""
    if report.skipped and SKIP_MARK in str(report.longrepr):
        _skipped.append(str(report.longrepr))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say at the end of the run, where nobody can miss it, that PostgreSQL tests were skipped."""
    if _skipped:
        reason = _skipped[0].split("*** ", 1)[-1].rstrip("*' )")
        terminalreporter.write_sep("*", f"{len(_skipped)} PostgreSQL tests SKIPPED", red=True, bold=True)
        terminalreporter.write_line(reason, red=True)
