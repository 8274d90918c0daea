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
from kawa.models import Registry
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
    if entity not in rows.column_names:
        raise BatchPredictError(
            f"the query has no column {entity!r}; it returns {', '.join(rows.column_names)}"
        )
    scores = bundle.predict_table(rows)
    if scores.ndim != 1:
        raise BatchPredictError(
            "batch prediction writes one score per row; multi-class models are not supported"
        )
    computed_at = datetime.now(UTC)
    keys = pc.cast(rows.column(entity), pa.string())
    out = pa.table(
        {
            entity: keys,
            "score": pa.array(scores, pa.float64()),
            "model_version": pa.array(np.full(len(scores), version, dtype=np.int64)),
            "computed_at": pa.array(
                np.full(len(scores), np.datetime64(computed_at.replace(tzinfo=None), "us"))
            ).cast(pa.timestamp("us", tz="UTC")),
        }
    )
    write_table(warehouse, output, out, partition={"run_date": day})
    published = 0
    if store is not None:
        stamp = computed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        published = store.put_many(
            project,
            model,
            (
                (k, Prediction(score=s, model_version=version, computed_at=stamp))
                for k, s in zip(keys.to_pylist(), scores.tolist(), strict=True)
                if k is not None
            ),
        )
    return BatchResult(model, version, output, day, out.num_rows, published, time.perf_counter() - started)
