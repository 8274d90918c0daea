"""The health of a project's stores and of the `kawa serve` running over it, for `kawa status`.

Each store is opened the way the parts open it and asked one cheap question (the log's end offset,
a key, the schema revision, a listing, a SQL count); each check runs in its own thread with a time
limit, so a store that hangs (an unroutable host) is reported as down instead of hanging the command.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from kawa.config import Config
from kawa.runtime import Runtime

OK, DOWN, STOPPED = "ok", "down", "stopped"
TIMEOUT_S = 5.0
SERVE_PARTS = ("lake", "triggers", "bandits", "scheduler")


@dataclass
class Check:
    """One part or store: `ok`, `down` (unhealthy) or `stopped` (kawa serve is not running)."""

    name: str
    kind: str  # store | server
    backend: str
    status: str
    detail: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    lags: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(c.status != DOWN for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "checks": [asdict(c) for c in self.checks], "lags": self.lags}


def _timed(fn: Callable[[], str], timeout_s: float) -> tuple[str, str]:
    """(status, detail) of `fn` (which returns a detail), run in a daemon thread for at most `timeout_s`."""
    out: list[tuple[str, str]] = []

    def run() -> None:
        try:
            out.append((OK, fn()))
        except Exception as exc:
            out.append((DOWN, f"{type(exc).__name__}: {exc}".strip()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return out[0] if out else (DOWN, f"no answer within {timeout_s:g} s")


def _backend(spec: str) -> str:
    return spec.split("://", 1)[0] if "://" in spec else spec


def store_checks(runtime: Runtime) -> dict[str, Callable[[], str]]:
    """The question asked of each store; each returns a short detail."""
    config = runtime.config

    def event_log() -> str:
        return f"end offset {runtime.event_log.end_offset()}"

    def lake() -> str:
        warehouse = runtime.warehouse(config.project)
        events = warehouse.query("SELECT count(*) AS n FROM events").column("n")[0].as_py()
        return f"{events} events in {runtime.lake_root}"

    def online() -> str:
        runtime.online.get("kawa-status", "ping")
        return "readable"

    def metadata() -> str:
        return f"schema {runtime.metadata.revision()}"

    def artifacts() -> str:
        runtime.artifacts.list("models/")
        return runtime.artifacts.uri("models").removesuffix("models")

    def executor() -> str:
        from kawa.pipelines.executor import ray_address

        address = ray_address(config.stores.executor)
        if address is None:
            return "a subprocess per step"
        if importlib.util.find_spec("ray") is None:
            raise RuntimeError("install kawa[ray] to run steps on Ray")
        return f"Ray at {address} (connected when a step runs)"

    return {
        "event_log": event_log,
        "lake": lake,
        "online": online,
        "metadata": metadata,
        "artifacts": artifacts,
        "executor": executor,
    }


def _backends(config: Config) -> dict[str, str]:
    stores = config.stores
    return {
        "event_log": _backend(stores.event_log),
        "lake": "parquet+duckdb",
        "online": _backend(stores.online),
        "metadata": _backend(stores.metadata),
        "artifacts": _backend(stores.artifacts),
        "executor": _backend(stores.executor),
    }


def server_checks(runtime: Runtime, timeout_s: float) -> list[Check]:
    """The parts of the `kawa serve` over this state folder, by /healthz and their heartbeats."""
    from kawa.serve.worker import heartbeat_path, part_alive, running_server_url

    url = running_server_url(runtime.state_path)
    if url is None:
        return [Check("serve", "server", "kawa serve", STOPPED, "not running over this state folder")]
    checks = []
    try:
        health = httpx.get(url + "/healthz", timeout=timeout_s).json()
        checks.append(Check("serve/api", "server", url, OK, f"version {health.get('version')}"))
    except (httpx.HTTPError, ValueError) as exc:
        checks.append(Check("serve/api", "server", url, DOWN, f"/healthz: {exc}"))
    run = heartbeat_path(runtime.state_path, "api").parent
    extra = sorted(p.stem for pattern in ("api-*.alive", "triggers-*.alive") for p in run.glob(pattern))
    for part in (*extra, *SERVE_PARTS):
        alive = part_alive(runtime.state_path, part)
        detail = "heartbeat within 5 s" if alive else "no heartbeat for 5 s: see kawa serve's log"
        checks.append(Check(f"serve/{part}", "server", "kawa serve", OK if alive else DOWN, detail))
    return checks


def lags(runtime: Runtime) -> dict[str, Any]:
    """Event log offsets and what the lake and the trigger worker still have to read (bytes)."""
    from kawa.observe.scrape import log_positions

    positions = log_positions(runtime)
    end = positions["acknowledged"]
    out: dict[str, Any] = {"acknowledged_offset": end}
    for name in ("lake", "scored"):
        if name in positions:
            out[f"{name}_offset"] = positions[name]
            out[f"{name}_lag_bytes"] = max(end - positions[name], 0)
    return out


def check(config: Config, timeout_s: float = TIMEOUT_S) -> Report:
    """Every store's and server part's health, and the log lags (when the stores answer)."""
    runtime = Runtime(config)
    report = Report()
    backends = _backends(config)
    for name, fn in store_checks(runtime).items():
        status, detail = _timed(fn, timeout_s)
        report.checks.append(Check(name, "store", backends[name], status, detail))
    report.checks.extend(server_checks(runtime, timeout_s))
    down = {c.name for c in report.checks if c.status == DOWN}
    if not down & {"event_log", "online"}:

        def read_lags() -> str:
            report.lags.update(lags(runtime))
            return ""

        status, detail = _timed(read_lags, timeout_s)
        if status == DOWN:
            report.lags["error"] = detail
    if not any(c.detail.startswith("no answer within") for c in report.checks):
        runtime.close()  # (a store that hung keeps its thread: closing it under that thread could crash)
    return report
