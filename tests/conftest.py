"""Shared fixtures: a real `kawa serve` on 127.0.0.1 in a temporary project folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

KAWA = [sys.executable, "-m", "kawa.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kawa(
    *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the kawa CLI in `cwd` and return what it printed."""
    return subprocess.run(
        [*KAWA, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=check,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


class Server:
    """A `kawa serve` process tree; `kill()` sends SIGKILL to all of it, `start()` brings it back."""

    def __init__(self, root: Path, project: str = "shop", env: dict[str, str] | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "KAWA__LAKE__FLUSH_INTERVAL_S": "0.2", **(env or {})}
        kawa("init", "--project", project, cwd=root)
        config = yaml.safe_load((root / "kawa.yaml").read_text())
        self.keys = config["projects"][project]
        self.project = project
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def add_project(self, name: str) -> dict[str, str]:
        kawa("keys", "create", "--project", name, cwd=self.root)
        return yaml.safe_load((self.root / "kawa.yaml").read_text())["projects"][name]

    def start(self, timeout: float = 120.0) -> None:
        self.process = subprocess.Popen(
            [*KAWA, "serve", "--port", str(self.port)],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()

        def pump(process: subprocess.Popen[str]) -> None:
            assert process.stdout is not None
            try:
                for line in process.stdout:
                    self.output.append(line)
                    if "ready at" in line:
                        ready.set()
            except ValueError:  # the pipe was closed by stop()
                pass

        threading.Thread(target=pump, args=(self.process,), daemon=True).start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError("kawa serve did not get ready:\n" + "".join(self.output[-50:]))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._close()

    def kill(self) -> None:
        """SIGKILL the supervisor and every part at once, as a power cut of the processes would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._close()

    def _close(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def client(self, role: str = "write") -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[role + '_key']}"}, timeout=30
        )

    def sql(self, query: str, key: str | None = None) -> list[list[object]]:
        response = httpx.post(
            self.url + "/v1/sql",
            json={"sql": query},
            headers={"Authorization": f"Bearer {key or self.keys['admin_key']}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["rows"]

    def wait_for(
        self, query: str, expected: object, timeout: float = 10.0, key: str | None = None
    ) -> list[list[object]]:
        """Poll `query` until its rows equal `expected` (the lake flushes asynchronously)."""
        deadline = time.monotonic() + timeout
        rows = self.sql(query, key)
        while rows != expected and time.monotonic() < deadline:
            time.sleep(0.1)
            rows = self.sql(query, key)
        return rows


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("kawa"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
