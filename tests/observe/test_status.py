"""`kawa status` on projects whose stores are stopped or unreachable, and on Redis and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kawa.config import Config, StoresConfig
from kawa.observe.health import check
from kawa.serve.local import free_port
from tests.conftest import kawa

if TYPE_CHECKING:
    from tests.services.redis import RedisServer

pytest_plugins = ["tests.services.redis", "tests.services.postgres"]


def status(root: Path, **stores: str) -> tuple[bool, dict[str, dict[str, Any]], dict[str, Any]]:
    """Whether the project is healthy, its checks by name, and its lags."""
    report = check(Config(state_dir=str(root / ".kawa"), stores=StoresConfig(**stores)), timeout_s=3)
    found = report.to_json()
    return found["healthy"], {c["name"]: c for c in found["checks"]}, found["lags"]


@pytest.mark.slow  # two runs of the CLI
def test_an_unreachable_online_store_is_down_and_the_exit_code_says_so(tmp_path: Path) -> None:
    healthy, checks, lags = status(tmp_path)
    assert healthy and checks["serve"]["status"] == "stopped"
    assert {c["status"] for n, c in checks.items() if n != "serve"} == {"ok"}
    assert lags == {"acknowledged_offset": 0, "lake_offset": 0, "lake_lag_bytes": 0}

    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    healthy, checks, lags = status(tmp_path, online=unreachable)
    assert not healthy
    online = checks["online"]
    assert (online["status"], online["backend"]) == ("down", "redis")
    assert "cannot reach the Redis of the online store" in online["detail"]
    assert {c["status"] for n, c in checks.items() if n not in ("serve", "online")} == {"ok"}
    assert lags == {}  # the trigger worker's offset lives in the online store: no lags without it

    env = {"KAWA__STORES__ONLINE": unreachable}
    table = kawa("status", "--timeout", "3", cwd=tmp_path, check=False, env=env)
    assert table.returncode == 1 and table.stdout.rstrip().endswith("unhealthy: a part above is down")
    assert any("online" in line and "down" in line and "redis" in line for line in table.stdout.splitlines())
    as_json = kawa("status", "--json", "--timeout", "3", cwd=tmp_path, check=False, env=env)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["healthy"] is False


def test_status_on_redis_and_postgresql_and_with_redis_stopped(
    tmp_path: Path, redis_server: RedisServer, redis_url: str, postgres_url: str
) -> None:
    stores = {"event_log": redis_url, "online": redis_url, "metadata": postgres_url}
    healthy, checks, lags = status(tmp_path, **stores)
    assert healthy, checks
    backends = {name: checks[name]["backend"] for name in ("event_log", "online", "metadata")}
    assert backends == {"event_log": "redis", "online": "redis", "metadata": "postgresql"}
    assert lags["acknowledged_offset"] == 0
    redis_server.kill()
    try:
        healthy, checks, _ = status(tmp_path, **stores)
    finally:
        redis_server.start()
    assert not healthy
    assert checks["event_log"]["status"] == "down" and checks["online"]["status"] == "down"
    assert checks["metadata"]["status"] == "ok"
