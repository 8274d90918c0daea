"""Point-in-time training set: 10 M events x 1 M label rows with RFM window features, next to Feast.

    python -m benchmarks.training_set                # scale 1 (10 M x 1 M), 3 runs; Feast at 0.1
    python -m benchmarks.training_set --scale 0.05   # a quick small run

kawa: `kawa.features.training_set(warehouse, labels, [presets.RFM])`, the 14 RFM and engagement
features of the loyalty template (purchases and revenue over 30/90 days, views over 7/30 days, cart
adds and removes, sessions, distinct categories viewed, days since last purchase / last seen / first
seen), each computed from events strictly before each label row's cutoff. Events are synthetic
(benchmarks/_peers_events.py) and written straight into the lake; labels are every user at 4 weekly
cutoffs (midnight UTC).

Feast has no window aggregations: it joins each entity row to the newest feature row at or before its
timestamp. So the same features are precomputed as a daily feature table, the way a Feast user
would materialise them (DuckDB SQL written independently of kawa's compiler, one row per user and
day on which any value changes, holding the values as of that midnight; "days since" features are
stored as event times and turned into days at each row's timestamp after the join). Feast
(file offline store over Parquet, in its own virtualenv) then does the point-in-time join with
`get_historical_features`. At a cutoff on a midnight that is exactly kawa's computation; the
precompute's own time is reported but not counted as Feast's. Feast's file store joins every entity
row to every feature row of its user and holds the product in memory, so on 2 cores / 24 GiB it runs
at `--feast-scale` (0.1: 1 M events, 100 k label rows) and kawa is measured on that same data too;
the full-scale Feast time is extrapolated linearly in users (the per-user shape stays the same).
Checks: row counts (kawa must keep every label row; does Feast?) and every feature of a sample of
rows, kawa against Feast.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks._peers import run_driver
from benchmarks._peers_events import DAY_US, DAYS, T0, events, label_rows, sizes, write_events
from benchmarks._peers_kawa import PROJECT, RESULTS, Clock, machine, median, project, save, table
from kawa.features import training_set
from kawa.features.presets import RFM
from kawa.warehouse import Warehouse

TARGET_S = 5.0
COUNTS = [
    "purchases_30d",
    "purchases_90d",
    "views_7d",
    "views_30d",
    "cart_adds_30d",
    "cart_removes_30d",
    "sessions_30d",
    "categories_viewed",
]
VALUES = ["revenue_30d", "revenue_90d", "avg_order_value_90d"]
TIMES = {
    "days_since_last_purchase": "last_purchase_us",
    "days_since_last_seen": "last_seen_us",
    "days_since_first_seen": "first_seen_us",
}

# The daily feature table for Feast: the values as of each midnight, from events of earlier days only.
FEAST_TABLE = """
WITH ev AS (
  SELECT keys.user_id AS u, epoch_us(sync_date) AS t, (epoch_us(sync_date) - {t0}) // {day} AS d,
         event_name AS n, revenue, category
  FROM events WHERE keys.user_id IS NOT NULL),
daily AS (
  SELECT u, d,
    count(*) FILTER (n = 'purchase') AS p, sum(revenue) FILTER (n = 'purchase') AS r,
    count(revenue) FILTER (n = 'purchase') AS rn,
    count(*) FILTER (n = 'view') AS v, count(*) FILTER (n = 'cart_add') AS ca,
    count(*) FILTER (n = 'cart_remove') AS cr, count(*) FILTER (n = 'session_start') AS s,
    max(t) FILTER (n = 'purchase') AS lp, max(t) AS ls, min(t) AS fs
  FROM ev GROUP BY u, d),
