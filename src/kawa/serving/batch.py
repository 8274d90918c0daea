"""Batch prediction: a SQL query in, a warehouse table out (one partition per run date), and the
prediction store updated so the product reads each entity's score by key."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kawa.lake.table import check_name
from kawa.models import Bundle, Registry
from kawa.serving.store import Prediction, PredictionStore
from kawa.warehouse import Warehouse
from kawa.warehouse.load import write_table


@dataclass(frozen=True)
class BatchResult:
    model: str
    version: int
    table: str
    run_date: str
    rows: int
    published: int
    seconds: float


class BatchPredictError(ValueError):
    """The query's rows cannot be scored as asked; the message says why."""


def batch_predict(
    warehouse: Warehouse,
    registry: Registry,
    model: str,
    query: str,
    *,
    entity: str,
    output: str | None = None,
    run_date: date | None = None,
    version: int | None = None,
    alias: str = "production",
    store: PredictionStore | None = None,
) -> BatchResult:
    """Score every row of `query` and write (entity, score, model_version, computed_at) to `output`.

    The table is partitioned by `run_date`; a rerun for the same date replaces its partition, never
    appends. With `store`, each entity's newest score is also published to the prediction store.
    """
    started = time.perf_counter()
    project = warehouse.project
    if version is None:
        version = registry.resolve(project, model, alias)
    bundle = registry.load(project, model, version)
    output = check_name("table", output or f"{model.replace('-', '_').replace('.', '_')}_predictions")
    day = (run_date or datetime.now(UTC).date()).isoformat()
    rows = warehouse.query(query)
    scores = score_rows(bundle, rows, entity)
    computed_at = datetime.now(UTC)
    out = prediction_rows(rows.column(entity), scores, version, computed_at, entity)
    write_table(warehouse, output, out, partition={"run_date": day})
    published = 0
    if store is not None:
        published = publish_scores(store, project, model, version, computed_at, out, entity)
    return BatchResult(model, version, output, day, out.num_rows, published, time.perf_counter() - started)


def score_rows(bundle: Bundle, rows: pa.Table, entity: str) -> np.ndarray:
    """One score per row of `rows`, which must have the `entity` column; BatchPredictError if not."""
    if entity not in rows.column_names:
        raise BatchPredictError(
            f"the query has no column {entity!r}; it returns {', '.join(rows.column_names)}"
        )
    scores = bundle.predict_table(rows)
    if scores.ndim != 1:
        raise BatchPredictError(
            "batch prediction writes one score per row; multi-class models are not supported"
        )
    return scores


def prediction_rows(
    keys: pa.Array | pa.ChunkedArray, scores: np.ndarray, version: int, computed_at: datetime, entity: str
) -> pa.Table:
    """The output rows (entity as text, score, model_version, computed_at), typed as every run has them."""
    return pa.table(
        {
            entity: pc.cast(keys, pa.string()),
            "score": pa.array(scores, pa.float64()),
            "model_version": pa.array(np.full(len(scores), version, dtype=np.int64)),
            "computed_at": pa.array(
                np.full(len(scores), np.datetime64(computed_at.replace(tzinfo=None), "us"))
            ).cast(pa.timestamp("us", tz="UTC")),
        }
    )


def publish_scores(
    store: PredictionStore,
    project: str,
    model: str,
    version: int,
    computed_at: datetime,
    out: pa.Table,
    entity: str,
) -> int:
    """Put each row of `out` (as `prediction_rows` makes it) in the prediction store; how many were put."""
    stamp = computed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    keys, scores = out.column(entity).to_pylist(), out.column("score").to_pylist()
    return store.put_many(
        project,
        model,
        (
            (k, Prediction(score=s, model_version=version, computed_at=stamp))
            for k, s in zip(keys, scores, strict=True)
            if k is not None
        ),
    )
