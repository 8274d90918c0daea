"""Recommendations: item-to-item collaborative filtering over the events, served per user.

Steps: check the options -> evaluate on a time-split holdout (fit on the events before the last
`holdout_days` of purchases, measure recall@k / NDCG@k of the next period's purchases next to the
popularity baseline, logged as run metrics) -> fit on every event and write the warehouse tables
`item_similarity`, `user_recommendations` and `popular_items` -> publish each user's top `top_n`, and
the popular items for everyone else, to the prediction store, which
`GET /v1/recommendations/{user_id}?n=10` reads.

Use it in a project's pipelines.py: `from kawa.templates.recommend import recommendations`; run it
with `kawa pipeline run recommendations` (override e.g. `-p similarity=jaccard -p scope=session`).
All of it is SQL in the warehouse (kawa.recommend); see docs/recommendations.md.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import msgspec
import pyarrow.compute as pc

from kawa.pipelines import Pipeline, RunContext, step
from kawa.recommend import Options, evaluate, fit
from kawa.recommend.store import publish
from kawa.templates.catalog import Template

TABLES = ("item_similarity", "user_recommendations", "popular_items")


@step
def options(
    weights: dict[str, float],
    similarity: str,
    scope: str,
    neighbours: int,
    recent: int,
    seen: float,
    max_basket: int,
    purchase_event: str,
    exclude_purchased: bool,
    popular_days: int,
    fill_popular: bool,
) -> dict[str, Any]:
    """The fit's options, checked before any work (a typo in `similarity` fails here, with the choices)."""
    checked = Options.from_params(
        {
            "weights": weights,
            "similarity": similarity,
            "scope": scope,
            "neighbours": neighbours,
            "recent": recent,
            "seen": seen,
            "max_basket": max_basket,
            "purchase_event": purchase_event,
            "exclude_purchased": exclude_purchased,
            "popular_days": popular_days,
            "fill_popular": fill_popular,
        }
    )
    return msgspec.to_builtins(checked)  # type: ignore[no-any-return]


@step
def evaluated(
    ctx: RunContext, options: dict[str, Any], holdout_days: int, k: int, factors: int
) -> dict[str, Any]:
    """Holdout metrics: fit before the last `holdout_days` of purchases, score the purchases after.

    `factors` > 0 also measures an SVD of that rank (svd_recall_at_10, ...) for comparison.
    """
    opts = Options.from_params(options)
    quoted = opts.purchase_event.replace("'", "''")
    newest = (
        ctx.warehouse.query(f"SELECT max(sync_date) AS t FROM events WHERE event_name = '{quoted}'")
        .column("t")[0]
        .as_py()
    )
    if newest is None:
        print(f"no {opts.purchase_event!r} events yet: nothing to evaluate on; fitting anyway")
        return {"users": 0}
    cutoff = newest.astimezone(UTC) - timedelta(days=holdout_days) + timedelta(microseconds=1)
    result = evaluate(ctx.warehouse, opts, cutoff=cutoff, horizon_days=holdout_days, k=k, factors=factors)
    for name, value in result.as_run_metrics().items():
        ctx.log_metric(name, value if result.users else float("nan"))
    if result.users == 0:
        print(f"no user with earlier items bought in the {holdout_days} days from {cutoff:%Y-%m-%d %H:%M}")
    else:
        m = result.metrics
        print(
            f"holdout from {cutoff:%Y-%m-%d %H:%M} ({holdout_days} days, {result.users} users): "
            f"recall@{k} {m['cf_recall']:.3f} vs popular {m['popular_recall']:.3f}, "
            f"NDCG@{k} {m['cf_ndcg']:.3f} vs popular {m['popular_ndcg']:.3f}"
        )
    return {"cutoff": cutoff.isoformat(), "users": result.users, **result.metrics}


@step(memory="2GB")
def fitted(ctx: RunContext, options: dict[str, Any], evaluated: dict[str, Any], top_n: int) -> dict[str, Any]:
    """Fit on every event; replace the item_similarity, user_recommendations and popular_items tables."""
    result = fit(ctx.warehouse, Options.from_params(options), n=top_n)
    for name in TABLES:
        ctx.write_table(name, getattr(result, name))
    ctx.log_metric(
        "items_with_neighbours", pc.count_distinct(result.item_similarity.column("item_id")).as_py()
    )
    users = pc.count_distinct(result.user_recommendations.column("user_id")).as_py()
    ctx.log_metric("users_with_recommendations", users)
    ctx.outputs["tables"] = list(TABLES)
    return {"similar_pairs": result.item_similarity.num_rows, "rows": result.user_recommendations.num_rows}


@step(cache=False)
def published(ctx: RunContext, fitted: dict[str, Any], top_n: int) -> dict[str, int]:
    """Every user's list, and the popular items under the reserved key, to the prediction store."""
    counts = publish(
        ctx.online,
        ctx.project,
        ctx.read_table("user_recommendations"),
        ctx.read_table("popular_items"),
        n=top_n,
    )
    ctx.log_metric("published_users", counts["users"])
    print(
        f"published {counts['users']} users' lists and {counts['popular']} popular items "
        f"(version {counts['version']}; {counts['removed']} users no longer listed removed)"
    )
    return counts


recommendations = Pipeline(
    "recommendations",
    steps=[options, evaluated, fitted, published],
    params={
        **msgspec.to_builtins(Options()),
        "top_n": 20,
        "holdout_days": 7,
        "k": 10,
        "factors": 0,
    },
    description="Item-to-item collaborative filtering: similar items and each user's top-N, with a holdout",
)

TEMPLATE = Template(
    name="recommendations",
    summary="item-to-item collaborative filtering in SQL: each user's top N items, served per user",
    pipelines=("recommendations",),
)