firsts AS (SELECT u, min(d) AS d FROM ev WHERE n = 'view' AND category IS NOT NULL GROUP BY u, category),
newcats AS (SELECT u, d, count(*) AS nc FROM firsts GROUP BY u, d),
grid AS (SELECT u, unnest(range(min(d), {days})) AS d FROM daily GROUP BY u),
dense AS (
  SELECT g.u, g.d, coalesce(p, 0) AS p, coalesce(r, 0) AS r, coalesce(rn, 0) AS rn, coalesce(v, 0) AS v,
    coalesce(ca, 0) AS ca, coalesce(cr, 0) AS cr, coalesce(s, 0) AS s, coalesce(nc, 0) AS nc, lp, ls, fs
  FROM grid g LEFT JOIN daily USING (u, d) LEFT JOIN newcats USING (u, d)),
roll AS (
  SELECT u, d,
    sum(p) OVER w30 AS purchases_30d, sum(p) OVER w90 AS purchases_90d,
    sum(v) OVER w7 AS views_7d, sum(v) OVER w30 AS views_30d,
    sum(ca) OVER w30 AS cart_adds_30d, sum(cr) OVER w30 AS cart_removes_30d,
    sum(s) OVER w30 AS sessions_30d, sum(nc) OVER wall AS categories_viewed,
    sum(r) OVER w30 AS revenue_30d, sum(r) OVER w90 AS revenue_90d,
    sum(r) OVER w90 / nullif(sum(rn) OVER w90, 0) AS avg_order_value_90d,
    max(lp) OVER wall AS last_purchase_us, max(ls) OVER wall AS last_seen_us,
    min(fs) OVER wall AS first_seen_us
  FROM dense
  WINDOW w7 AS (PARTITION BY u ORDER BY d ROWS BETWEEN 6 PRECEDING AND CURRENT ROW),
         w30 AS (PARTITION BY u ORDER BY d ROWS BETWEEN 29 PRECEDING AND CURRENT ROW),
         w90 AS (PARTITION BY u ORDER BY d ROWS BETWEEN 89 PRECEDING AND CURRENT ROW),
         wall AS (PARTITION BY u ORDER BY d ROWS UNBOUNDED PRECEDING)),
marked AS (
  SELECT *, {row} AS __v, lag({row}) OVER (PARTITION BY u ORDER BY d) AS __prev FROM roll)
SELECT u AS user_id, make_timestamptz({t0} + (d + 1) * {day}) AS event_timestamp,
  {counts}, {values}, last_purchase_us::DOUBLE AS last_purchase_us,
  last_seen_us::DOUBLE AS last_seen_us, first_seen_us::DOUBLE AS first_seen_us
FROM marked WHERE __prev IS NULL OR __v IS DISTINCT FROM __prev
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.training_set", description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="1.0 = 10 M events x 1 M label rows")
    p.add_argument("--feast-scale", type=float, default=0.1, help="scale of the Feast comparison (0.1)")
    p.add_argument("--runs", type=int, default=3, help="kawa runs at --scale; the median is reported (3)")
    p.add_argument("--sample", type=int, default=20_000, help="rows whose features are compared")
    p.add_argument("--no-feast", action="store_true", help="skip the Feast comparison")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON results")
    args = p.parse_args(argv)
    args.feast_scale = min(args.feast_scale, args.scale)  # never compare on more data than kawa's run
    return args


def feast_table_sql() -> str:
    stored = COUNTS + VALUES + list(TIMES.values())
    return FEAST_TABLE.format(
        t0=int(T0.timestamp() * 1e6),
        day=DAY_US,
        days=DAYS,
        row="struct_pack(" + ", ".join(stored) + ")",
        counts=", ".join(f"{c}::BIGINT AS {c}" for c in COUNTS),
        values=", ".join(f"{c}::DOUBLE AS {c}" for c in VALUES),
    )


def kawa_once(warehouse: Warehouse, labels: pa.Table) -> tuple[pa.Table, Clock]:
    with Clock() as clock:
        out = training_set(warehouse, labels, [RFM])
    if out.num_rows != labels.num_rows:
        raise RuntimeError(f"kawa returned {out.num_rows} rows for {labels.num_rows} label rows")
    return out, clock


