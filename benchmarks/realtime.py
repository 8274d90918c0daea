"""The real-time benchmark: event acknowledged -> prediction readable through the API, under background load.

    python -m benchmarks.realtime               # 3 runs of 30 s, as BENCHMARKS.md reports
    python -m benchmarks.realtime --quick       # 1 run of 10 s
    python -m benchmarks.realtime --worker      # the trigger worker's CPU per event, in one process

Each run makes a fresh project (`kawa init`), writes a `features.py` with a streaming view of the user
(counts over 5 minutes and 1 hour, spend over 24 hours, seconds since the previous event, distinct
categories) and a trigger on `checkout_view` events keyed by the session, registers a LightGBM model
that reads those features and the event's own fields, and starts `kawa serve`. Then, for `--duration`
seconds and at the same time:
- background: NDJSON batches of shop events at `--background` events/s (none of them triggers);
- triggers: single `checkout_view` events at `--rate` per second, each for a user of the background
  traffic (so its streaming features are live) and a session of its own (so each prediction has a key of
  its own), sent open-loop at fixed times;
- probe: for every `--sample`-th triggering event, as soon as its POST is acknowledged, GET
  /v1/predictions/intent/{session} every `--poll-ms` until the answer names that event; the latency is
  from the acknowledgement to the first answer that names it (so it includes one poll interval of
  granularity at most, and the probe's own requests compete with the load: it is a ceiling). Every
  probed event costs a dozen GETs or more, so the default samples one event in 20, not every one.
The server's own measure comes next to it: the trigger worker's `kawa_trigger_latency_seconds`
histogram (GET /metrics) times every triggering event from the API receiving it (before its durable
write, so before the acknowledgement) to its prediction being readable (the store's write returned),
with none of the load generator's own delays in it; percentiles are read as the histogram's bucket
bounds (p99 <= 50 ms means at most 1% of the events took longer than 50 ms).
Afterwards it waits until the trigger worker has scored every triggering event and checks the counts:
scored == sent, errors == 0. Each part's CPU is a share of one core over the time from the first send
until the last request was acknowledged (`cpu_cores`); the trigger worker's events per CPU-second count
its CPU until the last triggering event is scored. The table shows every run and the median; the JSON
goes to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from benchmarks._client import Connection, ServerClosed, request_head
from benchmarks._events import make_bodies
from benchmarks._load import Requests, drive
from benchmarks._peers_kawa import machine, save
from benchmarks._server import Kawa, cpu_seconds, start_kawa

RESULTS = Path(__file__).parent / "results"
HOST = "127.0.0.1"
MODEL = "intent"
PROJECT = "bench"

FEATURES_PY = '''"""The benchmark project: a streaming view of the user and a trigger on checkout views."""

from kawa.streaming import StreamView, stream
from kawa.triggers import Trigger

activity = StreamView(
    "activity",
    key="keys.user_id",
    features={
        "views_5m": stream.count(where={"event_name": "view"}, window="5m"),
        "events_1h": stream.count(window="1h"),
        "cart_value_24h": stream.sum("price", where={"event_name": "cart_add"}, window="24h"),
        "seconds_since_previous": stream.seconds_since_previous(),
        "categories_1h": stream.count_distinct("category", window="1h"),
    },
)

checkout = Trigger(
    "checkout",
    on={"event_name": "checkout_view"},
    key="keys.session_id",
    model="intent",
    features=[activity],
)
'''

_answer = msgspec.json.Decoder(dict[str, Any])
_encode = msgspec.json.Encoder().encode


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.realtime", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load per run (30)")
    p.add_argument("--rate", type=float, default=1000.0, help="triggering events/s (1000)")
    p.add_argument("--background", type=float, default=20000.0, help="background events/s (20000)")
    p.add_argument("--batch", type=int, default=500, help="background events per request (500)")
    p.add_argument("--sample", type=int, default=20, help="probe every n-th triggering event (20)")
    p.add_argument("--poll-ms", type=float, default=1.0, help="probe poll interval in ms (1)")
    p.add_argument("--runs", type=int, default=3, help="runs; the table shows each and the median (3)")
    p.add_argument("--quick", action="store_true", help="1 run of 10 s")
    p.add_argument(
        "--worker",
        type=float,
        metavar="SECONDS",
        nargs="?",
        const=5.0,
        default=None,
        help="instead: the trigger worker alone over SECONDS (5) of simulated load, --runs times",
    )
    p.add_argument("--keep", action="store_true", help="keep each run's project folder and print it")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.runs = 10.0, 1
    return args


def training_rows(n: int = 20_000, seed: int = 11) -> pa.Table:
    """Synthetic rows with the columns the trigger's input rows carry, and a label that depends on them."""
    rng = np.random.default_rng(seed)
    views = rng.poisson(4, n)
    events = views + rng.poisson(3, n)
    cart = np.round(rng.gamma(1.5, 40, n) * (rng.random(n) < 0.4), 2)
    since = rng.exponential(60, n)
    cats = rng.integers(0, 6, n)
    price = np.round(rng.uniform(5, 300, n), 2)
    category = rng.choice(["shoes", "bags", "shirts", "hats", "toys", "books"], n)
    logit = 0.25 * views + 0.01 * cart - 0.01 * since - 0.2 * cats + 0.002 * price - 1.0
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pa.table(
        {
            "views_5m": views,
            "events_1h": events,
            "cart_value_24h": cart,
            "seconds_since_previous": since,
            "categories_1h": cats,
            "price": price,
            "category": category,
            "bought": label,
        }
    )


