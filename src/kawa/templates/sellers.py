"""Suspicious sellers: which listings are mass-produced re-listings, and which sellers post them?

Some sellers flood a shop with the same cheap product listed over and over, each copy with its title's
keywords shuffled, a new colour and a "Hot Sale" or "Free Shipping" in front, and often pushed up the
charts by click farms. Moderators label listings by hand (mass-produced or not); this template learns
from those labels to rank every item and every seller of the catalogue.

The input is the shop's item catalogue (`items_sql`: item_id, title, category, price, seller_id, as a
real shop keeps it in its warehouse) with the moderators' labels (`labels_sql`: item_id, label, true
for mass-produced; items without a label are scored but not learned from), plus each item's views and
buyers from the events. The demo shop's catalogue and labels are its `demo_items` table.

Steps: item features in SQL (price and price against the category's median, title length, how close
the title is to the seller's other titles, views, buyers per viewer) with seller aggregates (items
listed, categories, median price ratio, title closeness) -> a logistic regression whose bundle carries
the title's TF-IDF of character n-grams, next to a price-only logistic regression baseline, both
evaluated out of fold with the folds grouped by seller (no seller's items in both the training and the
scored part of a fold: a model must spot new sellers, not remember old ones): AUC, average precision
and precision@k (k = the number of mass-produced items, or of sellers with one) of items and of sellers
-> fitted on every labelled item, registered, and promoted to `promote_to` when it beats the baseline
-> every item scored (`suspicious_item_scores`) and every seller (`seller_scores`: the mean of its
items' scores, its rank, and `suspicious` at `threshold`), both published to the prediction store.

Use it in a project's pipelines.py: `from kawa.templates.sellers import suspicious_sellers`;
run it with `kawa pipeline run suspicious_sellers` (override e.g. `-p threshold=0.7`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.models import Bundle, Text
from kawa.models.metrics import auc
from kawa.pipelines import Pipeline, RunContext, step
from kawa.serving.batch import batch_predict, prediction_rows, publish_scores
from kawa.serving.store import PredictionStore
from kawa.templates.catalog import Template
from kawa.warehouse import Warehouse
from kawa.warehouse.load import write_table

MODEL = "suspicious_items"  # the item classifier
SELLER_MODEL = "suspicious_sellers"  # where seller scores are published in the prediction store
LABEL = "label"
TITLE = Text(ngrams=(2, 4), max_features=500)
FEATURES = (
    "title",
    "category",
    "price",
    "price_ratio",
    "title_chars",
    "title_twin",
    "views",
    "buyers_per_viewer",
    "seller_items",
    "seller_categories",
    "seller_price_ratio",
    "seller_title_twin",
)
BASELINE = ("price",)

# One row per catalogue item. `title_twin` is the word overlap (Jaccard) of the title with the closest
# other title of the same seller: re-listings of one product are near twins, a seller's distinct
# products are not. Activity counts the `days` before the newest event.
ITEM_FEATURES = """
WITH catalogue AS (
    SELECT item_id::VARCHAR AS item_id, title::VARCHAR AS title, category::VARCHAR AS category,
           price::DOUBLE AS price, seller_id::VARCHAR AS seller_id
    FROM ({items})
),
-- An item labelled more than once is mass-produced if any label says so.
labels AS (
    SELECT item_id::VARCHAR AS item_id, max(CAST(label AS INTEGER)) AS label FROM ({labels}) GROUP BY 1
),
newest AS (SELECT max(sync_date) AS t FROM events),
activity AS (
    SELECT item_id::VARCHAR AS item_id,
           count(*) FILTER (WHERE event_name = 'view') AS views,
           count(DISTINCT keys.visitor_id) FILTER (WHERE event_name = 'view') AS viewers,
           count(DISTINCT keys.visitor_id) FILTER (WHERE event_name = 'purchase') AS buyers
    FROM events, newest
    WHERE item_id IS NOT NULL AND sync_date > newest.t - to_days({days})
    GROUP BY 1
),
category_prices AS (SELECT category, median(price) AS category_price FROM catalogue GROUP BY 1),
words AS (
    SELECT item_id, seller_id, list_distinct(string_split(lower(trim(title)), ' ')) AS w FROM catalogue
),
twins AS (
    SELECT a.item_id,
           max(len(list_intersect(a.w, b.w)) / len(list_distinct(list_concat(a.w, b.w)))) AS title_twin
    FROM words a JOIN words b ON a.seller_id = b.seller_id AND a.item_id <> b.item_id
    GROUP BY 1
),
items AS (
    SELECT c.item_id, c.seller_id, c.title, c.category, c.price,
           c.price / nullif(p.category_price, 0) AS price_ratio,
           length(c.title)::DOUBLE AS title_chars, coalesce(t.title_twin, 0.0) AS title_twin,
           coalesce(a.views, 0)::DOUBLE AS views,
           coalesce(a.buyers, 0) / greatest(coalesce(a.viewers, 0), 1)::DOUBLE AS buyers_per_viewer,
           l.label
    FROM catalogue c
    LEFT JOIN category_prices p USING (category)
    LEFT JOIN twins t ON t.item_id = c.item_id
    LEFT JOIN activity a ON a.item_id = c.item_id
    LEFT JOIN labels l ON l.item_id = c.item_id
),
sellers AS (
    SELECT seller_id, count(*)::DOUBLE AS seller_items, count(DISTINCT category)::DOUBLE AS seller_categories,
           median(price_ratio) AS seller_price_ratio, avg(title_twin) AS seller_title_twin
    FROM items GROUP BY 1
)
SELECT i.*, s.seller_items, s.seller_categories, s.seller_price_ratio, s.seller_title_twin
FROM items i JOIN sellers s USING (seller_id)
ORDER BY i.item_id
"""


@step
def items(ctx: RunContext, items_sql: str, labels_sql: str, days: int) -> pa.Table:
    """The features of every catalogue item, its seller's aggregates and its label (null: unlabelled)."""
    table = item_features(ctx.warehouse, items_sql, labels_sql, days)
    labelled = table.filter(pc.is_valid(table.column(LABEL)))
    if labelled.num_rows == 0:
        raise ValueError("labels_sql labels none of the catalogue's items; match its item_id to items_sql's")
    positives = int(pc.sum(labelled.column(LABEL)).as_py() or 0)
    if positives == 0 or positives == labelled.num_rows:
        raise ValueError(
            f"the {labelled.num_rows} labelled items of labels_sql are all "
            f"{'clean' if positives == 0 else 'mass-produced'}: a classifier needs both; label some of each"
        )
    ctx.log_metric("items", table.num_rows)
    ctx.log_metric("sellers", pc.count_distinct(table.column("seller_id")).as_py())
    ctx.log_metric("labelled_items", labelled.num_rows)
    ctx.log_metric("positive_rate", positives / labelled.num_rows)
    return table


