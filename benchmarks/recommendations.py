"""Recommendations on the demo shop: CF (cosine and Jaccard, user and session co-occurrence) vs baselines.

    python -m benchmarks.recommendations                    # 8,000 users x 60 days, about 1-2 minutes
    python -m benchmarks.recommendations --users 2000       # `kawa demo`-sized

The demo shop (`kawa.demo.shop.generate`, fixed seed) is written straight into a temporary lake as
the `events` table. The holdout is the last `--holdout-days` days: every method is fitted on the
events before the cutoff only, and measured on what the users with earlier items bought in the
holdout (items they had bought before left out), by `kawa.recommend.evaluate`:

- recall@10 (hits / items bought), NDCG@10 (binary relevance), both averaged over users;
- recall@10 on new items: only the bought items the user had never viewed, carted or bought before
  the cutoff (what a recommender has to discover rather than recall);
- coverage: the share of the catalogue that appears in some measured user's top 10.

Next to them: `SVD`, implicit-feedback matrix factorisation (a truncated SVD of the user x item
weights before the cutoff, `--factors` components; `kawa.recommend.factorise`), and two baselines:
`popular`, the items most interacted with in the last 14 days (the user's bought items
left out), the same list for everyone; `seen items`, the user's own earlier items not bought, by
strongest event then newest. Seconds are wall time of the fit and the evaluation, on a fresh DuckDB
connection over the lake, threads=2 (the SVD's include the CF fit it shares its connection with).
The summary line also times a fit on every event that lists the top 20 of every user, as the
pipeline does.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb

from benchmarks._peers_events import write_events
from benchmarks._peers_kawa import Clock, machine, save, table
from kawa.demo import ShopConfig, generate, iter_ndjson_batches
from kawa.events.schema import EVENTS_SCHEMA
from kawa.recommend import Options, evaluate, fit
from kawa.warehouse import Warehouse

# (label, options); the baselines come with every evaluation, reported from the first.
METHODS: list[tuple[str, dict[str, Any]]] = [
    ("CF cosine, user co-occurrence", {}),
    ("CF jaccard, user co-occurrence", {"similarity": "jaccard"}),
    ("CF cosine, session co-occurrence", {"scope": "session"}),
    ("CF jaccard, session co-occurrence", {"scope": "session", "similarity": "jaccard"}),
    ("CF cosine + seen items (seen=1)", {"seen": 1.0}),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--visitors", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--holdout-days", type=int, default=7)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--factors", type=int, default=32, help="rank of the SVD compared with CF")
    return parser.parse_args(argv)


def load_shop(config: ShopConfig, folder: Path) -> tuple[Warehouse, int]:
    """Generate the shop and write its events into a lake under `folder`, as the collector would."""
    shop = generate(config)
    ndjson = folder / "events.ndjson"
    with ndjson.open("wb") as f:
        for body in iter_ndjson_batches(shop, 5000):
            f.write(body)
    keys = "STRUCT(user_id VARCHAR, visitor_id VARCHAR, session_id VARCHAR)"
    columns = {
        "event_id": "VARCHAR",
        "event_name": "VARCHAR",
        "sync_date": "TIMESTAMP",  # UTC (the text ends in Z); naive, as DuckDB here has no ICU
        "keys": keys,
        "page": "VARCHAR",
        "item_id": "VARCHAR",
        "category": "VARCHAR",
        "price": "DOUBLE",
        "quantity": "BIGINT",
        "revenue": "DOUBLE",
    }
    db = duckdb.connect(config={"threads": 2})
    try:
        events = db.sql(
            f"""
            SELECT event_id, event_name, sync_date, sync_date AS received_at, keys, page, item_id,
                   category, price, quantity, revenue, NULL::VARCHAR AS properties, sync_date::DATE AS _date
            FROM read_json(?, format = 'newline_delimited', columns = {columns!r})
            ORDER BY sync_date, event_id
            """,
            params=[str(ndjson)],
        ).to_arrow_table()
    finally:
        db.close()
    ndjson.unlink()
    warehouse = Warehouse(folder / "lake", "bench")
    write_events(warehouse, events.cast(EVENTS_SCHEMA))
    return warehouse, events.num_rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = ShopConfig(
        users=args.users, days=args.days, items=args.items, visitors=args.visitors, seed=args.seed
    )
    report: dict[str, Any] = {"machine": machine(), "config": vars(args), "rows": []}
    with tempfile.TemporaryDirectory(prefix="kawa-recs-") as tmp:
        with Clock() as load:
            warehouse, events = load_shop(config, Path(tmp))
        newest = warehouse.query("SELECT max(sync_date) AS t FROM events WHERE event_name = 'purchase'")
        cutoff = newest.column("t")[0].as_py() - timedelta(days=args.holdout_days)
        report.update(events=events, load_seconds=load.wall, cutoff=cutoff.isoformat())
        print(
            f"{events:,} events ({args.users:,} users, {args.days} days, {args.items} items) "
            f"loaded in {load.wall:.1f} s"
        )
        print(f"holdout: purchases in the {args.holdout_days} days from {cutoff:%Y-%m-%d %H:%M} UTC")
        first = None
        for label, options in METHODS:
            result = evaluate(
                warehouse, Options(**options), cutoff=cutoff, horizon_days=args.holdout_days, k=args.k
            )
            first = first or result
            report["rows"].append(
                {"method": label, "options": options, **_row(result, "cf"), "seconds": result.seconds}
            )
            print(f"  {label}: {result.seconds:.1f} s")
        assert first is not None
        svd = evaluate(
            warehouse,
            Options(),
            cutoff=cutoff,
            horizon_days=args.holdout_days,
            k=args.k,
            factors=args.factors,
        )
        report["rows"].append(
            {
                "method": f"SVD, {args.factors} factors (implicit MF)",
                **_row(svd, "svd"),
                "seconds": svd.seconds,
            }
        )
        for label, method in (("popular items (baseline)", "popular"), ("seen items (baseline)", "seen")):
            report["rows"].append({"method": label, **_row(first, method), "seconds": None})
        report.update(users=first.users, relevant=first.relevant)
        with Clock() as full:
            fitted = fit(warehouse, Options(), n=20)
        report["full_fit"] = {
            "seconds": full.wall,
            "users": len(set(fitted.user_recommendations.column("user_id").to_pylist())),
            "similar_pairs": fitted.item_similarity.num_rows,
        }
    return report


def _row(result: Any, method: str) -> dict[str, float]:
    m = result.metrics
    return {
        "recall": m[f"{method}_recall"],
        "ndcg": m[f"{method}_ndcg"],
        "new_recall": m[f"{method}_new_recall"],
        "coverage": m[f"{method}_coverage"],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    report = run(args)
    k = args.k
    print(
        f"\n{report['users']:,} users measured, {report['relevant']:,} (user, item) purchases to find; "
        f"{report['full_fit']['seconds']:.1f} s to fit on every event and list the top 20 of "
        f"{report['full_fit']['users']:,} users"
    )
    rows = [
        (r["method"], [r["recall"], r["ndcg"], r["new_recall"], r["coverage"], r["seconds"]])
        for r in report["rows"]
    ]
    print(table(rows, [f"recall@{k}", f"NDCG@{k}", f"new recall@{k}", "coverage", "seconds"]))
    report["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal {report['total_seconds']:.0f} s; results in {save('recommendations', report)}")


if __name__ == "__main__":
    main()
