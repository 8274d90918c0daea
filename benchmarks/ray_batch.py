"""Batch prediction rows/s: the embedded executor (`batch_predict`) vs Ray with 1 and 2 workers, same input.

    python -m benchmarks.ray_batch            # 2 M rows, 3 rounds (about 4 minutes here)
    python -m benchmarks.ray_batch --quick    # 300 k rows, 1 round

A fresh `kawa init` project gets a `bench_features` table of RFM-style features (benchmarks/_peers_data.py)
written as `--files` Parquet files (one per `day` partition), and a small LightGBM bundle (50 trees of
15 leaves) fitted on 50 k of its rows. Three set-ups score the whole table into a `run_date` partition:
- `embedded`: `batch_predict(..., "SELECT * FROM bench_features")` in this process (DuckDB and LightGBM
  use every core);
- `ray x1`, `ray x2`: `distributed_batch_predict` on a local Ray cluster started with `--num-cpus 1`
  and `--num-cpus 2` (`ray start --head` on 127.0.0.1): a task per file, one CPU (and one LightGBM
  thread) each, parts published in one commit.
Each round runs every set-up once, in turn, so a noisy minute on a shared machine hits all of them; the
table shows every round and the median. Both clusters stay up for the whole benchmark; the driver
connects to the set-up's cluster before its run (outside the timing), which makes each run a new Ray
job, as each `kawa predict --table` is: Ray starts the job's worker processes (Python, kawa, LightGBM
imports) inside the timed run. The `warm` rows run the same job again, on the workers already started,
as a long-running driver would. Every run is checked: the partition holds each user once, and the Ray
set-ups' scores equal the embedded ones. CPU µs per row counts this process and, on Ray, every process
of the cluster: on a shared machine it moves far less than rows/s does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tests.services.ray import LOOPBACK_ENV, RayCluster, keep_loopback, ray_binary

from benchmarks._peers_data import FEATURES, feature_table
from benchmarks._peers_kawa import PROJECT, RESULTS, Clock, machine, median, project, save, table
from kawa.models import Bundle, Registry
from kawa.serving.batch import batch_predict
from kawa.serving.distributed import distributed_batch_predict
from kawa.warehouse import Warehouse
from kawa.warehouse.load import write_table

MODEL = "buyer"
RUN_DATE = date(2026, 12, 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ray_batch", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000, help="rows to score (2,000,000)")
    p.add_argument("--files", type=int, default=8, help="Parquet files (day partitions) they are in (8)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the table shows the median (3)")
    p.add_argument("--quick", action="store_true", help="300,000 rows, 1 round")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.rounds = 300_000, 1
    return args


def _prepare(warehouse: Warehouse, registry: Registry, rows: int, files: int) -> None:
    """The input table, a file per `day` partition, and the LightGBM bundle in production."""
    from lightgbm import LGBMClassifier

    data = feature_table(rows)
    step = -(-rows // files)
    for i in range(files):
        part = data.slice(i * step, step).select(["user_id", *FEATURES])
        write_table(warehouse, "bench_features", part, partition={"day": f"2026-11-{i + 1:02d}"})
    train = data.slice(0, 50_000).select([*FEATURES, "label"])
    estimator = LGBMClassifier(n_estimators=50, num_leaves=15, learning_rate=0.1, verbose=-1)
    version = registry.register(PROJECT, MODEL, Bundle.fit(train, label="label", estimator=estimator))
    registry.promote(PROJECT, MODEL, version, "production")


def _score(
    setup: str, warehouse: Warehouse, registry: Registry, cluster: RayCluster | None
) -> dict[str, float]:
    """Score the whole table the way `setup` does: wall seconds, and CPU seconds of this process plus,
    on Ray, of every process of the cluster (its workers, and those of them that ended meanwhile)."""
    common: dict[str, Any] = {"entity": "user_id", "run_date": RUN_DATE, "output": setup.replace(" ", "_")}
    before = _tree_cpu(cluster)
    with Clock() as clock:
        if cluster is None:
            batch_predict(warehouse, registry, MODEL, "SELECT * FROM bench_features", **common)
        else:
            distributed_batch_predict(warehouse, registry, MODEL, "bench_features", **common)
    return {"wall_s": clock.wall, "cpu_s": clock.cpu + _tree_cpu(cluster) - before}


def _tree_cpu(cluster: RayCluster | None) -> float:
    """CPU seconds used by the cluster's processes so far, ended children (reaped by their parent) too."""
    if cluster is None:
        return 0.0
    total = 0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and cluster.owns(int(proc.name)):
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def _scores(warehouse: Warehouse, setup: str) -> pa.Table:
    return warehouse.query(
        f"SELECT user_id, score FROM {setup.replace(' ', '_')} WHERE run_date = '{RUN_DATE}' ORDER BY user_id"
    )