def item_features(warehouse: Warehouse, items_sql: str, labels_sql: str, days: int) -> pa.Table:
    """`ITEM_FEATURES` over the catalogue and labels; ValueError naming a missing column, or no items."""
    for name, query, needed in (
        ("items_sql", items_sql, ("item_id", "title", "category", "price", "seller_id")),
        ("labels_sql", labels_sql, ("item_id", LABEL)),
    ):
        found = warehouse.query(f"SELECT * FROM ({query}) LIMIT 0").column_names
        missing = [c for c in needed if c not in found]
        if missing:
            raise ValueError(
                f"{name} returns {', '.join(found)} but not {', '.join(missing)}; it must return "
                f"{', '.join(needed)} (rename columns with AS)"
            )
    table = warehouse.query(ITEM_FEATURES.format(items=items_sql, labels=labels_sql, days=int(days)))
    if table.num_rows == 0:
        raise ValueError("items_sql returns no items; point it at the shop's item catalogue")
    distinct = pc.count_distinct(table.column("item_id")).as_py()
    if distinct != table.num_rows:
        raise ValueError(
            f"items_sql returns {table.num_rows} rows for {distinct} item_ids; return one row per item "
            "(e.g. the newest version of each listing)"
        )
    return table


def precision_at_k(y: np.ndarray, score: np.ndarray) -> float | None:
    """The share of positives among the k highest scores, k = the number of positives (1.0: perfect)."""
    k = int(y.sum())
    if k == 0:
        return None
    top = np.argsort(-score, kind="mergesort")[:k]
    return float(y[top].mean())


def ranking_metrics(prefix: str, y: np.ndarray, score: np.ndarray) -> dict[str, float | None]:
    """AUC, average precision and precision@k of one ranking, named `<prefix>auc` and so on."""
    from sklearn.metrics import average_precision_score

    ap = float(average_precision_score(y, score)) if 0 < y.sum() < y.size else None
    return {
        f"{prefix}auc": auc(y, score),
        f"{prefix}average_precision": ap,
        f"{prefix}precision_at_k": precision_at_k(y, score),
    }


