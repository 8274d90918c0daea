"""The soak test: a real `kawa serve` under mixed load for a long time; memory and open files must stay flat.

    python -m benchmarks.soak                   # 30 minutes, as `make soak` and BENCHMARKS.md
    python -m benchmarks.soak --minutes 3       # a quick look

Set-up, in a fresh project folder: a streaming view of the user and a trigger on `checkout_view`
events scoring a LightGBM bundle (the real-time benchmark's project, with windows cut to 10 minutes so
they are full before the judged half), the loyalty pipeline template, and
a small demo shop (300 users, 42 days up to today) sent through the collector so the pipeline has a
history to learn from. Then `kawa serve` on 127.0.0.1 gets, for `--minutes`, at the same time:
- ingest: NDJSON batches of shop events at `--rate` events/s, single JSON events at `--singles`/s, and
  every `--bad-every` seconds a batch with one bad event (it goes to quarantine, the rest is kept), now
  and then a body that is not JSON (400);
- triggering `checkout_view` events at `--triggers`/s, each scored by the trigger worker;
- a manual run of the loyalty pipeline through the API every `--pipeline-every` seconds;
- reads at `--reads`/s, in turn: a trigger prediction, a loyalty prediction, SQL, the runs list,
  /metrics, the UI page, the triggers list, an entity.
Every `--sample-every` seconds it reads, for every process of the server's tree (/proc), its resident
memory, open file descriptors and threads, and the state folder's size, the lake's lag behind the
acknowledged events and the trigger worker's lag. At the end it waits for the lake and checks that
every acknowledged event landed exactly once, fits a slope to each process's second half (the first
half is warm-up), prints the table and writes the JSON to benchmarks/results/. It exits 1 if a
long-lived process's open files or threads grow, its memory (the anonymous part of RSS: heap and
stacks, not mapped store files) grows by more than `--rss-limit` MiB per 10 minutes, a part was
restarted, a process outlived every pipeline run, an acknowledged event was lost or doubled, or a
triggering event went unscored. Growth is judged from 10 minutes on; a shorter run only shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from benchmarks import realtime
from benchmarks._events import make_bodies
from benchmarks._peers_kawa import machine, save
from benchmarks._server import Kawa, start_kawa
from benchmarks._soak_load import Load, Tally
from benchmarks._soak_procs import Proc, collect, dir_bytes, fd_targets, sample_tree, verdict

RESULTS = Path(__file__).parent / "results"
PROJECT = "soak"
JUDGED_FROM_S = 600  # shorter runs report growth without failing on it
LIVE = "(event_id LIKE 'ev-s%' OR event_id LIKE 'soak-%')"  # the events the load sends


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=30.0, help="minutes of load (30)")
    p.add_argument("--rate", type=float, default=200.0, help="events/s sent in NDJSON batches (200)")
    p.add_argument("--batch", type=int, default=100, help="events per batch (100)")
    p.add_argument("--singles", type=float, default=10.0, help="single JSON events/s (10)")
    p.add_argument("--triggers", type=float, default=2.0, help="triggering checkout_view events/s (2)")
    p.add_argument(
        "--bad-every", type=float, default=5.0, help="seconds between batches with a bad event (5)"
    )
    p.add_argument("--pipeline-every", type=float, default=90.0, help="seconds between loyalty runs (90)")
    p.add_argument("--reads", type=float, default=4.0, help="reads/s, rotating over 8 kinds (4)")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples (10)")
    p.add_argument("--rss-limit", type=float, default=8.0, help="MiB per 10 min a process may grow (8)")
    p.add_argument(
        "--fd-limit", type=float, default=2.0, help="fds/threads per 10 min a process may grow (2)"
    )
    p.add_argument(
        "--lake-window", type=int, default=100_000, help="the lake writer's dedupe window in events (100000)"
    )
    p.add_argument("--users", type=int, default=300, help="users of the demo shop sent first (300)")
    p.add_argument("--keep", action="store_true", help="keep the project folder and print it")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result")
    return p.parse_args(argv)


PIPELINES_PY = '''"""The soak project's pipeline: the loyal-customer score template."""

