"""The ingest benchmark: sustained NDJSON batches and single events against a real `kawa serve`.

    python -m benchmarks.ingest                 # 3 runs of 60 s (about 5 minutes), as BENCHMARKS.md reports
    python -m benchmarks.ingest --quick         # 1 run of 10 s, for a quick look

Each run starts `kawa init` + `kawa serve` in a fresh temporary folder on a free 127.0.0.1 port, and:
1. measures two baselines: appends of one request's bytes + fdatasync per second on the same disk, and the
   same batch load against a trivial uvicorn app that only reads the body (what HTTP alone costs here);
2. sends NDJSON batches from `--concurrency` keep-alive connections for `--duration` seconds, while a
   marker event sent every second is polled through the warehouse's SQL (freshness), and the api and lake
   processes' resident memory is sampled;
3. waits until every acknowledged event is queryable (drain), and checks none was lost or doubled;
4. sends single-event requests (one JSON object per POST) for `--single-duration` seconds.
The table shows every run and the median; the JSON goes to benchmarks/results/.
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

from benchmarks._events import make_bodies
from benchmarks._load import LoadResult, Requests, drive, probe_freshness, wait_until
from benchmarks._peers_kawa import machine
from benchmarks._probe import SqlProbe
from benchmarks._server import Sampler, cpu_seconds, fsync_rate, start_kawa, start_sink

RESULTS = Path(__file__).parent / "results"
HOST = "127.0.0.1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=60.0, help="seconds of batch load per run (60)")
    p.add_argument("--batch", type=int, default=500, help="events per NDJSON request (500)")
    p.add_argument("--concurrency", type=int, default=6, help="connections sending batches (6)")
    p.add_argument("--rate", type=float, default=0.0, help="pace batches at this many events/s (0: max)")
    p.add_argument("--single-duration", type=float, default=10.0, help="seconds of single events (10)")
    p.add_argument("--single-concurrency", type=int, default=32, help="connections sending single events")
    p.add_argument("--baseline-duration", type=float, default=5.0, help="seconds against the sink (5)")
    p.add_argument("--runs", type=int, default=3, help="runs; the table shows each and the median (3)")
    p.add_argument("--templates", type=int, default=64, help="distinct batch bodies made up front (64)")
    p.add_argument("--quick", action="store_true", help="1 run of 10 s, 3 s single events, 2 s baseline")
    p.add_argument("--keep", action="store_true", help="keep each run's project folder and print it")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.single_duration, args.baseline_duration, args.runs = 10.0, 3.0, 2.0, 1
    return args


def _latency(res: LoadResult) -> dict[str, float]:
    return {f"p{q}_ms": round(res.percentile(q), 2) for q in (50, 90, 99)} | {
        "max_ms": round(max(res.latencies_ms, default=float("nan")), 2)
    }


def _phase(res: LoadResult) -> dict[str, Any]:
    return {
        "events_per_s": round(res.accepted / res.seconds) if res.seconds else 0,
        "requests_per_s": round(res.requests / res.seconds, 1) if res.seconds else 0,
        "accepted": res.accepted,
        "rejected": res.rejected,
        "statuses": {str(k): v for k, v in sorted(res.statuses.items())},
        "dropped_connections": res.failures,
        **_latency(res),
    }


async def _baseline(args: argparse.Namespace, bodies: list[bytes], folder: Path) -> dict[str, Any]:
    fsyncs = fsync_rate(folder, size=len(bodies[0]))
    sink, port = start_sink()
    try:
        reqs = Requests(bodies, {"Content-Type": "application/x-ndjson"})
        cpu_before = cpu_seconds(sink.pid)
        res = await drive(
            HOST,
            port,
            reqs,
            concurrency=args.concurrency,
            seconds=args.baseline_duration,
            events_per_request=args.batch,
        )
        sink_cpu = cpu_seconds(sink.pid) - cpu_before
    finally:
        sink.terminate()
        sink.wait()
    per_event = round(sink_cpu / max(res.accepted, 1) * 1e6, 2)
    return {"fsync_per_s": round(fsyncs), "sink": _phase(res) | {"server_cpu_us_per_event": per_event}}


async def one_run(args: argparse.Namespace, run: int, bodies: list[bytes], singles: list[bytes]) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="kawa-bench-"))
    out: dict[str, Any] = {"run": run}
    try:
        out["baseline"] = await _baseline(args, bodies, folder)
        kawa = start_kawa(folder)
        try:
            out |= await _against_kawa(args, run, kawa, bodies, singles)
        finally:
            kawa.stop()
    finally:
        if args.keep:
            print(f"run {run}: kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return out


async def _against_kawa(
    args: argparse.Namespace, run: int, kawa: Any, bodies: list[bytes], singles: list[bytes]
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {kawa.write_key}"}
    # The SQL polls run in a process of their own (benchmarks._probe), so they never delay the sends.
    with SqlProbe(kawa.state / "lake", "bench") as sql_probe:
        return await _measure(args, run, kawa, bodies, singles, auth, sql_probe)


async def _measure(
    args: argparse.Namespace,
    run: int,
    kawa: Any,
    bodies: list[bytes],
    singles: list[bytes],
    auth: dict[str, str],
    sql_probe: SqlProbe,
) -> dict[str, Any]:
    ids = sql_probe.query

    def count() -> int:
        return int(sql_probe.query("SELECT count(*) FROM events")[0])

    batch_reqs = Requests(bodies, auth | {"Content-Type": "application/x-ndjson"})
    batch_reqs.tag_prefix = b"w"
    # Warm-up: the first requests load the key cache and the lake writer's first files.
    warm = await drive(HOST, kawa.port, batch_reqs, concurrency=2, seconds=2.0, events_per_request=args.batch)
    batch_reqs.tag_prefix, batch_reqs.serial = b"b", 0
    pids = [kawa.pids["api"], kawa.pids["lake"]]
    cpu_before = {part: cpu_seconds(pid) for part, pid in kawa.pids.items()}
    own_before = time.process_time()
    probe_before = sql_probe.cpu_s()
    stop = asyncio.Event()
    probe = asyncio.create_task(
        probe_freshness(HOST, kawa.port, auth | {"Content-Type": "application/json"}, ids, stop, run=run)
    )
    with Sampler(pids) as memory:
        res = await drive(
            HOST,
            kawa.port,
            batch_reqs,
            concurrency=args.concurrency,
            seconds=args.duration,
            events_per_request=args.batch,
            rate=args.rate,
        )
        used = {part: cpu_seconds(pid) - cpu_before[part] for part, pid in kawa.pids.items()}
        used["probe"] = sql_probe.cpu_s() - probe_before
        used["client"] = time.process_time() - own_before
        # CPU time per event is the figure that a busy shared machine disturbs least.
        cpu: dict[str, float] = {}
        for part, seconds in used.items():
            cpu[f"{part}_cpu_pct"] = round(seconds / res.seconds * 100)
            cpu[f"{part}_cpu_us_per_event"] = round(seconds / max(res.accepted, 1) * 1e6, 2)
        total = sum(used.values()) / max(res.accepted, 1)
        cpu["total_cpu_us_per_event"] = round(total * 1e6, 2)
        stop.set()
        fresh = await probe
        expected = warm.accepted + res.accepted + len(fresh.lags_s) + fresh.missing
        drain_s = await wait_until(lambda: count() >= expected, timeout=60.0)
    landed = count()
    # Merges run at low priority beside the flushes and may finish after the load: count their CPU too.
    settle_s = await _settle(kawa.pids["lake"])
    lake_all = cpu_seconds(kawa.pids["lake"]) - cpu_before["lake"]
    settled = (sum(used.values()) - used["lake"] + lake_all) / max(res.accepted, 1)
    cpu["lake_settled_cpu_us_per_event"] = round(lake_all / max(res.accepted, 1) * 1e6, 2)
    cpu["settled_cpu_us_per_event"] = round(settled * 1e6, 2)
    cpu["projected_events_per_s"] = round(2 / settled) if settled else 0
    single_reqs = Requests(singles, auth | {"Content-Type": "application/json"})
    single_reqs.tag_prefix = b"s"
    single = await drive(
        HOST,
        kawa.port,
        single_reqs,
        concurrency=args.single_concurrency,
        seconds=args.single_duration,
        events_per_request=1,
    )
    lags = sorted(fresh.lags_s)
    return {
        "batch": _phase(res)
        | cpu
        | {
            "rss_peak_mib": round(memory.peak / 2**20),
            "rss_end_mib": round(memory.last / 2**20),
            "freshness_p50_s": round(statistics.median(lags), 2) if lags else None,
            "freshness_max_s": round(lags[-1], 2) if lags else None,
            "freshness_markers": fresh.sent,
            "freshness_missing": fresh.missing,
            "drain_s": None if drain_s is None else round(drain_s, 2),
            "lake_settle_s": round(settle_s, 1),
            "acknowledged": expected,
            "queryable": landed,
        },
        "single": _phase(single),
    }


async def _settle(pid: int, timeout: float = 90.0) -> float:
    """Seconds until `pid` uses under 5% of a core over a second (its deferred work done)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(pid) - before < 0.05:
            break
    return time.monotonic() - started


