"""What each part of the suspicious-sellers template brings: the shipped model, its baseline, and ablations.

    python -m benchmarks.templates_sellers                  # users=2000, days=60, seed=7 (`kawa demo` size)
    python -m benchmarks.templates_sellers --seeds 7,8,9    # the spread over shops

Each demo shop (`kawa.demo.generate`, 600 items, 3 suspicious sellers listing 24 mass-produced items) is
written straight into a temporary project's warehouse with its catalogue (`demo_items`), and the
`suspicious_sellers` pipeline (kawa.templates.sellers) runs as it ships: out-of-fold AUC, average
precision and precision@k (k = the number of mass-produced items, or of suspicious sellers) of items and
sellers, folds grouped by seller, next to the price-only baseline. Two more rows take the same folds over
the features the pipeline wrote: without the title, and the title alone. (`benchmarks.model_quality`
shows the shipped model and baseline next to the other templates'.)

Seconds are the wall time of the pipeline run (in-process, no step cache).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from tests.features._events import events_table, write_events

from benchmarks._peers_kawa import machine, save, table
from kawa.config import Config
from kawa.demo import ShopConfig, generate
from kawa.demo.run import truth_tables
from kawa.pipelines import run_pipeline
from kawa.runtime import Runtime
from kawa.templates.sellers import FEATURES, LABEL, out_of_fold, rankings, suspicious_sellers
from kawa.warehouse.load import write_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--seeds", default="7", help="shop seeds, comma-separated")
    return parser.parse_args(argv)


def sellers_run(root: Path, args: argparse.Namespace, seed: int) -> list[dict[str, Any]]:
    """The pipeline's own evaluation on one shop, then the ablations over the features it wrote."""
    shop = generate(ShopConfig(users=args.users, days=args.days, items=args.items, seed=seed))
    runtime = Runtime(Config(project="shop", root=str(root)))
    try:
        warehouse = runtime.warehouse()
        write_events(warehouse, events_table(shop.events))
        write_table(warehouse, "demo_items", truth_tables(shop)["demo_items"])
        started = time.perf_counter()
        run = run_pipeline(runtime, suspicious_sellers, cache=False)
        seconds = time.perf_counter() - started
        if run.status != "succeeded":
            raise SystemExit(f"suspicious_sellers failed: {run.error}")
        features = warehouse.query("SELECT * FROM suspicious_item_features ORDER BY item_id")
    finally:
        runtime.close()
    m = run.metrics
    rows = [
        {"seed": seed, "model": "title + seller (shipped)", "seconds": seconds, **_pick(m, "")},
        {"seed": seed, "model": "price only (baseline)", "seconds": None, **_pick(m, "baseline_")},
    ]
    labelled = features.filter(pc.is_valid(features.column(LABEL)))
    y = labelled.column(LABEL).to_numpy().astype(np.int64)
    sellers = labelled.column("seller_id").to_numpy(zero_copy_only=False)
    for name, columns in (
        ("without the title", tuple(f for f in FEATURES if f != "title")),
        ("title only", ("title",)),
    ):
        found = rankings("", y, sellers, out_of_fold(labelled, columns, folds=3, seed=0))
        rows.append({"seed": seed, "model": name, "seconds": None, **found})
    return rows


def _pick(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key: metrics.get(f"{prefix}{key}") for key in SELLERS.values() if key != "seconds"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine(), "config": vars(args), "sellers": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory(prefix="kawa-sellers-") as tmp:
            report["sellers"].extend(sellers_run(Path(tmp), args, seed))
    return report


SELLERS = {
    "item AUC": "auc",
    "item AP": "average_precision",
    "item P@k": "precision_at_k",
    "seller AUC": "seller_auc",
    "seller AP": "seller_average_precision",
    "seller P@k": "seller_precision_at_k",
    "seconds": "seconds",
}


def show(report: dict[str, Any]) -> None:
    sellers = [
        (f"seed {r['seed']}, {r['model']}", [r[k] for k in SELLERS.values()]) for r in report["sellers"]
    ]
    print(table(sellers, list(SELLERS)))


def main(argv: list[str] | None = None) -> None:
    report = run(parse_args(argv))
    show(report)
    print(f"\nsaved {save('templates_sellers', report)}")


if __name__ == "__main__":
    main()