def prepare(folder: Path) -> None:
    """Write the project code and register + promote the model, before `kawa serve` starts."""
    from lightgbm import LGBMClassifier

    from kawa.config import load_config
    from kawa.models import Bundle, Registry
    from kawa.runtime import Runtime

    (folder / "features.py").write_text(FEATURES_PY)
    runtime = Runtime(load_config(folder / "kawa.yaml"))
    try:
        bundle = Bundle.fit(
            training_rows(), label="bought", estimator=LGBMClassifier(n_estimators=100, verbose=-1)
        )
        registry = Registry.from_runtime(runtime)
        version = registry.register(PROJECT, MODEL, bundle)
        registry.promote(PROJECT, MODEL, version)
    finally:
        runtime.close()


class Probe:
    """Ack and ack -> readable latencies of the triggering events, from the client's side."""

    def __init__(self) -> None:
        self.ack_ms: array[float] = array("d")
        self.readable_ms: array[float] = array("d")
        self.sent = 0
        self.failed = 0  # non-2xx answers to the triggering POSTs
        self.unseen = 0  # probed events whose prediction never showed up within the timeout
        self.late_sends = 0


def _pct(values: array[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def triggers(kawa: Kawa, args: argparse.Namespace, run: int, probe: Probe) -> None:
    """Send triggering events open-loop at `args.rate`, probing every `args.sample`-th one."""
    clock = time.perf_counter
    post_head = {"Authorization": f"Bearer {kawa.write_key}", "Content-Type": "application/json"}
    get_head = f"Authorization: Bearer {kawa.read_key}\r\nHost: 127.0.0.1\r\n\r\n"
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(16):
        pool.put_nowait(await Connection.open(HOST, kawa.port))
    probes: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(16):
        probes.put_nowait(await Connection.open(HOST, kawa.port))
    rng = random.Random(run)
    poll_s = args.poll_ms / 1000
    pending: set[asyncio.Task[None]] = set()

    async def watch(session: str, event_id: bytes, acked: float) -> None:
        conn = await probes.get()
        request = f"GET /v1/predictions/{MODEL}/{session} HTTP/1.1\r\n{get_head}".encode()
        try:
            deadline = acked + 10.0
            while clock() < deadline:
                status, body = await conn.request(request)
                if status == 200 and event_id in body:
                    probe.readable_ms.append((clock() - acked) * 1000)
                    return
                await asyncio.sleep(poll_s)
            probe.unseen += 1
        finally:
            probes.put_nowait(conn)

    async def one(i: int, woke: float) -> None:
        user = int(rng.paretovariate(1.2) * 1000) % 500_000  # the background's users (benchmarks/_events)
        session = f"rt{run}-{i}"
        event_id = f"trig-{run}-{i}"
        body = _encode(
            {
                "event_name": "checkout_view",
                "event_id": event_id,
                "keys": {"user_id": f"user_{user}", "session_id": session},
                "page": "https://shop.example.com/checkout",
                "category": rng.choice(("shoes", "bags", "shirts", "hats", "toys", "books")),
                "price": round(rng.uniform(5, 300), 2),
            }
        )
        conn = await pool.get()
        try:
            status, _ = await conn.request([request_head("POST", "/v1/events", len(body), post_head), body])
        except ServerClosed:
            probe.failed += 1
            pool.put_nowait(await Connection.open(HOST, kawa.port))
            return
        acked = clock()
        pool.put_nowait(conn)
        probe.ack_ms.append((acked - woke) * 1000)
        if not 200 <= status < 300:
            probe.failed += 1
            return
        if i % args.sample == 0:
            await watch(session, f'"event_id":"{event_id}"'.encode(), acked)

    started = clock()
    total = int(args.rate * args.duration)
    for i in range(total):
        due = started + i / args.rate
        wait = due - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        woke = clock()
        if woke - due > 1e-3:
            probe.late_sends += 1
        task = asyncio.create_task(one(i, woke))
        pending.add(task)
        task.add_done_callback(pending.discard)
        probe.sent += 1
    if pending:
        await asyncio.gather(*pending)
    for q in (pool, probes):
        while not q.empty():
            q.get_nowait().close()


def trigger_counts(kawa: Kawa) -> dict[str, Any]:
    """The server's own counts for the benchmark trigger (GET /v1/triggers)."""
    import httpx

    answer = httpx.get(
        f"http://{HOST}:{kawa.port}/v1/triggers",
        headers={"Authorization": f"Bearer {kawa.read_key}"},
        timeout=10,
    ).json()
    for trigger in answer.get("triggers", []):
        if trigger.get("name") == "checkout":
            return dict(trigger)
    raise RuntimeError(f"the server does not list the benchmark trigger: {answer}")


def server_latency(kawa: Kawa) -> dict[str, Any]:
    """The trigger worker's received -> readable histogram of the benchmark trigger, from GET /metrics.

    Percentiles are the upper bounds of the buckets they fall in (so "p99 10" means at most 1% of
    the events took longer than 10 ms); `server_over_50ms_pct` is the share above 50 ms exactly.
    """
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://{HOST}:{kawa.port}/metrics", timeout=10).text
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        if family.name != "kawa_trigger_latency_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("trigger") == "checkout":
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    if not total:
        return {"server_events": 0}

    def bound(q: float) -> float:
        return next(le for le, n in buckets if n >= q * total) * 1000

    within_50ms = next(n for le, n in buckets if le >= 0.05)
    return {
        "server_events": int(total),
        "server_p50_ms_le": bound(0.5),
        "server_p99_ms_le": bound(0.99),
        "server_over_50ms_pct": round((total - within_50ms) / total * 100, 3),
    }


def wait_scored(kawa: Kawa, sent: int, timeout: float = 120.0) -> tuple[dict[str, Any], float]:
    """Wait until the trigger worker has handled every triggering event; returns its counts and the wait."""
    started = time.monotonic()
    while True:
        counts = trigger_counts(kawa)
        done = int(counts.get("scored", 0)) + int(counts.get("errors", 0))
        if done >= sent or time.monotonic() - started > timeout:
            return counts, time.monotonic() - started
        time.sleep(0.2)


async def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="kawa-bench-realtime-"))
    kawa = start_kawa(folder, PROJECT, prepare=prepare)
    try:
        headers = {"Authorization": f"Bearer {kawa.write_key}", "Content-Type": "application/x-ndjson"}
        background = Requests(make_bodies(64, args.batch, seed=run), headers)
        background.tag_prefix = f"r{run}".encode()
        cpu_before = {part: cpu_seconds(pid) for part, pid in kawa.pids.items()}
        own_before = time.process_time()
        started = time.monotonic()
        probe = Probe()
        load, _ = await asyncio.gather(
            drive(
                HOST,
                kawa.port,
                background,
                concurrency=4,
                seconds=args.duration,
                events_per_request=args.batch,
                rate=args.background,
            ),
            triggers(kawa, args, run, probe),
        )
        seconds = load.seconds
        # Over the whole time the load took to be acknowledged (acknowledgements may trail the sends
        # by seconds), not just the sending: each part's CPU as a share of one core.
        elapsed = time.monotonic() - started
        cpu = {
            part: round((cpu_seconds(pid) - cpu_before[part]) / elapsed, 2) for part, pid in kawa.pids.items()
        }
        cpu["load_generator"] = round((time.process_time() - own_before) / elapsed, 2)
        counts, drain_s = wait_scored(kawa, probe.sent - probe.failed)
        # Every event before the last triggering one is handled once that one is scored.
        handled = load.accepted + probe.sent - probe.failed
        worker_cpu = cpu_seconds(kawa.pids["triggers"]) - cpu_before["triggers"]
        server = server_latency(kawa)
        return {
            "run": run,
            "seconds": round(seconds, 1),
            "background_events_per_s": round(load.accepted / seconds),
            "triggering_sent": probe.sent,
            "triggering_failed": probe.failed,
            "late_sends": probe.late_sends,
            "ack_p50_ms": round(_pct(probe.ack_ms, 50), 2),
            "ack_p99_ms": round(_pct(probe.ack_ms, 99), 2),
            "probed": len(probe.readable_ms),
            "unseen": probe.unseen,
            "readable_p50_ms": round(_pct(probe.readable_ms, 50), 2),
            "readable_p90_ms": round(_pct(probe.readable_ms, 90), 2),
            "readable_p99_ms": round(_pct(probe.readable_ms, 99), 2),
            "readable_max_ms": round(max(probe.readable_ms, default=float("nan")), 2),
            **server,
            "scored": int(counts.get("scored", 0)),
            "errors": int(counts.get("errors", 0)),
            "drain_s": round(drain_s, 1),
            "load_wall_s": round(elapsed, 1),
            "cpu_cores": cpu,
            "trigger_worker_cpu_s": round(worker_cpu, 2),
            "trigger_worker_events_per_cpu_s": round(handled / worker_cpu) if worker_cpu else None,
        }
    finally:
        kawa.stop()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


