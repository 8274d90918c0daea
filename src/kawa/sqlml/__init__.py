"""Models in SQL: BigQuery-ML-style CREATE MODEL, DROP MODEL and ML.PREDICT / ML.EVALUATE /
ML.CENTROIDS over the project's warehouse, with every model a registry version (docs/sql-models.md).

    CREATE OR REPLACE MODEL rfm_cluster
      OPTIONS (model_type = 'kmeans', num_clusters = 4, standardize_features = TRUE) AS
    SELECT SUM(revenue) monetary, COUNT(*) frequency, MAX(_date) recency
    FROM events WHERE event_name = 'purchase' GROUP BY keys.visitor_id;

    SELECT centroid_id, count(*) FROM ML.PREDICT(MODEL rfm_cluster, (SELECT ...)) GROUP BY 1
"""

from __future__ import annotations

import pyarrow as pa

from kawa.models import Registry
from kawa.sqlml.errors import SQLModelError
from kawa.sqlml.parse import mentions_models
from kawa.sqlml.session import Session
from kawa.warehouse import Warehouse


def run(warehouse: Warehouse, registry: Registry, sql: str, *, limit: int | None = None) -> pa.Table:
    """Run `sql` (one statement or several separated by ';') on `warehouse` and return the last
    statement's rows, at most `limit` of them. SQL without models goes to `Warehouse.query` unchanged."""
    if not mentions_models(sql):
        return warehouse.query(sql, limit=limit)
    with warehouse.connect() as db:
        return Session(db, registry, warehouse.project).script(sql, limit)


def run_sql(warehouse: Warehouse, registry: Registry, sql: str, limit: int) -> tuple[pa.Table, bool]:
    """`run`'s first `limit` rows, and whether there were more."""
    table = run(warehouse, registry, sql, limit=limit + 1)
    return table.slice(0, limit), table.num_rows > limit


__all__ = ["SQLModelError", "mentions_models", "run", "run_sql"]
