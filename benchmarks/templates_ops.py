"""Model quality of the ops templates on the demo shop: access forecasting and anomaly detection.

    python -m benchmarks.templates_ops                       # users=2000, days=60, seed=7 (`kawa demo` size)
    python -m benchmarks.templates_ops --seeds 7,8,9         # the spread over shops

Each shop (`kawa.demo.generate`) is written straight into a temporary project's warehouse, with its
ground truth (`demo_users`), and the templates' pipelines run on it as they ship:

- access_forecast (kawa.templates.traffic): 48-hour forecasts from each midnight of the last 7 days,
  fitted on the hours before them; WAPE and MAPE of the p50 next to seasonal-naive (the same hour last
  week), how often the p10-p90 interval held the actual count, how often servers = ceil(p90 / 100)
  fell short; then the planned server-hours of the next 48 hours against a fleet sized for their peak.
- anomaly (kawa.templates.anomaly): precision and recall of the isolation forest at the top 1% of members
  and at the top k = the number of bots, next to ranking by event rate (events per active day) alone;
  once on the shop as generated and once with every bot visit cut to its first 12 events (`quiet_bots`),
  which takes away the volume that gives the demo's bots away.

Seconds are the wall time of each pipeline run (in-process, no step cache).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.features._events import events_table, write_events

from benchmarks._peers_kawa import machine, save, table
from kawa.config import Config
from kawa.demo import ShopConfig, generate
from kawa.demo.run import truth_tables
from kawa.pipelines import RunRecord, run_pipeline
from kawa.pipelines.pipeline import Pipeline
from kawa.runtime import Runtime
from kawa.templates.anomaly import anomaly, quiet_bots
from kawa.templates.traffic import access_forecast
from kawa.warehouse.load import write_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seeds", default="7", help="shop seeds, comma-separated")
    parser.add_argument("--keep", type=int, default=12, help="events kept of each bot visit when quiet")
    return parser.parse_args(argv)


def _run(root: Path, events: list[dict[str, Any]], truth: Any, pipeline: Pipeline) -> tuple[RunRecord, float]:
    runtime = Runtime(Config(project="shop", root=str(root)))
    try:
        write_events(runtime.warehouse(), events_table(events))
        write_table(runtime.warehouse(), "demo_users", truth)
        started = time.perf_counter()
        run = run_pipeline(runtime, pipeline, cache=False)
        seconds = time.perf_counter() - started
    finally:
        runtime.close()
    if run.status != "succeeded":
        raise SystemExit(f"{pipeline.name} failed: {run.error}")
    return run, seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine(), "config": vars(args), "traffic": [], "anomaly": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        shop = generate(ShopConfig(users=args.users, days=args.days, seed=seed))
        events = list(shop.events)
        truth = truth_tables(shop)["demo_users"]
        bots = {u.user_id for u in shop.users if u.is_bot}
        with tempfile.TemporaryDirectory(prefix="kawa-ops-") as tmp:
            forecast, seconds = _run(Path(tmp) / "traffic", events, truth, access_forecast)
            report["traffic"].append(
                {"seed": seed, "events": len(events), "seconds": seconds, **forecast.metrics}
            )
            for variant, shown in (
                ("as generated", events),
                ("quiet bots", quiet_bots(events, bots, args.keep)),
            ):
                found, seconds = _run(Path(tmp) / variant.replace(" ", "_"), shown, truth, anomaly)
                report["anomaly"].append({"seed": seed, "bots": variant, "seconds": seconds, **found.metrics})
    return report


TRAFFIC = {
    "WAPE": "wape",
    "naive WAPE": "baseline_wape",
    "MAPE": "mape",
    "naive MAPE": "baseline_mape",
    "p10-p90 cov": "coverage_p10_p90",
    "shortfall": "shortfall_share",
    "saving": "saving",
    "seconds": "seconds",
}
ANOMALY = {
    "members": "members",
    "bots": "cheaters",
    "P@1% forest": "precision_top_1pct",
    "R@1% forest": "recall_top_1pct",
    "P@1% rate": "baseline_precision_top_1pct",
    "R@1% rate": "baseline_recall_top_1pct",
    "R@k forest": "recall_top_k",
    "R@k rate": "baseline_recall_top_k",
    "seconds": "seconds",
}


def show(report: dict[str, Any]) -> None:
    traffic = [(f"seed {r['seed']}", [r[k] for k in TRAFFIC.values()]) for r in report["traffic"]]
    print(table(traffic, list(TRAFFIC)))
    print()
    found = [(f"seed {r['seed']}, {r['bots']}", [r[k] for k in ANOMALY.values()]) for r in report["anomaly"]]
    print(table(found, list(ANOMALY)))


def main(argv: list[str] | None = None) -> None:
    report = run(parse_args(argv))
    show(report)
    print(f"\nsaved {save('templates_ops', report)}")


if __name__ == "__main__":
    main()
