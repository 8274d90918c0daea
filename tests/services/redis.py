"""A real redis-server for the tests: one per test module on 127.0.0.1, flushed before each test.

Use it from a test module with `pytest_plugins = ["tests.services.redis"]`; then the fixtures
`redis_server` (the server of this module, which a test may `kill()` and `start()` again) and
`redis_url` (a `redis://` URL of the server, emptied before the test) are there, and
`unsafe_redis_server` (a server of its own without an append-only file, Redis's default). The server keeps
its append-only file in a temporary folder with `appendfsync always`, as kawa's event log requires,
so a SIGKILL and a restart show what production would keep.

Without redis-server (or the redis-py client) the tests that need it skip, and the end of the run
says so loudly; with KAWA_TEST_REQUIRE_SERVICES=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

REQUIRE_ENV = "KAWA_TEST_REQUIRE_SERVICES"
INSTALL_HINT = "run `bash scripts/test-services.sh` as root, or `apt-get install redis-server`"
SKIP_MARK = "Redis unavailable"

_skipped: list[str] = []  # skip reports of tests that needed Redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throwaway redis-server with its data in a temporary folder: `start()`, `kill()`, `stop()`."""

    def __init__(self, binary: str, *, appendonly: bool = True) -> None:
        self.binary = binary
        self.appendonly = appendonly
        self.root = Path(tempfile.mkdtemp(prefix="kawa-redis-"))
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (to watch its CPU time)."""
        return None if self._process is None or self._process.poll() is not None else self._process.pid

    @property
    def url(self) -> str:
        """The `redis://` URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server (again: it reloads its append-only file) and wait until it answers."""
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.root),
            "--logfile", str(self.root / "server.log"),
            "--daemonize", "no",
            "--save", "",  # no snapshots: the AOF alone holds the data
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always" if self.appendonly else "everysec",
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = self.server_log()
                self.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        """Whether the server answers PING and has finished loading its data."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def client(self) -> Any:
        """A redis-py client of database 0."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def flush(self) -> None:
        """Remove every key of every database."""
        with self.client() as client:
            client.flushall()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: only what its AOF holds survives."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def server_log(self) -> str:
        """The server's log so far (for failure messages)."""
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def unavailable(reason: str) -> NoReturn:
    """Skip the test loudly, or fail it when the environment requires services (CI)."""
    message = f"{SKIP_MARK}: {reason}; {INSTALL_HINT}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1 forbids skipping)", pytrace=False)
    pytest.skip(f"*** {message} ***")


def redis_binary() -> str:
    """The redis-server to run, after checking the client library is there too; skips or fails if not."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    if binary is None:
        unavailable("redis-server is not installed")
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("the redis-py client is not installed (pip install 'kawa[redis]')")
    return binary


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for this test module, with appendonly yes and appendfsync always."""
    server = RedisServer(redis_binary())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def unsafe_redis_server() -> Iterator[RedisServer]:
    """A redis-server of its own with Redis's default persistence (no append-only file), for one test."""
    server = RedisServer(redis_binary(), appendonly=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the module's server, emptied for this test (and started again if a test killed it)."""
    if not redis_server._answers():
        redis_server.start()
    redis_server.flush()
    return redis_server.url


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count the tests skipped for want of Redis."""
    if report.skipped and SKIP_MARK in str(report.longrepr):
        _skipped.append(str(report.longrepr))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say at the end of the run, where nobody can miss it, that Redis tests were skipped."""
    if _skipped:
        reason = _skipped[0].split("*** ", 1)[-1].rstrip("*' )")
        terminalreporter.write_sep("*", f"{len(_skipped)} Redis tests SKIPPED", red=True, bold=True)
        terminalreporter.write_line(reason, red=True)
