"""A real local Ray cluster for the executor tests: one per test session, on loopback, 2 CPUs.

Use it from a test module with `pytest_plugins = ["tests.services.ray"]`; then the fixtures
`ray_cluster` (the session's cluster: its `address`, and the worker processes running a task of a
given name) and `ray_driver` (this test process connected to it) are there.

The cluster is `ray start --head --block` in a temporary folder. Ray swaps a loopback
`--node-ip-address` for the machine's network address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, so
that is set for the cluster and, for the session, in this process's environment, which the kawa
processes the tests start inherit: then every port listens on 127.0.0.1 only. It is stopped by
ending its `ray start` process (which stops what it started), not `ray stop`, which would stop every
Ray cluster of this user on the machine.

Without Ray the tests that need it skip with a loud notice; with KAWA_TEST_REQUIRE_SERVICES=1 (CI)
they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import unavailable

INSTALL_HINT = "install it with `.venv/bin/pip install 'kawa[ray]'` (`make test` does)"
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
CPUS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RayCluster:
    """A throwaway single-node Ray cluster: `start()`, `stop()`, `address`, `task_pids(name)`."""

    def __init__(self, binary: str, *, cpus: int = CPUS) -> None:
        self.binary = binary
        self.cpus = cpus
        # Short: Ray's unix socket paths live under it, and those may not pass 107 characters.
        self.root = Path(tempfile.mkdtemp(prefix="kawa-ray-", dir="/tmp"))
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The head's GCS address, what RAY_ADDRESS or `ray.init(address=...)` takes."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        """Start the cluster and wait until it says it is up."""
        args = [
            self.binary, "start", "--head", "--block",
            f"--port={self.port}",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.cpus}",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--object-store-memory={256 * 1024 * 1024}",
            f"--temp-dir={self.root}",
        ]  # fmt: skip
        output = (self.root / "start.log").open("wb")
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **LOOPBACK_ENV},
            start_new_session=True,  # its own process group, to end whatever it leaves behind
        )
        output.close()
        deadline = time.monotonic() + timeout
        while b"Ray runtime started" not in self._log():
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = self._log().decode(errors="replace")
                self.stop()
                raise RuntimeError(f"ray start did not bring a cluster up on port {self.port}:\n{log}")
            time.sleep(0.2)

    def _log(self) -> bytes:
        path = self.root / "start.log"
        return path.read_bytes() if path.is_file() else b""

    def task_pids(self, name: str) -> list[int]:
        """PIDs of this cluster's worker processes running a task called `name` now (Ray titles them)."""
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title == f"ray::{name}" and self.owns(int(proc.name)):
                found.append(int(proc.name))
        return found

    def owns(self, pid: int) -> bool:
        """Whether process `pid` descends from this cluster's `ray start`."""
        if self._process is None:
            return False
        while pid > 1:
            if pid == self._process.pid:
                return True
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return False
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        return False

    def stop(self) -> None:
        """End `ray start` (it stops what it started), then anything left of it; delete its folder."""
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def ray_binary() -> str:
    """The `ray` command beside this Python, after checking the library imports; skips or fails if not."""
    try:
        import ray  # noqa: F401
    except ImportError:
        unavailable("Ray", INSTALL_HINT)
    binary = Path(sys.executable).parent / "ray"
    found = str(binary) if binary.is_file() else shutil.which("ray")
    if found is None:
        unavailable("the `ray` command", INSTALL_HINT)
    return found


def keep_loopback() -> None:
    """Make a Ray imported before the variable was set keep 127.0.0.1 too (it read it at import)."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """The session's Ray cluster on 127.0.0.1; kawa processes started meanwhile reach it on loopback."""
    saved = {name: os.environ.get(name) for name in LOOPBACK_ENV}
    os.environ.update(LOOPBACK_ENV)  # before Ray is imported here: it reads the variable then
    cluster: RayCluster | None = None
    try:
        cluster = RayCluster(ray_binary())
        keep_loopback()
        cluster.start()
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def ray_driver(ray_cluster: RayCluster) -> Iterator[RayCluster]:
    """This test process connected to the session's cluster (as kawa connects: through RayExecutor)."""
    import ray

    from kawa.pipelines.ray_executor import connect

    connect(ray_cluster.address)
    try:
        yield ray_cluster
    finally:
        ray.shutdown()