from kawa.templates.loyalty import loyalty  # noqa: F401
'''


def _short_windows(text: str) -> str:
    """The real-time benchmark's feature names and windows, with 1 h and 24 h windows cut to 10 minutes."""
    for long in ("1h", "24h"):
        text = text.replace(f"_{long}", "_10m").replace(f'window="{long}"', 'window="10m"')
    return text


def prepare(folder: Path) -> None:
    """The real-time benchmark's trigger and model, with windows of 10 minutes at most, plus the loyalty
    pipeline and its features.

    An exact window keeps each event's time until it leaves the window, so a view's memory grows for as
    long as its longest window: 1 h or 24 h windows would grow through all 30 minutes, as they should,
    and hide a leak. With 10 minutes every window is full before the half of the run that is judged.
    """
    from lightgbm import LGBMClassifier

    from kawa.config import load_config
    from kawa.models import Bundle, Registry
    from kawa.runtime import Runtime

    features = _short_windows(realtime.FEATURES_PY)
    features += "\nfrom kawa.features.presets import RFM  # noqa: E402, F401\n"
    features += "from kawa.templates.loyalty import BOUGHT  # noqa: E402, F401\n"
    (folder / "features.py").write_text(features)
    (folder / "pipelines.py").write_text(PIPELINES_PY)
    rows = realtime.training_rows()
    rows = rows.rename_columns([_short_windows(name) for name in rows.column_names])
    runtime = Runtime(load_config(folder / "kawa.yaml"))
    try:
        estimator = LGBMClassifier(n_estimators=100, verbose=-1)
        bundle = Bundle.fit(rows, label="bought", estimator=estimator)
        registry = Registry.from_runtime(runtime)
        registry.promote(PROJECT, realtime.MODEL, registry.register(PROJECT, realtime.MODEL, bundle))
    finally:
        runtime.close()


def send_history(kawa: Kawa, users: int) -> int:
    """A small demo shop whose last day is today, so the loyalty pipeline has weeks to learn from."""
    from kawa.demo.run import send_shop, wait_until_landed
    from kawa.demo.shop import ShopConfig, generate
    from kawa.warehouse import Warehouse

    days = 42
    shop = generate(
        ShopConfig(
            users=users, days=days, items=200, visitors=users // 2, start=date.today() - timedelta(days=days)
        )
    )
    accepted, _, _ = send_shop(shop, f"http://127.0.0.1:{kawa.port}", kawa.write_key)
    wait_until_landed(Warehouse(kawa.state / "lake", PROJECT), accepted)
    return accepted


class Samples:
    """The samples taken during the run: the process tree, the state folder, the lags."""

    def __init__(self, kawa: Kawa, load: Load, every_s: float) -> None:
        self.kawa, self.load, self.every_s = kawa, load, every_s
        self.procs: list[tuple[float, list[Proc]]] = []
        self.rows: list[dict[str, Any]] = []
        self.started = time.monotonic()
        # What each part's descriptors point at, and every change of that in the run (the last 40 per
        # part), so a part whose open files step up can be read afterwards, not guessed at.
        self.fds: dict[str, list[str]] = {}
        self.fd_changes: dict[str, list[dict[str, Any]]] = {}

    def _note_fds(self, t: float, procs: list[Proc]) -> None:
        for p in procs:
            if ">" in p.label:  # a pipeline run's processes come and go; the parts are what is judged
                continue
            before = self.fds.get(p.label)
            if before is not None and len(before) == p.fds:
                continue
            now = fd_targets(p.pid)
            if before is not None:
                added, removed = sorted(set(now) - set(before)), sorted(set(before) - set(now))
                change = {"t": round(t, 1), "fds": len(now), "added": added, "removed": removed}
                self.fd_changes.setdefault(p.label, []).append(change)
                del self.fd_changes[p.label][:-40]
            self.fds[p.label] = now

    async def _lake_count(self) -> int | None:
        sql = f'{{"sql": "SELECT count(*) AS n FROM events WHERE {LIVE}"}}'.encode()
        got = await self.load.client.call("sample:sql", "POST", "/v1/sql", self.load.admin, sql)
        if got is None or got[0] != 200:
            return None
        doc = realtime._answer.decode(got[1])
        return int(doc["rows"][0][0]) if "rows" in doc else None

    async def _trigger_lag(self) -> int | None:
        got = await self.load.client.call("sample:triggers", "GET", "/v1/triggers", self.load.read)
        if got is None or got[0] != 200:
            return None
        for trig in realtime._answer.decode(got[1]).get("triggers", []):
            if trig.get("name") == "checkout":
                return self.load.tally.trigger_sent - int(trig.get("scored", 0)) - int(trig.get("errors", 0))
        return None

    async def one(self) -> None:
        loop = asyncio.get_running_loop()
        t = time.monotonic() - self.started
        procs = await loop.run_in_executor(None, sample_tree, self.kawa.process.pid)
        state = await loop.run_in_executor(None, dir_bytes, str(self.kawa.state))
        landed = await self._lake_count()
        acked = len(self.load.tally.acked_ids)  # after the count: the lag is an upper bound, never negative
        row = {
            "t": round(t, 1),
            "load_average": round(os.getloadavg()[0], 2),
            "state_mib": round(state / 2**20, 1),
            "acked": acked,
            "lake_lag": None if landed is None else acked - landed,
            "trigger_lag": await self._trigger_lag(),
            "processes": len(procs),
            "rss_mib_total": round(sum(p.rss for p in procs) / 2**20, 1),
            "fds_total": sum(p.fds for p in procs),
        }
        self.procs.append((t, procs))
        await loop.run_in_executor(None, self._note_fds, t, procs)
        self.rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.one()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)
        await self.one()  # the last sample, as the load stops


def check_lake(kawa: Kawa, tally: Tally, timeout: float = 300.0) -> dict[str, Any]:
    """Wait until the lake holds every acknowledged event; then count lost, doubled and unexpected ids."""
    from kawa.warehouse import Warehouse

    warehouse = Warehouse(kawa.state / "lake", PROJECT, threads=1)
    query = f"SELECT event_id, count(*) AS n FROM events WHERE {LIVE} GROUP BY 1"
    started = time.monotonic()
    while True:
        rows = warehouse.query(query).to_pydict()
        counts = dict(zip(rows["event_id"], rows["n"], strict=True))
        if tally.acked_ids <= counts.keys() or time.monotonic() - started > timeout:
            break
        time.sleep(2.0)
    return {
        "acknowledged": len(tally.acked_ids),
        "unsure": len(tally.unsure_ids),
        "landed": len(counts),
        "lost": len(tally.acked_ids - counts.keys()),
        "doubled": sum(1 for n in counts.values() if n > 1),
        "unexpected": len(counts.keys() - tally.acked_ids - tally.unsure_ids),
        "drain_s": round(time.monotonic() - started, 1),
    }


def pipeline_runs(kawa: Kawa, tally: Tally, timeout: float = 600.0) -> dict[str, int]:
    """The statuses of the runs the soak started, once none of them is still running."""
    import httpx

    headers = {"Authorization": f"Bearer {kawa.read_key}"}
    started = time.monotonic()
    mine = set(tally.run_ids)
    while True:
        runs = httpx.get(f"http://127.0.0.1:{kawa.port}/v1/runs?limit=1000", headers=headers, timeout=30)
        statuses = {r["run_id"]: r["status"] for r in runs.json()["runs"] if r["run_id"] in mine}
        busy = [s for s in statuses.values() if s in ("queued", "running")]
        if not busy or time.monotonic() - started > timeout:
            out: dict[str, int] = {}
            for status in statuses.values():
                out[status] = out.get(status, 0) + 1
            return out
        time.sleep(3.0)


def _leftover(kawa: Kawa, first_tree: set[str], within_s: float = 60.0) -> list[str]:
    """Processes beyond the server's own parts still there `within_s` after the load: a finished run's
    processes exit just after it is recorded, and a lake merge started by the last flushes takes seconds."""
    deadline = time.monotonic() + within_s
    while True:
        left = sorted({p.label for p in sample_tree(kawa.process.pid)} - first_tree)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1.0)


def trigger_counts(kawa: Kawa, tally: Tally) -> dict[str, Any]:
    counts, _ = realtime.wait_scored(kawa, tally.trigger_sent, timeout=120.0)
    return {k: counts.get(k) for k in ("matched", "scored", "errors")}


def table(verdicts: list[dict[str, Any]]) -> str:
    """The per-process table, as BENCHMARKS.md shows it."""
    head = "| process | RSS MiB start / end / max | RSS slope MiB/10 min | anon MiB start / end | anon slope "
    head += "| fds start / end / max "
    head += "| fd slope /10 min | threads start / end | grew |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        if not (v["long_lived"] or v["restarted"]):
            continue
        r, a, f, th = v["rss_mib"], v["anon_mib"], v["fds"], v["threads"]
        grew = ", ".join(v["grew"]) or ("restarted" if v["restarted"] else "no")
        lines.append(
            f"| {v['label']} | {r['start']:.0f} / {r['end']:.0f} / {r['max']:.0f} "
            f"| {r['slope_per_10min']:+.1f} | {a['start']:.0f} / {a['end']:.0f} "
            f"| {a['slope_per_10min']:+.1f} "
            f"| {f['start']:.0f} / {f['end']:.0f} / {f['max']:.0f} | {f['slope_per_10min']:+.1f} "
            f"| {th['start']:.0f} / {th['end']:.0f} | {grew} |"
        )
    short = [v for v in verdicts if not (v["long_lived"] or v["restarted"])]
    if short:
        peak = max(v["rss_mib"]["max"] for v in short)
        lines.append(
            f"\nshort-lived processes (pipeline runs and the like): {len(short)} labels, "
            f"peak RSS {peak:.0f} MiB"
        )
    return "\n".join(lines)


async def soak(args: argparse.Namespace, kawa: Kawa) -> dict[str, Any]:
    keys = {"write_key": kawa.write_key, "read_key": kawa.read_key, "admin_key": kawa.admin_key}
    load = Load(kawa.port, keys, make_bodies(32, args.batch, seed=3), args)
    samples = Samples(kawa, load, args.sample_every)
    seconds = args.minutes * 60
    tally = await load.run(seconds, [samples.run])
    load.client.close()
    series = collect(samples.procs)
    duration = samples.procs[-1][0]
    verdicts = [
        verdict(s, duration, rss_limit_mib=args.rss_limit, fd_limit=args.fd_limit) for s in series.values()
    ]
    kept = {v["label"] for v in verdicts if v["long_lived"] or v["restarted"]}
    curves = {  # [t, pid, rss MiB, anon MiB, fds, threads] of each part, for plots and second looks
        s.label: [
            [t, pid, round(r / 2**20, 1), round(a / 2**20, 1), f, th] for t, pid, r, f, th, a in s.points
        ]
        for s in series.values()
        if s.label in kept
    }
    return {
        "tally": tally,
        "verdicts": verdicts,
        "samples": samples.rows,
        "curves": curves,
        "fd_changes": samples.fd_changes,
        "fds_at_end": samples.fds,
        "first_tree": sorted(p.label for p in samples.procs[0][1] if ">" not in p.label),  # the parts
        "seconds": round(duration, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    folder = Path(tempfile.mkdtemp(prefix="kawa-soak-"))
    info = machine()
    # The lake writer remembers the last 2,000,000 event ids (2.6 hours at this rate) to drop retries:
    # a smaller window fills in the warm-up half, so its growth by design is not taken for a leak.
    env = {"KAWA__LAKE__DEDUPE_WINDOW_EVENTS": str(args.lake_window)}
    kawa = start_kawa(folder, PROJECT, prepare=prepare, env=env)
    try:
        history = send_history(kawa, args.users)
        print(
            f"kawa serve at port {kawa.port}, pid {kawa.process.pid}; {history} history events landed",
            flush=True,
        )
        scored_before = int(realtime.trigger_counts(kawa).get("scored", 0))
        result = asyncio.run(soak(args, kawa))
        tally: Tally = result["tally"]
        lake = check_lake(kawa, tally)
        runs = pipeline_runs(kawa, tally)
        leftover = _leftover(kawa, set(result["first_tree"]))
        counts, _ = realtime.wait_scored(kawa, scored_before + tally.trigger_sent, timeout=120.0)
        scored = int(counts.get("scored", 0)) - scored_before
    finally:
        kawa.stop()
        log_tail = kawa.log[-40:]
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    verdicts = result["verdicts"]
    growth = [f"{v['label']}: {', '.join(v['grew'])} grew" for v in verdicts if v["grew"]]
    # Under 10 minutes the judged half is too short for a slope per 10 minutes to mean much (the lake
    # writer's memory swings by 100 MiB between compactions): growth is shown, not failed.
    judged = result["seconds"] >= JUDGED_FROM_S
    problems = list(growth) if judged else []
    problems += [f"{v['label']}: restarted (pids {v['pids']})" for v in verdicts if v["restarted"]]
    if lake["lost"] or lake["doubled"] or lake["unexpected"]:
        problems.append(
            f"lake: {lake['lost']} lost, {lake['doubled']} doubled, {lake['unexpected']} unexpected"
        )
    if leftover:
        problems.append(f"processes left after every run had ended: {leftover}")
    if scored != tally.trigger_sent or counts.get("errors"):
        problems.append(
            f"trigger: {scored} scored of {tally.trigger_sent} sent, {counts.get('errors')} errors"
        )
    loads = [row["load_average"] for row in result["samples"]]
    report = {
        "benchmark": "soak",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": info,
        "command": "python -m benchmarks.soak " + " ".join(argv if argv is not None else sys.argv[1:]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seconds": result["seconds"],
        "load_average": {"min": min(loads), "median": sorted(loads)[len(loads) // 2], "max": max(loads)},
        "history_events": history,
        "events": {"sent": tally.sent_events, "accepted": tally.accepted, "rejected": tally.rejected, **lake},
        "statuses": dict(sorted(tally.statuses.items())),
        "errors": dict(tally.errors),
        "pipeline_runs": {"started": len(tally.run_ids), **runs},
        "trigger": {"sent": tally.trigger_sent, "scored": scored, "errors": counts.get("errors")},
        "processes": verdicts,
        "leftover_processes": leftover,
        "samples": result["samples"],
        "curves": result["curves"],
        "fd_changes": result["fd_changes"],
        "fds_at_end": result["fds_at_end"],
        "problems": problems,
        "growth_judged": judged,
        "growth_seen": growth,
        "verdict": "flat" if not problems else "FAILED",
        "server_log_tail": log_tail,
    }
    path = save("soak", report, args.out)
    print("\n" + table(verdicts))
    print(f"\nevents: {report['events']}")
    print(f"statuses: {report['statuses']}")
    print(f"errors: {report['errors'] or 'none'}")
    print(f"pipeline runs: {report['pipeline_runs']}; trigger: {report['trigger']}")
    print(f"load average: {report['load_average']}")
    print(f"verdict: {report['verdict']}" + "".join(f"\n  - {p}" for p in problems))
    if not judged and growth:
        print(f"not judged (under {JUDGED_FROM_S // 60} minutes): " + "; ".join(growth))
    print(f"results: {path}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
