"""Batch prediction, warehouse table to warehouse table, for the demo's kind of model on 5 M rows.

    python -m benchmarks.batch_predict             # 5 M rows (about 6 minutes here)
    python -m benchmarks.batch_predict --quick     # 200 k rows, 1 run

A fresh `kawa init` project gets a 5 M-row table of RFM-style features (14 numeric, some NULL, and one
categorical `channel`; benchmarks/_peers_data.py) and two registered bundles trained on 100 k of its
rows: scikit-learn LogisticRegression and LightGBM (200 trees of 15 leaves, as the loyalty template).
Each run measures, for each model:
1. `kawa.serving.batch.batch_predict`: SQL query -> Parquet read -> bundle preprocessing -> model ->
   a `run_date` partition written to the warehouse (what a nightly job does), in rows/s;
2. `Bundle.predict_table` on the table already in memory (the scoring part of 1 alone);
3. the baseline: for LogisticRegression the bare scikit-learn pipeline with the same preprocessing
   (median fill + missing flags + scaling, one-hot channel) `predict_proba` on the raw numpy matrix;
   for LightGBM the bare booster `predict` on the already-encoded numpy matrix.
LogisticRegression gets `--runs` (3) runs; LightGBM scores ~100 k rows/s here, so it gets
`--lightgbm-runs` (1), about 3 minutes. After the runs, one more `batch_predict` per model also
publishes every score to the prediction store.
Rows/s is wall time; CPU seconds (all threads of this process) are in the JSON, as the machine is shared.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks._peers_data import FEATURES, as_matrix, feature_table, sklearn_pipeline
from benchmarks._peers_kawa import PROJECT, RESULTS, Clock, machine, median, project, save, table
from kawa.models import Bundle, Registry
from kawa.serving.batch import batch_predict
from kawa.serving.store import PredictionStore
from kawa.warehouse.load import write_table

TARGET_ROWS_PER_S = 1_000_000
QUERY = "SELECT * FROM bench_features"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.batch_predict", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=5_000_000, help="rows to score (5,000,000)")
    p.add_argument("--train-rows", type=int, default=100_000, help="rows the models are fitted on")
    p.add_argument("--runs", type=int, default=3, help="runs of the linear model; medians reported (3)")
    p.add_argument("--lightgbm-runs", type=int, default=1, help="runs of LightGBM, ~3 minutes each (1)")
    p.add_argument("--no-publish", action="store_true", help="skip the run that publishes to the store")
    p.add_argument("--quick", action="store_true", help="200,000 rows, 1 run")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.runs, args.lightgbm_runs, args.train_rows = 200_000, 1, 1, 50_000
    return args


def _models(data: pa.Table, train_rows: int) -> dict[str, Any]:
    """The two bundles and their bare baselines, fitted on the first `train_rows` rows."""
    from lightgbm import LGBMClassifier
    from sklearn.linear_model import LogisticRegression

    train = data.slice(0, train_rows).select([*FEATURES, "label"])
    logistic = Bundle.fit(train, label="label", estimator=LogisticRegression(max_iter=500))
    lgbm = LGBMClassifier(n_estimators=200, num_leaves=15, learning_rate=0.05, verbose=-1)
    lightgbm = Bundle.fit(train, label="label", estimator=lgbm)
    pipeline = sklearn_pipeline("logistic").fit(as_matrix(train), train.column("label").to_numpy())
    return {"logistic": (logistic, pipeline), "lightgbm": (lightgbm, lightgbm.flavor.booster)}


def _baseline(kind: str, bare: Any, matrix: np.ndarray) -> np.ndarray:
    if kind == "logistic":
        return np.asarray(bare.predict_proba(matrix)[:, 1])
    return np.asarray(bare.predict(matrix, verbosity=-1))


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="kawa-ml-batch-"))
    report: dict[str, Any] = {"models": {}}
    try:
        with project(folder) as runtime:
            warehouse = runtime.warehouse(PROJECT)
            registry = Registry.from_runtime(runtime)
            with Clock() as made:
                data = feature_table(args.rows)
                write_table(warehouse, "bench_features", data)
            print(f"made and wrote {args.rows:,} feature rows in {made.wall:.1f} s", file=sys.stderr)
            with Clock() as fitted:
                models = _models(data, args.train_rows)
            print(f"fitted the models in {fitted.wall:.1f} s", file=sys.stderr)
            raw = as_matrix(data)
            for name, (bundle, bare) in models.items():
                version = registry.register(PROJECT, name, bundle)
                registry.promote(PROJECT, name, version, "production")
                # The logistic baseline takes the raw matrix; the booster takes kawa's encoded one.
                matrix = raw if name == "logistic" else bundle.preprocessor.transform_table(data)
                report["models"][name] = _measure(args, warehouse, registry, name, bundle, bare, matrix, data)
                if not args.no_publish:
                    store = PredictionStore(runtime.online)
                    with Clock() as pub:
                        result = batch_predict(
                            warehouse, registry, name, QUERY, entity="user_id", run_date=date(2026, 11, 24),
                            store=store,
                        )  # fmt: skip
                    report["models"][name]["publish"] = {
                        "rows": result.rows,
                        "published": result.published,
                        "wall_s": round(pub.wall, 2),
                        "rows_per_s": round(result.rows / pub.wall),
                    }
                    print(f"{name}: table -> table + prediction store in {pub.wall:.1f} s", file=sys.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def _measure(
    args: argparse.Namespace,
    warehouse: Any,
    registry: Registry,
    name: str,
    bundle: Bundle,
    bare: Any,
    matrix: np.ndarray,
    data: pa.Table,
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for i in range(1, (args.runs if name == "logistic" else args.lightgbm_runs) + 1):
        with Clock() as read:
            warehouse.query(QUERY)
        with Clock() as whole:
            result = batch_predict(
                warehouse, registry, name, QUERY, entity="user_id", run_date=date(2026, 11, 23)
            )
        with Clock() as scoring:
            scores = bundle.predict_table(data)
        with Clock() as base:
            expected = _baseline(name, bare, matrix)
        written = warehouse.query(
            f"SELECT count(*) AS n, min(score) AS lo, max(score) AS hi FROM {result.table} "
            "WHERE run_date = '2026-11-23'"
        ).to_pylist()[0]
        if written["n"] != args.rows or not (0.0 <= written["lo"] <= written["hi"] <= 1.0):
            raise RuntimeError(
                f"{name}: batch_predict wrote {written}, expected {args.rows} scores in [0, 1]"
            )
        runs.append(
            {
                "run": i,
                "table_to_table_s": round(whole.wall, 3),
                "table_to_table_cpu_s": round(whole.cpu, 3),
                "table_to_table_rows_per_s": round(args.rows / whole.wall),
                "of_which_read_s": round(read.wall, 3),
                "predict_table_s": round(scoring.wall, 3),
                "predict_table_rows_per_s": round(args.rows / scoring.wall),
                "baseline_s": round(base.wall, 3),
                "baseline_cpu_s": round(base.cpu, 3),
                "baseline_rows_per_s": round(args.rows / base.wall),
                # Same preprocessing and estimator family, fitted separately: close, not identical.
                "mean_abs_diff_vs_baseline": float(np.mean(np.abs(scores - expected))),
            }
        )
        print(
            f"{name} run {i}: table->table {runs[-1]['table_to_table_rows_per_s']:,} rows/s, "
            f"predict_table {runs[-1]['predict_table_rows_per_s']:,}, "
            f"baseline {runs[-1]['baseline_rows_per_s']:,}",
            file=sys.stderr,
        )
    med = {k: median([r[k] for r in runs]) for k in runs[0] if k != "run"}
    med["ratio_table_to_table_vs_baseline"] = med["table_to_table_rows_per_s"] / med["baseline_rows_per_s"]
    med["ratio_predict_table_vs_baseline"] = med["predict_table_rows_per_s"] / med["baseline_rows_per_s"]
    return {"version": bundle.flavor.name, "runs": runs, "median": med}


def summary(report: dict[str, Any]) -> str:
    lines = [
        ("batch_predict table->table rows/s", "table_to_table_rows_per_s"),
        ("Bundle.predict_table rows/s", "predict_table_rows_per_s"),
        ("baseline rows/s", "baseline_rows_per_s"),
    ]
    rows: list[tuple[str, list[Any]]] = []
    width = max(len(m["runs"]) for m in report["models"].values())
    for name, m in report["models"].items():
        med, n = m["median"], len(m["runs"])
        for label, key in lines:
            cells = [r[key] for r in m["runs"]] + [None] * (width - n)
            rows.append((f"{name}: {label}", [*cells, med[key]]))
        rows.append(
            (f"{name}: table->table / baseline", [None] * width + [med["ratio_table_to_table_vs_baseline"]])
        )
        if "publish" in m:
            rows.append((f"{name}: + publish to store rows/s", [None] * width + [m["publish"]["rows_per_s"]]))
    runs = max(len(m["runs"]) for m in report["models"].values())
    return table(rows, [f"run {i}" for i in range(1, runs + 1)] + ["median"])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.time()
    report: dict[str, Any] = {
        "benchmark": "batch_predict",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": "python -m benchmarks.batch_predict " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "target_rows_per_s": TARGET_ROWS_PER_S,
    }
    report |= run(args)
    report["wall_s"] = round(time.time() - started, 1)
    logistic = report["models"]["logistic"]["median"]["table_to_table_rows_per_s"]
    report["target_met"] = logistic >= TARGET_ROWS_PER_S
    print(summary(report))
    print(f"\nlogistic table->table {logistic:,.0f} rows/s: target {TARGET_ROWS_PER_S:,} "
          f"{'met' if report['target_met'] else 'NOT met'}")  # fmt: skip
    print(f"wrote {save('batch_predict', report, args.out)} ({report['wall_s']} s)")


if __name__ == "__main__":
    main()