def compare(kawa: pa.Table, feast: pa.Table, sample: int) -> dict[str, Any]:
    """Rows Feast returned or lost, and how many sampled (row, feature) values differ from kawa's.

    Values are compared on rows whose user has events before the cutoff. On rows without, kawa's
    counts and sums are 0 and its other features NULL; Feast's are all NULL where it keeps the row.
    """
    kawa = kawa.sort_by("row_id")
    all_ids = kawa.column("row_id").to_numpy()
    ids = pc.unique(feast.column("row_id")).to_numpy()
    missing = np.setdiff1d(all_ids, ids)
    empty = pc.is_null(kawa.column("days_since_first_seen")).to_numpy(zero_copy_only=False)
    rng = np.random.default_rng(1)
    usable = np.intersect1d(ids, all_ids[~empty])
    picks = np.sort(rng.choice(usable, min(sample, len(usable)), replace=False))
    ours = kawa.take(pa.array(picks))
    theirs = feast.take(pc.index_in(pa.array(picks), value_set=feast.column("row_id")))
    mismatches: dict[str, int] = {}
    for name in COUNTS + VALUES + list(TIMES):
        a = ours.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        b = theirs.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        same = np.isclose(a, b, rtol=1e-9, atol=1e-9) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            mismatches[name] = int((~same).sum())
    return {
        "label_rows": kawa.num_rows,
        "feast_rows": feast.num_rows,
        "feast_dropped_rows": len(missing),
        "rows_without_earlier_events": int(empty.sum()),
        "feast_dropped_rows_without_earlier_events": int(np.isin(missing, all_ids[empty]).sum()),
        "compared_rows": len(picks),
        "compared_values": len(picks) * (len(COUNTS) + len(VALUES) + len(TIMES)),
        "mismatched_values": mismatches,
    }