def _check(warehouse: Warehouse, setup: str, rows: int) -> None:
    """The partition holds every user once; on Ray, with the embedded run's scores."""
    out = _scores(warehouse, setup)
    users = out.column("user_id")
    if out.num_rows != rows or len(users.unique()) != rows:
        raise RuntimeError(
            f"{setup}: wrote {out.num_rows:,} rows of {len(users.unique()):,} users, not {rows:,}"
        )
    if setup != "embedded":
        expected = _scores(warehouse, "embedded")
        diff = np.abs(out.column("score").to_numpy() - expected.column("score").to_numpy()).max()
        if users != expected.column("user_id") or diff > 1e-9:
            raise RuntimeError(f"{setup}: scores differ from the embedded run's (max difference {diff})")


def _connect(cluster: RayCluster | None) -> None:
    import ray

    from kawa.pipelines.ray_executor import connect

    if ray.is_initialized():
        ray.shutdown()
    if cluster is not None:
        connect(cluster.address)


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="kawa-bench-ray-"))
    os.environ.update(LOOPBACK_ENV)  # every Ray port on 127.0.0.1 (see tests/services/ray.py)
    keep_loopback()
    clusters = {"ray x1": RayCluster(ray_binary(), cpus=1), "ray x2": RayCluster(ray_binary(), cpus=2)}
    rounds: list[dict[str, dict[str, float]]] = []
    try:
        for cluster in clusters.values():
            cluster.start()
        with project(folder) as runtime:
            warehouse, registry = runtime.warehouse(PROJECT), Registry.from_runtime(runtime)
            with Clock() as made:
                _prepare(warehouse, registry, args.rows, args.files)
            print(
                f"wrote {args.rows:,} rows in {args.files} files, fitted the model: {made.wall:.1f} s",
                file=sys.stderr,
            )
            for setup, cluster in clusters.items():  # warm-up: each cluster's first job, the files cached
                _connect(cluster)
                _score(setup, warehouse, registry, cluster)
            for i in range(1, args.rounds + 1):
                runs: dict[str, dict[str, float]] = {}
                for setup in ("embedded", *clusters):
                    cluster = clusters.get(setup)
                    _connect(cluster)  # a new Ray job: its workers start with it
                    runs[setup] = _score(setup, warehouse, registry, cluster)
                    _check(warehouse, setup, args.rows)
                    if cluster is not None:  # again in the same job, on the workers already started
                        runs[f"{setup} warm"] = _score(setup, warehouse, registry, cluster)
                        _check(warehouse, setup, args.rows)
                rounds.append(runs)
                said = ", ".join(f"{s} {args.rows / r['wall_s']:,.0f} rows/s" for s, r in runs.items())
                print(f"round {i}: {said}", file=sys.stderr)
            _connect(None)
    finally:
        for cluster in clusters.values():
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    result: dict[str, Any] = {"rounds": rounds, "setups": {}}
    for setup in rounds[0]:
        per_s = [args.rows / r[setup]["wall_s"] for r in rounds]
        cpu_us = [r[setup]["cpu_s"] / args.rows * 1e6 for r in rounds]
        result["setups"][setup] = {
            "rows_per_s": [round(v) for v in per_s],
            "median_rows_per_s": round(median(per_s)),
            "cpu_us_per_row": [round(v, 2) for v in cpu_us],
            "median_cpu_us_per_row": round(median(cpu_us), 2),
        }
    return result


def summary(report: dict[str, Any]) -> str:
    setups = report["setups"]
    base = setups["embedded"]["median_rows_per_s"]
    n = len(setups["embedded"]["rows_per_s"])
    rows = [(f"{name} rows/s", [*s["rows_per_s"], s["median_rows_per_s"]]) for name, s in setups.items()]
    rows += [
        (f"{name} CPU µs/row", [*s["cpu_us_per_row"], s["median_cpu_us_per_row"]])
        for name, s in setups.items()
    ]
    rows += [
        (f"{name} / embedded rows/s", [None] * n + [s["median_rows_per_s"] / base])
        for name, s in setups.items()
        if name != "embedded"
    ]
    return table(rows, [f"round {i}" for i in range(1, n + 1)] + ["median"])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.time()
    report: dict[str, Any] = {
        "benchmark": "ray_batch",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": "python -m benchmarks.ray_batch " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    report |= run(args)
    report["wall_s"] = round(time.time() - started, 1)
    print(summary(report))
    print(f"wrote {save('ray_batch', report, args.out)} ({report['wall_s']} s)")


if __name__ == "__main__":
    main()
