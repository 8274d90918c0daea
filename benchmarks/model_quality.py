"""Model quality of the templates on the demo shop: each template's evaluation next to its baseline.

    python -m benchmarks.model_quality                          # every entry, `kawa demo` size
    python -m benchmarks.model_quality forecast rfm             # some templates
    python -m benchmarks.model_quality --seeds 7,8,9 --users 500 --days 49

Each shop (`kawa.demo.generate`, users=2000, days=60, seed 7 by default) is written straight into a
temporary project's warehouse with its ground truth tables (`demo_users`, `demo_items`, `demo_sellers`,
`demo_sessions`), and each template's pipeline runs on it as it ships (in-process, no step cache),
with the parameters of its entry. The rows are the run metrics the template logs: its model and its
baseline, measured on the template's own holdout. Seconds are the wall time of the pipeline run.

Adding a template is one entry in `ENTRIES`:

    Entry("forecast", "seasonal naive", (Row("item-day WAPE", "wape", "baseline_wape", lower=True),)),
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tests.features._events import events_table, write_events

from benchmarks._peers_kawa import machine, save, table
from kawa.config import Config
from kawa.demo import ShopConfig, generate
from kawa.demo.run import truth_tables
from kawa.pipelines import run_pipeline
from kawa.pipelines.pipeline import Pipeline
from kawa.runtime import Runtime
from kawa.templates.catalog import find
from kawa.warehouse.load import write_table


class Row(NamedTuple):
    """One figure of an evaluation: its name, the run metrics of the model and of the baseline."""

    label: str
    model: str
    baseline: str
    lower: bool = False  # lower is better (errors), else higher (AUC, recall)


@dataclass(frozen=True)
class Entry:
    """A template's evaluation: what its baseline is, the figures to show, and how to run it."""

    template: str
    baseline: str
    rows: tuple[Row, ...]
    pipeline: str = ""  # one of the template's pipelines; default: its first
    params: Mapping[str, Any] = field(default_factory=dict)


