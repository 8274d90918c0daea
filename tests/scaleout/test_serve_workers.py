"""`kawa serve --workers N`: several API/collector processes on one port, over the Redis event log."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import Server, kawa

if TYPE_CHECKING:
    from tests.services.redis import RedisServer

pytest_plugins = ["tests.services.redis"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Server]:
    env = {
        "KAWA__STORES__EVENT_LOG": redis_server.url,
        "KAWA__STORES__ONLINE": redis_server.url,
        "KAWA__SERVER__WORKERS": "2",
    }
    srv = Server(tmp_path_factory.mktemp("workers"), env=env)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_two_api_processes_share_the_port_and_every_event_lands_once(served: Server) -> None:
    pids: set[int] = set()
    sent = 0
    for i in range(60):
        # A new connection each time, so the kernel picks a process for each.
        with httpx.Client(base_url=served.url, timeout=30) as client:
            pids.add(client.get("/healthz").json()["pid"])
            events = [
                {"event_name": "view", "event_id": f"w{i}-{j}", "keys": {"user_id": f"u{j}"}}
                for j in range(5)
            ]
            headers = {"Authorization": f"Bearer {served.keys['write_key']}"}
            assert client.post("/v1/events", json=events, headers=headers).json()["accepted"] == 5
            sent += 5
    assert len(pids) == 2
    query = "SELECT count(*), count(DISTINCT event_id) FROM events WHERE event_id LIKE 'w%'"
    assert served.wait_for(query, [[sent, sent]], timeout=30) == [[sent, sent]]


def test_more_than_one_worker_on_the_file_log_is_refused(tmp_path: Path) -> None:
    kawa("init", "--project", "shop", cwd=tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "kawa.cli", "serve", "--workers", "2", "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--workers 2 needs an event log that many processes can append to" in done.stdout
    assert "redis://" in done.stdout