COLUMNS = (
    "background_events_per_s",
    "triggering_sent",
    "ack_p50_ms",
    "ack_p99_ms",
    "probed",
    "readable_p50_ms",
    "readable_p90_ms",
    "readable_p99_ms",
    "readable_max_ms",
    "server_p50_ms_le",
    "server_p99_ms_le",
    "server_over_50ms_pct",
    "scored",
    "errors",
    "unseen",
    "trigger_worker_events_per_cpu_s",
)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker is not None:
        from benchmarks import _realtime_worker

        runs = _realtime_worker.main(args.worker, args.runs)
        save(
            "realtime_worker",
            {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "runs": runs},
            args.out,
        )
        return
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    runs = []
    for run in range(args.runs):
        result = asyncio.run(one_run(args, run))
        runs.append(result)
        print(json.dumps(result), flush=True)
    median = {c: statistics.median(r[c] for r in runs) for c in COLUMNS}
    width = max(len(c) for c in COLUMNS)
    print(f"\n{'':{width}}  " + "  ".join(f"run {r['run']:<6}" for r in runs) + "  median")
    for c in COLUMNS:
        print(f"{c:{width}}  " + "  ".join(f"{r[c]:<10}" for r in runs) + f"  {median[c]}")
    report = {
        "benchmark": "realtime",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": runs,
        "median": median,
    }
    path = save("realtime", report, args.out)
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