ENTRIES: list[Entry] = [
    Entry(
        "forecast",
        "seasonal naive: the same weekday of the newest week known",
        (
            Row("item-day WAPE", "wape", "baseline_wape", lower=True),
            Row("item-day MAPE (demand > 0)", "mape", "baseline_mape", lower=True),
            Row("category-day WAPE", "category_wape", "baseline_category_wape", lower=True),
            Row("category-day MAPE (demand > 0)", "category_mape", "baseline_category_mape", lower=True),
            Row("item 14-day total WAPE", "total_wape", "baseline_total_wape", lower=True),
            Row("over-stocked items found (recall)", "overstock_recall", "overstock_recall"),
            Row("flagged items truly over-stocked (precision)", "overstock_precision", "overstock_precision"),
        ),
    ),
    Entry(
        "rfm",
        "as many spend quantiles (monetary alone)",
        (
            Row(
                "share of hidden loyalty variance explained",
                "loyalty_explained",
                "baseline_loyalty_explained",
            ),
        ),
    ),
    Entry(
        "loyalty",
        "recency alone (days since last seen)",
        (Row("holdout AUC, purchase in 14 days", "auc", "baseline_recency_auc"),),
    ),
    Entry(
        "recommendations",
        "the most popular items of the last 14 days",
        (
            Row("recall@10, next 7 days' purchases", "recall_at_10", "popular_recall_at_10"),
            Row("NDCG@10", "ndcg_at_10", "popular_ndcg_at_10"),
        ),
    ),
    Entry(
        "intent",
        "logistic regression on the counts of the same pages",
        (Row("holdout AUC, session buys later", "auc", "baseline_auc"),),
    ),
    Entry(
        "suspicious_sellers",
        "logistic regression on the price alone; both out of fold, folds grouped by seller",
        (
            Row("item AUC, mass-produced", "auc", "baseline_auc"),
            Row("item precision@k (k = mass-produced items)", "precision_at_k", "baseline_precision_at_k"),
            Row("seller AUC, suspicious", "seller_auc", "baseline_seller_auc"),
            Row("seller precision@k", "seller_precision_at_k", "baseline_seller_precision_at_k"),
        ),
    ),
    Entry(
        "image_classifier",
        "logistic regression on the same pixels",
        (
            Row("holdout accuracy, circle or square", "accuracy", "baseline_accuracy"),
            Row("holdout AUC", "auc", "baseline_auc"),
        ),
    ),
    Entry(
        "access_forecast",
        "seasonal naive: the same hour a week before",
        (
            Row("hourly WAPE, 48 h ahead", "wape", "baseline_wape", lower=True),
            Row("hourly MAPE (hours with events)", "mape", "baseline_mape", lower=True),
            Row("p10-p90 interval coverage (0.8 expected)", "coverage_p10_p90", "coverage_p10_p90"),
            Row("hours the p90's servers fell short", "shortfall_share", "shortfall_share"),
            Row("server-hours saved vs a fleet for the peak", "saving", "saving"),
        ),
    ),
    Entry(
        "anomaly",
        "event rate alone (events per active day); quietened bots: benchmarks/templates_ops",
        (
            Row("bots in the top 1% (precision)", "precision_top_1pct", "baseline_precision_top_1pct"),
            Row("bots found in the top 1% (recall)", "recall_top_1pct", "baseline_recall_top_1pct"),
            Row("bots found in the top k = bots (recall)", "recall_top_k", "baseline_recall_top_k"),
        ),
    ),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("templates", nargs="*", help="templates to run (default: every entry)")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seeds", default="7", help="shop seeds, comma-separated")
    return parser.parse_args(argv)


def _pipeline(entry: Entry) -> Pipeline:
    template, module_name = find(entry.template)
    pipeline: Pipeline = getattr(
        importlib.import_module(module_name), entry.pipeline or template.pipelines[0]
    )
    return pipeline


def evaluate(config: ShopConfig, entries: list[Entry]) -> dict[str, Any]:
    """Run `entries` on one shop; their run metrics and seconds."""
    shop = generate(config)
    out: dict[str, Any] = {"seed": config.seed, "events": len(shop.events), "templates": []}
    with tempfile.TemporaryDirectory(prefix="kawa-quality-") as tmp:
        runtime = Runtime(Config(project="shop", root=tmp))
        try:
            write_events(runtime.warehouse(), events_table(shop.events))
            for name, truth in truth_tables(shop).items():
                write_table(runtime.warehouse(), name, truth)
            for entry in entries:
                started = time.perf_counter()
                record = run_pipeline(runtime, _pipeline(entry), entry.params, cache=False)
                seconds = time.perf_counter() - started
                out["templates"].append(
                    {
                        "template": entry.template,
                        "status": record.status,
                        "error": record.error,
                        "seconds": seconds,
                        "metrics": record.metrics,
                    }
                )
                print(f"seed {config.seed}, {entry.template}: {record.status} in {seconds:.1f} s", flush=True)
        finally:
            runtime.close()
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    unknown = set(args.templates) - {e.template for e in ENTRIES}
    if unknown:
        raise SystemExit(
            f"no entry for {', '.join(sorted(unknown))}; entries: {[e.template for e in ENTRIES]}"
        )
    chosen = [e for e in ENTRIES if not args.templates or e.template in args.templates]
    report: dict[str, Any] = {"machine": machine(), "config": vars(args), "shops": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        config = ShopConfig(users=args.users, days=args.days, seed=seed)
        report["shops"].append(evaluate(config, chosen))
    return report


def show(report: dict[str, Any]) -> None:
    entries = {e.template: e for e in ENTRIES}
    for shop in report["shops"]:
        rows: list[tuple[str, list[Any]]] = []
        for result in shop["templates"]:
            entry = entries[result["template"]]
            if result["status"] != "succeeded":
                rows.append((f"{entry.template}: {result['status']}", ["-", "-", "-", result["seconds"]]))
                continue
            m = result["metrics"]
            for row in entry.rows:
                model, baseline = m.get(row.model), m.get(row.baseline)
                same = row.model == row.baseline  # a figure without a baseline
                better: bool | str | None = None
                if not same and model is not None and baseline is not None:
                    better = "tie" if model == baseline else (model < baseline) == row.lower
                cells = [model, None if same else baseline, better, result["seconds"]]
                rows.append((f"{entry.template}: {row.label}", cells))
        print(f"\nshop seed {shop['seed']} ({shop['events']:,} events)")
        print(table(rows, ["model", "baseline", "better", "seconds"]))
        for result in shop["templates"]:
            if result["error"]:
                print(f"\n{result['template']} failed:\n{result['error']}")
    print("\nbaselines:")
    for template in {r["template"]: None for shop in report["shops"] for r in shop["templates"]}:
        print(f"  {template}: {entries[template].baseline}")


def main(argv: list[str] | None = None) -> None:
    report = run(parse_args(argv))
    show(report)
    print(f"\nsaved {save('model_quality', report)}")


if __name__ == "__main__":
    main()