def _median(values: list[Any]) -> Any:
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not nums or len(nums) != len(values):
        return values[0] if len(set(map(str, values))) == 1 else None
    m = statistics.median(nums)
    return round(m, 2) if isinstance(m, float) else m


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every numeric field over the runs, in the runs' shape."""

    def merge(parts: list[Any]) -> Any:
        if all(isinstance(p, dict) for p in parts):
            keys = list(dict.fromkeys(k for p in parts for k in p))
            return {k: merge([p.get(k) for p in parts]) for k in keys}
        return _median(parts)

    return merge([{k: v for k, v in r.items() if k != "run"} for r in runs])


ROWS = [
    ("baseline: fdatasync of one request's bytes /s", ("baseline", "fsync_per_s")),
    ("baseline: sink events/s (HTTP only)", ("baseline", "sink", "events_per_s")),
    ("baseline: sink server CPU us/event", ("baseline", "sink", "server_cpu_us_per_event")),
    ("batch: events/s", ("batch", "events_per_s")),
    ("batch: requests/s", ("batch", "requests_per_s")),
    ("batch: ack latency p50 ms", ("batch", "p50_ms")),
    ("batch: ack latency p99 ms", ("batch", "p99_ms")),
    ("batch: ack latency max ms", ("batch", "max_ms")),
    ("batch: non-2xx answers", ("batch", "non_2xx")),
    ("server RSS peak MiB (api+lake)", ("batch", "rss_peak_mib")),
    ("CPU % api", ("batch", "api_cpu_pct")),
    ("CPU % lake", ("batch", "lake_cpu_pct")),
    ("CPU % load generator", ("batch", "client_cpu_pct")),
    ("CPU % freshness probe (SQL)", ("batch", "probe_cpu_pct")),
    ("CPU us/event api", ("batch", "api_cpu_us_per_event")),
    ("CPU us/event lake", ("batch", "lake_cpu_us_per_event")),
    ("CPU us/event load generator", ("batch", "client_cpu_us_per_event")),
    ("CPU us/event freshness probe (SQL)", ("batch", "probe_cpu_us_per_event")),
    ("CPU us/event all", ("batch", "total_cpu_us_per_event")),
    ("CPU us/event lake, with merges after the load", ("batch", "lake_settled_cpu_us_per_event")),
    ("CPU us/event all, with merges after the load", ("batch", "settled_cpu_us_per_event")),
    ("projected events/s on 2 idle cores", ("batch", "projected_events_per_s")),
    ("freshness p50 s", ("batch", "freshness_p50_s")),
    ("freshness max s", ("batch", "freshness_max_s")),
    ("markers never seen", ("batch", "freshness_missing")),
    ("drain after load s", ("batch", "drain_s")),
    ("acknowledged = queryable", ("batch", "exact")),
    ("single: requests/s", ("single", "requests_per_s")),
    ("single: latency p50 ms", ("single", "p50_ms")),
    ("single: latency p99 ms", ("single", "p99_ms")),
]


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None  # type: ignore[assignment]
    return data


