"""The trigger worker's CPU per event, in one process: `python -m benchmarks.realtime --worker`.

The realtime benchmark's project (a streaming view of the user with 5 features, a trigger on
`checkout_view` keyed by the session, a LightGBM bundle) on the stores `kawa serve` uses (the file
event log, LMDB, the registry), without the HTTP server. The load is made before the clock starts and
sent through the collector as the API would: per simulated millisecond one triggering event in a
request of its own, and every 25 ms a background request of 500 shop events (20,000 + 1,000 events/s
of simulated time). Two ways of reading it:

- `live`: the worker steps after every simulated millisecond's requests, so each read finds about one
  millisecond of traffic, as the worker sees it when it keeps up;
- `catch-up`: the same requests written first, then the worker drains the log in 1 MiB reads.

Only the worker's own thread is timed (`time.thread_time` around `step`), so the collector's writes are
left out. Events per CPU-second = events handled / CPU seconds of the worker's thread.
"""

from __future__ import annotations

import gc
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from benchmarks._events import CLOCK, TAG, make_bodies, stamp_clock

PROJECT = "bench"
BACKGROUND_EVERY_MS = 25  # a 500-event request every 25 ms: 20,000 events/s
BATCH = 500


def requests(seconds: float, seed: int = 3) -> list[list[bytes]]:
    """Per simulated millisecond, the NDJSON bodies sent in it."""
    rng = random.Random(seed)
    templates = make_bodies(16, BATCH, seed=seed)
    encode = msgspec.json.Encoder().encode
    start = time.time()
    out: list[list[bytes]] = []
    for ms in range(int(seconds * 1000)):
        bodies = []
        if ms % BACKGROUND_EVERY_MS == 0:
            serial = ms // BACKGROUND_EVERY_MS
            body = templates[serial % len(templates)]
            # Stamped with the simulated second, as the load generator stamps bodies when it sends them.
            clock = stamp_clock(start + ms / 1000)
            bodies.append(body.replace(TAG, f"{serial:010d}".encode()).replace(CLOCK, clock))
        user = int(rng.paretovariate(1.2) * 1000) % 500_000
        trigger = {
            "event_name": "checkout_view",
            "event_id": f"trig-{ms}",
            "keys": {"user_id": f"user_{user}", "session_id": f"rt-{ms}"},
            "page": "https://shop.example.com/checkout",
            "category": rng.choice(("shoes", "bags", "shirts", "hats", "toys", "books")),
            "price": round(rng.uniform(5, 300), 2),
        }
        bodies.append(encode(trigger))
        out.append(bodies)
    return out


def _open(folder: Path) -> dict[str, Any]:
    from lightgbm import LGBMClassifier

    from benchmarks.realtime import MODEL, training_rows
    from kawa.config import IngestConfig
    from kawa.events.collector import Collector
    from kawa.models import Bundle, Registry
    from kawa.stores.artifacts import open_artifacts
    from kawa.stores.eventlog import open_event_log
    from kawa.stores.metadata import open_metadata
    from kawa.stores.online import open_online_store

    writer = open_event_log("files", folder, writer=True)
    metadata = open_metadata("sqlite", folder)
    artifacts = open_artifacts("local", folder)
    registry = Registry(metadata, artifacts)
    bundle = Bundle.fit(
        training_rows(), label="bought", estimator=LGBMClassifier(n_estimators=100, verbose=-1)
    )
    registry.promote(PROJECT, MODEL, registry.register(PROJECT, MODEL, bundle))
    return {
        "writer": writer,
        "collector": Collector(writer, IngestConfig()),
        "online": open_online_store("lmdb://?sync=false", folder),  # as `kawa serve` opens it for triggers
        "reader": open_event_log("files", folder, writer=False),
        "registry": registry,
        "closers": [registry, artifacts, metadata],
    }


def _worker(parts: dict[str, Any]) -> Any:
    from benchmarks.realtime import FEATURES_PY
    from kawa.triggers.worker import TriggerWorker

    namespace: dict[str, Any] = {}
    exec(FEATURES_PY, namespace)  # the benchmark project's own declarations
    worker = TriggerWorker(
        project=PROJECT,
        triggers=[namespace["checkout"]],
        event_log=parts["reader"],
        online=parts["online"],
        registry=parts["registry"],
    )
    worker.warm_up()
    return worker


def run(mode: str, load: list[list[bytes]]) -> dict[str, Any]:
    """One fresh state folder, one worker, `load` sent and handled; the worker's CPU per event."""
    from kawa.triggers import state

    folder = Path(tempfile.mkdtemp(prefix="kawa-bench-worker-"))
    parts = _open(folder)
    try:
        worker = _worker(parts)
        ingest = parts["collector"].ingest
        cpu = 0.0
        steps = 0

        def drain() -> float:
            """Step the worker until the log has nothing new; its thread's CPU seconds."""
            nonlocal steps
            before = time.thread_time()
            while worker.step():
                steps += 1
            return time.thread_time() - before

        gc.collect()
        wall = time.perf_counter()
        for bodies in load:
            for body in bodies:
                ingest(body, project=PROJECT, ndjson=True)
            if mode == "live":
                cpu += drain()
        cpu += drain()
        before = time.thread_time()
        worker.flush()
        cpu += time.thread_time() - before
        wall = time.perf_counter() - wall
        stats = state.read_stats(parts["online"], PROJECT)["checkout"]
        events = worker.position.events
        return {
            "mode": mode,
            "events": events,
            "triggering": len(load),
            "scored": stats.scored,
            "errors": stats.errors,
            "steps": steps,
            "worker_cpu_s": round(cpu, 3),
            "events_per_cpu_s": round(events / cpu),
            "us_per_event": round(cpu / events * 1e6, 2),
            "wall_s": round(wall, 1),
        }
    finally:
        parts["online"].close()
        parts["reader"].close()
        for closer in parts["closers"]:
            closer.close()
        parts["writer"].close()
        shutil.rmtree(folder, ignore_errors=True)


def main(seconds: float, runs: int) -> list[dict[str, Any]]:
    """`runs` rounds of both modes over `seconds` of simulated load; prints and returns each result."""
    load = requests(seconds)
    out = []
    for _ in range(runs):
        for mode in ("live", "catch-up"):
            result = run(mode, load)
            print(msgspec.json.encode(result).decode(), flush=True)
            out.append(result)
    return out