def rankings(
    prefix: str, y: np.ndarray, seller_ids: np.ndarray, scores: np.ndarray
) -> dict[str, float | None]:
    """`ranking_metrics` of the items, and of their sellers (`<prefix>seller_auc`...): a seller's score is
    the mean of its items' scores, and it is suspicious if any of its items is labelled so."""
    _, seller_score = seller_means(seller_ids, scores)
    _, seller_y = seller_means(seller_ids, y.astype(float))
    return {
        **ranking_metrics(prefix, y, scores),
        **ranking_metrics(f"{prefix}seller_", (seller_y > 0).astype(np.int64), seller_score),
    }


def seller_means(sellers: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct sellers, and the mean of `values` over each one's items."""
    names, index = np.unique(sellers, return_inverse=True)
    return names, np.bincount(index, weights=values) / np.bincount(index)


def _fit(table: pa.Table, features: tuple[str, ...], seed: int) -> Bundle:
    from sklearn.linear_model import LogisticRegression

    estimator = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced", random_state=seed)
    kinds = {"title": TITLE} if "title" in features else {}
    return Bundle.fit(table.select([*features, LABEL]), label=LABEL, estimator=estimator, kinds=kinds)


def seller_folds(labelled: pa.Table, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, scored rows) of each fold: every seller's items fall in one fold's scored rows,
    and suspicious sellers are spread over the folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = labelled.column(LABEL).to_numpy()
    groups = labelled.column("seller_id").to_numpy(zero_copy_only=False)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def out_of_fold(labelled: pa.Table, features: tuple[str, ...], folds: int, seed: int) -> np.ndarray:
    """Each labelled item's score from a model fitted on the other folds' sellers."""
    scores = np.full(labelled.num_rows, np.nan)
    for train, test in seller_folds(labelled, folds, seed):
        part = labelled.take(pa.array(train))
        if pc.count_distinct(part.column(LABEL)).as_py() < 2:
            raise ValueError(
                f"a fold's training sellers hold labels of one kind; label items of more sellers or lower "
                f"folds (now {folds})"
            )
        scores[test] = _fit(part, features, seed).predict_table(labelled.take(pa.array(test)))
    return scores


@step(memory="2GB")
def evaluated(ctx: RunContext, items: pa.Table, folds: int, seed: int) -> dict[str, Any]:
    """Out-of-fold item and seller rankings of the model and the price-only baseline."""
    labelled = items.filter(pc.is_valid(items.column(LABEL)))
    y = labelled.column(LABEL).to_numpy().astype(np.int64)
    seller_ids = labelled.column("seller_id").to_numpy(zero_copy_only=False)
    suspicious = len(set(seller_ids[y == 1]))
    if suspicious < folds:
        raise ValueError(
            f"labelled items come from {suspicious} suspicious sellers, fewer than folds={folds}: each fold "
            "scores one with a model learned from the others; lower folds or label more sellers' items"
        )
    metrics: dict[str, Any] = {"folds": folds}
    for prefix, features in (("", FEATURES), ("baseline_", BASELINE)):
        metrics.update(rankings(prefix, y, seller_ids, out_of_fold(labelled, features, folds, seed)))
    metrics["k_items"], metrics["k_sellers"] = int(y.sum()), suspicious
    print(f"{'out of fold, by seller':<26}{'model':>10}{'baseline':>10}")
    for name in ("auc", "average_precision", "precision_at_k"):
        for level in ("", "seller_"):
            model, base = metrics[f"{level}{name}"], metrics[f"baseline_{level}{name}"]
            label = f"{'seller' if level else 'item'} {name}"
            print(f"{label:<26}{_show(model):>10}{_show(base):>10}")
            for key, value in ((f"{level}{name}", model), (f"baseline_{level}{name}", base)):
                if value is not None:
                    ctx.log_metric(key, value)
    return metrics


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@step
def registered(
    ctx: RunContext, items: pa.Table, evaluated: dict[str, Any], seed: int, promote_to: str
) -> dict[str, Any]:
    """The model fitted on every labelled item, registered; promoted only when it beats the baseline."""
    labelled = items.filter(pc.is_valid(items.column(LABEL)))
    bundle = _fit(labelled, FEATURES, seed)
    version = ctx.register_model(
        MODEL,
        bundle,
        metrics=evaluated,
        params={**ctx.params, "train_rows": labelled.num_rows},
        training={
            "label": "moderators' labels of mass-produced listings (labels_sql)",
            "features": ", ".join(FEATURES),
            "evaluation": f"{evaluated['folds']} folds grouped by seller, out of fold",
            "baseline": "logistic regression on the price alone",
        },
    )
    model, baseline = evaluated.get("auc"), evaluated.get("baseline_auc")
    beats = isinstance(model, float) and isinstance(baseline, float) and model > baseline
    if promote_to and beats:
        ctx.registry.promote(ctx.project, MODEL, version, promote_to)
    elif promote_to:
        print(f"not promoted: out-of-fold AUC {model} does not beat the price-only baseline {baseline}")
    return {"version": version, "promoted": bool(promote_to and beats)}


@step
def scored(ctx: RunContext, items: pa.Table, registered: dict[str, Any], threshold: float) -> dict[str, Any]:
    """Score every item and seller; write suspicious_item_scores and seller_scores, publish both."""
    newest = ctx.warehouse.query("SELECT max(sync_date) AS t FROM events").column("t")[0].as_py()
    run_date = (newest or datetime.now(UTC)).astimezone(UTC).date()
    write_table(ctx.warehouse, "suspicious_item_features", items)
    store = PredictionStore(ctx.online)
    result = batch_predict(
        ctx.warehouse,
        ctx.registry,
        MODEL,
        "SELECT * FROM suspicious_item_features",
        entity="item_id",
        output="suspicious_item_scores",
        run_date=run_date,
        version=registered["version"],
        store=store,
    )
    computed_at = datetime.now(UTC)
    scores = ctx.warehouse.query(
        f"SELECT f.seller_id, s.score FROM suspicious_item_scores s JOIN suspicious_item_features f "
        f"USING (item_id) WHERE s.run_date = '{result.run_date}' ORDER BY f.seller_id, s.item_id"
    )
    table = seller_rows(
        scores.column("seller_id").to_numpy(zero_copy_only=False),
        scores.column("score").to_numpy(),
        threshold,
        registered["version"],
        computed_at,
    )
    write_table(ctx.warehouse, "seller_scores", table, partition={"run_date": result.run_date})
    publish_scores(store, ctx.project, SELLER_MODEL, registered["version"], computed_at, table, "seller_id")
    suspicious = int(table.column("suspicious").to_numpy(zero_copy_only=False).sum())
    ctx.log_metric("scored_items", result.rows)
    ctx.log_metric("scored_sellers", table.num_rows)
    ctx.log_metric("suspicious_sellers", suspicious)
    ctx.outputs["tables"] = ["suspicious_item_features", "suspicious_item_scores", "seller_scores"]
    return {
        "items": result.rows,
        "sellers": table.num_rows,
        "suspicious": suspicious,
        "run_date": result.run_date,
    }


def seller_rows(
    sellers: np.ndarray, scores: np.ndarray, threshold: float, version: int, computed_at: datetime
) -> pa.Table:
    """One row per seller: the mean of its items' scores (`score`), how many items it lists and how many
    score `threshold` or more, its best item score, its rank (1: most suspicious) and `suspicious`."""
    names, mean = seller_means(sellers, scores)
    index = np.searchsorted(names, sellers)
    top = np.full(len(names), -np.inf)
    np.maximum.at(top, index, scores)
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(-mean, kind="mergesort")] = np.arange(1, len(names) + 1)
    table = prediction_rows(pa.array(names, pa.string()), mean, version, computed_at, "seller_id")
    extra = {
        "items": pa.array(np.bincount(index), pa.int64()),
        "flagged_items": pa.array(np.bincount(index, weights=scores >= threshold).astype(np.int64)),
        "max_item_score": pa.array(top, pa.float64()),
        "rank": pa.array(rank),
        "suspicious": pa.array(mean >= threshold),
    }
    for name, column in extra.items():
        table = table.append_column(name, column)
    return table


suspicious_sellers = Pipeline(
    "suspicious_sellers",
    steps=[items, evaluated, registered, scored],
    params={
        "items_sql": "SELECT item_id, title, category, price, seller_id FROM demo_items",
        "labels_sql": "SELECT item_id, is_mass_produced AS label FROM demo_items",
        "days": 28,
        "folds": 3,
        "seed": 0,
        "threshold": 0.5,
        "promote_to": "production",
    },
    description="Suspicious sellers: mass-produced listings from titles, prices and seller aggregates",
)

TEMPLATE = Template(
    name="suspicious_sellers",
    summary="mass-produced listings and the sellers behind them: TF-IDF titles + seller aggregates vs price",
    pipelines=("suspicious_sellers",),
)