def _derive(run: dict[str, Any]) -> None:
    batch = run.get("batch", {})
    batch["non_2xx"] = sum(v for k, v in batch.get("statuses", {}).items() if not k.startswith("2"))
    batch["exact"] = batch.get("acknowledged") == batch.get("queryable")


def table(runs: list[dict[str, Any]], median: dict[str, Any]) -> str:
    cols = [f"run {r['run']}" for r in runs] + ["median"]
    width = max(len(r[0]) for r in ROWS)
    lines = [f"{'':<{width}}  " + "  ".join(f"{c:>10}" for c in cols)]
    for label, path in ROWS:
        cells = [_get(r, path) for r in runs] + [_get(median, path)]
        lines.append(f"{label:<{width}}  " + "  ".join(f"{_fmt(c):>10}" for c in cells))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    made = time.perf_counter()
    bodies = make_bodies(args.templates, args.batch)
    singles = [line for body in bodies[:4] for line in body.split(b"\n")]
    size = sum(map(len, bodies)) / len(bodies) / args.batch
    print(
        f"made {len(bodies)} bodies of {args.batch} events ({size:.0f} bytes/event)"
        f" in {time.perf_counter() - made:.1f} s",
        file=sys.stderr,
    )
    runs = []
    for run in range(1, args.runs + 1):
        print(f"run {run}/{args.runs} ...", file=sys.stderr)
        result = await one_run(args, run, bodies, singles)
        _derive(result)
        runs.append(result)
    median = summarise(runs)
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return {
        "benchmark": "ingest",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1),
        "command": "python -m benchmarks.ingest " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "params": params,
        "event_bytes": round(sum(map(len, bodies)) / len(bodies) / args.batch),
        "runs": runs,
        "median": median,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # the client works on the standard loop too, only a little slower
        report = asyncio.run(main_async(args))
    else:
        report = uvloop.run(main_async(args))
    print(table(report["runs"], report["median"]))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ingest-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {path} ({report['wall_s']} s)")


if __name__ == "__main__":
    main()
