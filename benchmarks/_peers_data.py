"""Synthetic scoring data for the ML benchmarks: RFM-style feature rows like the demo's, and models on them.

The table has what the loyalty template feeds its model: 14 numeric RFM and engagement features
(some NULL, as they are for users who never bought), one categorical (`channel`), a `user_id` and a
0/1 `label` drawn from a known logistic model, so the fitted models learn something real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NUMERIC = [
    "days_since_last_purchase",
    "purchases_30d",
    "purchases_90d",
    "revenue_30d",
    "revenue_90d",
    "avg_order_value_90d",
    "views_7d",
    "views_30d",
    "cart_adds_30d",
    "cart_removes_30d",
    "sessions_30d",
    "categories_viewed",
    "days_since_last_seen",
    "days_since_first_seen",
]
CATEGORICAL = ["channel"]
CHANNELS = ["web", "ios", "android", "email", "ads"]
FEATURES = NUMERIC + CATEGORICAL


def feature_table(rows: int, seed: int = 7) -> pa.Table:
    """`rows` users with RFM-style features and a label, as an Arrow table."""
    rng = np.random.default_rng(seed)
    activity = rng.gamma(1.2, 1.0, rows)  # how engaged each user is
    views_30d = rng.poisson(activity * 12)
    views_7d = rng.binomial(views_30d, 0.25)
    sessions_30d = rng.poisson(activity * 3)
    cart_adds_30d = rng.binomial(views_30d, 0.12)
    cart_removes_30d = rng.binomial(cart_adds_30d, 0.3)
    purchases_90d = rng.poisson(activity * 0.8)
    purchases_30d = rng.binomial(purchases_90d, 0.35)
    order_value = rng.lognormal(3.5, 0.6, rows).round(2)
    revenue_90d = (purchases_90d * order_value).round(2)
    revenue_30d = (purchases_30d * order_value).round(2)
    bought = purchases_90d > 0
    days_since_first = rng.uniform(1, 180, rows)
    days_since_seen = np.minimum(rng.exponential(10 / (activity + 0.1)), days_since_first)
    days_since_purchase = np.minimum(rng.uniform(0, 90, rows) + days_since_seen, days_since_first)
    categories = np.minimum(rng.poisson(1 + activity * 2), 20)
    channel = rng.choice(len(CHANNELS), rows, p=[0.45, 0.2, 0.2, 0.1, 0.05])
    z = (
        -2.2
        + 0.55 * np.log1p(purchases_90d)
        + 0.4 * np.log1p(views_7d)
        - 0.03 * days_since_seen
        + 0.25 * (channel == 1)
        + 0.15 * np.log1p(cart_adds_30d)
    )
    label = (rng.random(rows) < 1 / (1 + np.exp(-z))).astype(np.int64)
    ids = pc.binary_join_element_wise("u", pc.cast(pa.array(np.arange(rows)), pa.string()), "")
    no_purchase = ~bought
    columns: dict[str, Any] = {
        "user_id": ids,
        "days_since_last_purchase": pa.array(days_since_purchase, mask=no_purchase),
        "purchases_30d": purchases_30d,
        "purchases_90d": purchases_90d,
        "revenue_30d": revenue_30d,
        "revenue_90d": revenue_90d,
        "avg_order_value_90d": pa.array(np.where(bought, order_value, 0.0), mask=no_purchase),
        "views_7d": views_7d,
        "views_30d": views_30d,
        "cart_adds_30d": cart_adds_30d,
        "cart_removes_30d": cart_removes_30d,
        "sessions_30d": sessions_30d,
        "categories_viewed": categories,
        "days_since_last_seen": days_since_seen,
        "days_since_first_seen": days_since_first,
        "channel": pa.DictionaryArray.from_arrays(channel.astype(np.int32), CHANNELS).cast(pa.string()),
        "label": label,
    }
    return pa.table(columns)


def as_matrix(table: pa.Table) -> np.ndarray:
    """The features as one float64 matrix (NULL as NaN; `channel` as its code), for the bare baselines."""
    cols = [table.column(c).to_numpy().astype(np.float64) for c in NUMERIC]
    codes = pc.index_in(table.column("channel"), value_set=pa.array(CHANNELS)).to_numpy(zero_copy_only=False)
    cols.append(np.asarray(codes, dtype=np.float64))
    return np.column_stack(cols)


def sklearn_pipeline(kind: str = "logistic") -> Any:
    """The bare scikit-learn pipeline with kawa's preprocessing: median fill plus a missing flag and
    scaling for numbers, one-hot for the channel; then the estimator. Takes `as_matrix` output."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    n = len(NUMERIC)
    numbers = Pipeline(
        [("fill", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]
    )
    prep = ColumnTransformer(
        [("num", numbers, list(range(n))), ("cat", OneHotEncoder(handle_unknown="ignore"), [n])],
        sparse_threshold=0.0,
    )
    if kind != "logistic":
        raise ValueError(f"unknown pipeline kind {kind!r}")
    return Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=500))])


def write_parquet(table: pa.Table, path: Path) -> Path:
    """`table` as one Parquet file (the hand-over format to the peers' own virtualenvs)."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path