def with_feast(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """kawa and Feast on the same data at --feast-scale; returns times, rows and the value check."""
    out: dict[str, Any] = {"scale": args.feast_scale}
    users, n_events = sizes(args.feast_scale)
    with project(folder / "feast-scale") as runtime:
        warehouse = runtime.warehouse(PROJECT)
        write_events(warehouse, events(args.feast_scale))
        labels = label_rows(args.feast_scale)
        kawa_once(warehouse, labels)  # warm-up: file cache, DuckDB
        times = []
        for _ in range(args.runs):
            kawa, clock = kawa_once(warehouse, labels)
            times.append(clock.wall)
        with Clock() as pre:
            daily = warehouse.query(feast_table_sql())
        features = folder / "feast-daily.parquet"
        pq.write_table(daily, features)
        entities = folder / "feast-entities.parquet"
        pq.write_table(
            labels.select(["user_id", "cutoff", "row_id"]).rename_columns(
                ["user_id", "event_timestamp", "row_id"]
            ),
            entities,
        )
    print(
        f"feast scale {args.feast_scale}: {daily.num_rows:,} daily feature rows; running Feast ...",
        file=sys.stderr,
    )
    answer = run_driver(
        "feast",
        "_peers_feast.py",
        {
            "features": str(features),
            "entities": str(entities),
            "repo": str(folder / "feast-repo"),
            "out": str(folder / "feast-out.parquet"),
            "counts": COUNTS,
            "values": VALUES,
            "times": TIMES,
        },
    )
    feast = pq.read_table(folder / "feast-out.parquet")
    out |= {
        "events": n_events,
        "label_rows": labels.num_rows,
        "users": users,
        "kawa_s": round(median(times), 3),
        "kawa_runs_s": [round(t, 3) for t in times],
        "feast_s": round(answer["seconds"], 3),
        "feast_version": answer["feast"],
        "feast_daily_feature_rows": daily.num_rows,
        "feast_precompute_s_not_counted": round(pre.wall, 3),
        "check": compare(kawa, feast, args.sample),
    }
    out["ratio_feast_vs_kawa"] = round(out["feast_s"] / out["kawa_s"], 1)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="kawa-ml-training-"))
    report: dict[str, Any] = {}
    try:
        (folder / "full").mkdir()
        with project(folder / "full") as runtime:
            warehouse = runtime.warehouse(PROJECT)
            with Clock() as made:
                n = write_events(warehouse, events(args.scale))
                labels = label_rows(args.scale)
            print(
                f"wrote {n:,} events and made {labels.num_rows:,} label rows in {made.wall:.0f} s",
                file=sys.stderr,
            )
            kawa_once(warehouse, labels)  # warm-up: file cache, DuckDB
            runs = []
            for i in range(1, args.runs + 1):
                out, clock = kawa_once(warehouse, labels)
                runs.append({"run": i, "wall_s": round(clock.wall, 3), "cpu_s": round(clock.cpu, 3)})
                print(f"kawa run {i}: {clock.wall:.2f} s", file=sys.stderr)
            empty = int(pc.sum(pc.is_null(out.column("days_since_first_seen"))).as_py())
        report["kawa"] = {
            "scale": args.scale,
            "events": n,
            "label_rows": labels.num_rows,
            "rows_out": out.num_rows,
            "rows_without_earlier_events": empty,
            "features": len(RFM.features),
            "runs": runs,
            "median_s": median([r["wall_s"] for r in runs]),
            "median_cpu_s": median([r["cpu_s"] for r in runs]),
        }
        if not args.no_feast:
            (folder / "feast-scale").mkdir()
            feast = with_feast(args, folder)
            factor = args.scale / args.feast_scale
            feast["feast_extrapolated_s_at_scale"] = round(feast["feast_s"] * factor, 1)
            feast["ratio_feast_extrapolated_vs_kawa_at_scale"] = round(
                feast["feast_extrapolated_s_at_scale"] / report["kawa"]["median_s"], 1
            )
            report["feast"] = feast
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def render(report: dict[str, Any]) -> str:
    k = report["kawa"]
    n = len(k["runs"])
    full = f"kawa s, {k['events']:,} events x {k['label_rows']:,} rows"
    rows: list[tuple[str, list[Any]]] = [
        (full, [r["wall_s"] for r in k["runs"]] + [k["median_s"]]),
        ("same, CPU s (all threads)", [r["cpu_s"] for r in k["runs"]] + [k["median_cpu_s"]]),
    ]
    f = report.get("feast")
    if f:
        rows += [
            (f"kawa s, {f['events']:,} x {f['label_rows']:,}", f["kawa_runs_s"] + [f["kawa_s"]]),
            ("feast get_historical_features s, same data", [None] * n + [f["feast_s"]]),
            ("feast / kawa, same data", [None] * n + [f["ratio_feast_vs_kawa"]]),
            ("feast s extrapolated to --scale", [None] * n + [f["feast_extrapolated_s_at_scale"]]),
            ("feast extrapolated / kawa", [None] * n + [f["ratio_feast_extrapolated_vs_kawa_at_scale"]]),
            ("feast rows dropped", [None] * n + [f["check"]["feast_dropped_rows"]]),
            ("sampled values that differ", [None] * n + [sum(f["check"]["mismatched_values"].values())]),
        ]  # fmt: skip
    return table(rows, [f"run {i}" for i in range(1, n + 1)] + ["median"])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.time()
    report: dict[str, Any] = {
        "benchmark": "training_set",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": "python -m benchmarks.training_set " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "target_s": TARGET_S,
    }
    report |= run(args)
    report["target_met"] = report["kawa"]["median_s"] < TARGET_S if args.scale >= 1.0 else None
    report["wall_s"] = round(time.time() - started, 1)
    print(render(report))
    if "feast" in report:
        print(f"\ncheck: {report['feast']['check']}")
    print(f"target (< {TARGET_S} s at scale 1): {report['target_met']}")
    print(f"wrote {save('training_set', report, args.out)} ({report['wall_s']} s)")


if __name__ == "__main__":
    main()
