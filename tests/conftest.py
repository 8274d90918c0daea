"""Shared fixtures: a real `kawa serve` on 127.0.0.1 in a temporary project folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from kawa.serve.local import LocalServer

KAWA = [sys.executable, "-m", "kawa.cli"]


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


class Server(LocalServer):
    """`kawa serve` in a new project folder; `kill()` sends SIGKILL to all of it, `start()` brings it back."""

    def __init__(self, root: Path, project: str = "shop", env: dict[str, str] | None = None) -> None:
        kawa("init", "--project", project, cwd=root)
        super().__init__(root, env={"KAWA__LAKE__FLUSH_INTERVAL_S": "0.2", **(env or {})})
        self.root = root
        self.keys = yaml.safe_load((root / "kawa.yaml").read_text())["projects"][project]
        self.project = project

    def add_project(self, name: str) -> dict[str, str]:
        kawa("keys", "create", "--project", name, cwd=self.root)
        return yaml.safe_load((self.root / "kawa.yaml").read_text())["projects"][name]

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

    def missing_events(self, event_ids: Iterable[str], per_query: int = 20_000) -> int:
        """How many of `event_ids` the events table lacks, asked `per_query` ids at a time.

        A fast machine acknowledges more events in a durability test's seconds than one query listing
        them all can carry in /v1/sql's body (5 MB).
        """
        ordered = sorted(event_ids)
        missing = 0
        for start in range(0, len(ordered), per_query):
            ids = ",".join(f"'{a}'" for a in ordered[start : start + per_query])
            rows = self.sql(
                f"SELECT count(*) FROM (SELECT unnest([{ids}]) AS id) "
                "WHERE id NOT IN (SELECT event_id FROM events)"
            )
            missing += int(rows[0][0])  # type: ignore[call-overload]
        return missing

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
