"""Ingest on Redis Streams with 1 and 2 collector processes vs the embedded file log, same load.

    python -m benchmarks.scaleout_ingest            # 3 rounds of 20 s per set-up (about 4 minutes)
    python -m benchmarks.scaleout_ingest --quick    # 1 round of 8 s

Each round runs every set-up once, in turn (so a noisy minute on a shared machine hits all of them):
`files` (the embedded event log, one collector), `redis x1` and `redis x2` (`kawa serve --workers N`
on a redis-server with `appendonly yes` + `appendfsync always`, as the event log requires). Each is
a fresh `kawa init` + `kawa serve` on 127.0.0.1, loaded with NDJSON batches from `--concurrency`
keep-alive connections; then the benchmark waits until the lake holds every acknowledged event and
checks none was lost or doubled. Reported: acknowledged events/s, CPU microseconds per event of the
collectors, of redis-server and of the lake writer (the figures the scale plan in BENCHMARKS.md
multiplies out), and, once, the bytes Redis spends per stored prediction.

On a 2-core machine the load generator, the collectors, redis-server and the lake writer share the
two cores, so events/s here is a floor; the CPU cost per event is what carries to bigger machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.services.redis import RedisServer, redis_binary

from benchmarks._events import make_bodies
from benchmarks._load import Requests, drive, wait_until
from benchmarks._peers_kawa import machine
from benchmarks._server import cpu_seconds, start_kawa
from kawa.warehouse import Warehouse

RESULTS = Path(__file__).parent / "results"
HOST = "127.0.0.1"
SETUPS = (("files", 1), ("redis", 1), ("redis", 2))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scaleout_ingest", description=__doc__.split("\n")[0]
    )
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load per set-up and round (20)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the table shows the median (3)")
    p.add_argument("--batch", type=int, default=500, help="events per NDJSON request (500)")
    p.add_argument("--concurrency", type=int, default=6, help="connections sending batches (6)")
    p.add_argument("--quick", action="store_true", help="1 round of 8 s")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 8.0, 1
    return args


async def one(args: argparse.Namespace, log: str, workers: int, bodies: list[bytes]) -> dict[str, Any]:
    """One set-up, one round: a fresh project (and redis-server), loaded, drained and checked."""
    folder = Path(tempfile.mkdtemp(prefix="kawa-bench-scale-"))
    redis = RedisServer(redis_binary()) if log == "redis" else None
    env = {"KAWA__SERVER__WORKERS": str(workers)}
    if redis is not None:
        redis.start()
        env |= {"KAWA__STORES__EVENT_LOG": redis.url, "KAWA__STORES__ONLINE": redis.url}
    kawa = start_kawa(folder, env=env)
    try:
        auth = {"Authorization": f"Bearer {kawa.write_key}", "Content-Type": "application/x-ndjson"}
        reqs = Requests(bodies, auth)
        reqs.tag_prefix = b"w"
        warm = await drive(HOST, kawa.port, reqs, concurrency=2, seconds=2.0, events_per_request=args.batch)
        reqs.tag_prefix, reqs.serial = b"b", 0
        apis = [pid for part, pid in kawa.pids.items() if part.startswith("api")]
        watched = {"collectors": apis, "lake": [kawa.pids["lake"]]}
        if redis is not None and redis.pid is not None:
            watched["redis"] = [redis.pid]
        before = {part: sum(cpu_seconds(p) for p in pids) for part, pids in watched.items()}
        res = await drive(
            HOST,
            kawa.port,
            reqs,
            concurrency=args.concurrency,
            seconds=args.duration,
            events_per_request=args.batch,
        )
        used = {part: sum(cpu_seconds(p) for p in pids) - before[part] for part, pids in watched.items()}
        warehouse = Warehouse(kawa.state / "lake", "bench", threads=1)

        def landed() -> int:
            return int(warehouse.query("SELECT count(DISTINCT event_id) FROM events").column(0)[0].as_py())

        acknowledged = warm.accepted + res.accepted
        drain_s = await wait_until(lambda: landed() >= acknowledged, timeout=120.0, poll_s=0.5)
        rows = int(warehouse.query("SELECT count(*) FROM events").column(0)[0].as_py())
        out: dict[str, Any] = {
            "setup": f"{log} x{workers}",
            "events_per_s": round(res.accepted / res.seconds),
            "p50_ms": round(res.percentile(50), 1),
            "p99_ms": round(res.percentile(99), 1),
            "errors": sum(n for status, n in res.statuses.items() if status >= 300) + res.failures,
            "acknowledged": acknowledged,
            "in_lake": rows,
            "distinct_in_lake": landed(),
            "drain_s": None if drain_s is None else round(drain_s, 1),
        }
        for part, seconds in used.items():
            out[f"{part}_us_per_event"] = round(seconds / max(res.accepted, 1) * 1e6, 1)
        if redis is not None:
            # The stream is not trimmed: Redis's whole memory over the events it holds.
            import redis as redis_py

            client = redis_py.Redis.from_url(redis.url)
            out["redis_bytes_per_event"] = round(_used_memory(client) / max(acknowledged, 1))
            client.close()
        return out
    finally:
        kawa.stop()
        if redis is not None:
            redis.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _used_memory(client: Any) -> int:
    info: dict[str, Any] = client.info("memory")
    return int(info["used_memory"])


def prediction_bytes(count: int = 200_000) -> dict[str, Any]:
    """Redis memory per stored prediction (a user's score record), for the 100 M user arithmetic."""
    from kawa.serving.store import Prediction, PredictionStore, now_rfc3339
    from kawa.stores.online import open_online_store

    redis = RedisServer(redis_binary())
    redis.start()
    try:
        import redis as redis_py

        client = redis_py.Redis.from_url(redis.url)
        before = _used_memory(client)
        store = PredictionStore(open_online_store(redis.url, Path(tempfile.gettempdir())))
        stamp = now_rfc3339()
        items = (
            (f"u{i:09d}", Prediction(score=0.4321, model_version=3, computed_at=stamp)) for i in range(count)
        )
        started = time.perf_counter()
        store.put_many("bench", "loyalty", items)
        seconds = time.perf_counter() - started
        after = _used_memory(client)
        return {
            "predictions": count,
            "bytes_per_prediction": round((after - before) / count),
            "writes_per_s": round(count / seconds),
        }
    finally:
        redis.stop()


def table(rows: list[dict[str, Any]]) -> str:
    keys = [
        "setup",
        "events_per_s",
        "p50_ms",
        "p99_ms",
        "collectors_us_per_event",
        "redis_us_per_event",
        "lake_us_per_event",
        "errors",
        "drain_s",
    ]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"setup": runs[0]["setup"]}
    for key, value in runs[0].items():
        if isinstance(value, int | float) and key != "setup":
            values = [r[key] for r in runs if r.get(key) is not None]
            out[key] = round(statistics.median(values), 1) if values else None
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    bodies = make_bodies(64, args.batch)
    runs: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        for log, workers in SETUPS:
            result = await one(args, log, workers, bodies)
            print(f"round {r + 1}: {json.dumps(result)}", file=sys.stderr)
            lost = result["acknowledged"] - result["distinct_in_lake"]
            doubled = result["in_lake"] - result["distinct_in_lake"]
            if lost or doubled:
                raise SystemExit(f"{result['setup']}: {lost} acknowledged events lost, {doubled} doubled")
            runs.setdefault(result["setup"], []).append(result)
    medians = [median_of(rs) for rs in runs.values()]
    return {
        "machine": machine(),
        "args": vars(args) | {"out": str(args.out)},
        "runs": runs,
        "median": medians,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    result["redis_prediction_memory"] = prediction_bytes()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"scaleout-ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(table(result["median"]))
    print(f"\nRedis memory per prediction: {result['redis_prediction_memory']}")
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
