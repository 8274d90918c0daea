"""Batch prediction split over a lake table's Parquet files across Ray workers, published at once.

The same output as `batch_predict` (entity, score, model_version, computed_at, in the `run_date`
partition of the output table; a rerun for the date replaces it), made in pieces: the input table's
files, cut at their row groups, are packed into groups of about `rows_per_task` rows; a Ray task per
group reads its rows, runs the row-by-row `query` over them, scores them with the bundle (put once in
Ray's object store, loaded once per task) and writes its part of the output partition. The parts are
published by this process in one manifest commit, so readers see the old partition or the whole new
one, never a part of it; then each entity's score goes to the prediction store.

Exactly once, also when a worker dies: a task's part file is named by the job and the group and
written atomically (a temporary file renamed into place), so the retry Ray starts for a task whose
worker died writes the same file again instead of adding one; parts go into the table only through
the final commit, so a job that fails publishes nothing.

The workers read the input files and write the parts where this process sees them (same machine, or
a shared file system mounted at the same path).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kawa._durable import publish
from kawa.lake.table import DataFile, LakeTable, check_name
from kawa.models import Bundle, Registry
from kawa.serving.batch import (
    BatchPredictError,
    BatchResult,
    batch_predict,
    prediction_rows,
    publish_scores,
    score_rows,
)
from kawa.serving.store import PredictionStore
from kawa.warehouse import Warehouse
from kawa.warehouse.load import write_table

PARTITION = "run_date"
TASK_NAME = "kawa-batch-predict"


@dataclass(frozen=True)
class Piece:
    """Some row groups of one Parquet file of the input table."""

    path: str
    row_groups: list[int]
    rows: int


def plan(lake: LakeTable, partition: Mapping[str, str] | None, rows_per_task: int) -> list[list[Piece]]:
    """The input table's current files (of `partition` only, if given) cut into groups of ~`rows_per_task`.

    A file is cut at its row groups; groups keep the files' order, so a rerun plans the same groups.
    """
    wanted = dict(partition) if partition else None
    groups: list[list[Piece]] = []
    current: list[Piece] = []
    size = 0
    for f in lake.manifest().files:
        if wanted is not None and f.partition != wanted:
            continue
        path = str(lake.path / f.path)
        meta = pq.ParquetFile(path).metadata
        for rg in range(meta.num_row_groups):
            rows = meta.row_group(rg).num_rows
            if current and size + rows > rows_per_task:
                groups.append(current)
                current, size = [], 0
            if current and current[-1].path == path:
                last = current[-1]
                current[-1] = Piece(path, [*last.row_groups, rg], last.rows + rows)
            else:
                current.append(Piece(path, [rg], rows))
            size += rows
    if current:
        groups.append(current)
    return groups


def predict_table(
    warehouse: Warehouse,
    registry: Registry,
    model: str,
    table: str,
    *,
    entity: str,
    executor: str = "local",
    rows_per_task: int = 250_000,
    **options: Any,
) -> BatchResult:
    """Score every row of warehouse table `table`: on Ray (`distributed_batch_predict`, tasks of about
    `rows_per_task` rows) when `executor`, kawa.yaml's `stores.executor`, names Ray, else in this
    process (`batch_predict` over the whole table). Both write the same rows.

    `options`: output, run_date, version, alias, store (as `batch_predict` takes them).
    """
    from kawa.pipelines.executor import ray_address

    address = ray_address(executor)
    if address is None:
        check_name("table", table)
        return batch_predict(warehouse, registry, model, f'SELECT * FROM "{table}"', entity=entity, **options)
    return distributed_batch_predict(
        warehouse,
        registry,
        model,
        table,
        entity=entity,
        address=address,
        rows_per_task=rows_per_task,
        **options,
    )


def distributed_batch_predict(
    warehouse: Warehouse,
    registry: Registry,
    model: str,
    table: str,
    *,
    entity: str,
    query: str | None = None,
    partition: Mapping[str, str] | None = None,
    output: str | None = None,
    run_date: date | None = None,
    version: int | None = None,
    alias: str = "production",
    store: PredictionStore | None = None,
    rows_per_task: int = 250_000,
    cpus_per_task: float = 1.0,
    address: str = "auto",
) -> BatchResult:
    """Score every row of warehouse table `table` on Ray and write the `run_date` partition of `output`.

    `query` (default `SELECT * FROM <table>`) runs over each group's rows under the table's name, so
    it must work row by row: choose, compute and filter columns, but no aggregates, joins, ORDER BY or
    LIMIT across rows. `partition` ({"column": "value"}) reads only that partition of the input.
    `address` is the Ray cluster to use when this process is not connected yet (`auto`: RAY_ADDRESS,
    or the cluster started on this machine). Returns what `batch_predict` returns.
    """
    import ray

    from kawa.pipelines.ray_executor import connect

    started = time.perf_counter()
    project = warehouse.project
    if version is None:
        version = registry.resolve(project, model, alias)
    bundle = registry.load(project, model, version)
    check_name("table", table)
    if table not in warehouse.tables():
        raise LookupError(f"no table {table!r} in the warehouse; tables: {', '.join(warehouse.tables())}")
    output = check_name("table", output or f"{model.replace('-', '_').replace('.', '_')}_predictions")
    day = (run_date or datetime.now(UTC).date()).isoformat()
    target = warehouse.table(output)
    current = target.manifest()
    if current.files and current.partition_by != [PARTITION]:
        raise BatchPredictError(
            f"table {output!r} is partitioned by {', '.join(current.partition_by) or 'nothing'}, not "
            f"{PARTITION}; write the predictions under another name with output="
        )
    groups = plan(warehouse.table(table), partition, rows_per_task)
    computed_at = datetime.now(UTC)
    if not groups:  # nothing to score: an empty partition, as batch_predict writes
        empty = prediction_rows(pa.array([], pa.string()), np.empty(0), version, computed_at, entity)
        write_table(warehouse, output, empty, partition={PARTITION: day})
        return BatchResult(model, version, output, day, 0, 0, time.perf_counter() - started)
    connect(address)
    job = uuid.uuid4().hex[:12]
    paths = [target.new_file({PARTITION: day}, f"part-{job}-{i:05d}.parquet") for i in range(len(groups))]
    task = ray.remote(score_group).options(
        name=TASK_NAME, num_cpus=cpus_per_task, max_retries=3, retry_exceptions=False
    )
    shared = ray.put(bundle)  # once into the object store; each task loads it once
    spec = {
        "table": table,
        "query": query or f'SELECT * FROM "{table}"',
        "entity": entity,
        "version": version,
        "computed_at": computed_at.isoformat(),
        "day": day,
    }
    refs = [task.remote(shared, pieces, spec, str(path)) for pieces, path in zip(groups, paths, strict=True)]
    try:
        parts: list[dict[str, Any]] = ray.get(refs)
    except BaseException as exc:
        for ref in refs:
            ray.cancel(ref, force=True)
        for path in paths:
            path.unlink(missing_ok=True)  # written by tasks of a job that publishes nothing
        _remove_unfinished(paths)
        cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
        if isinstance(cause, BatchPredictError):
            raise BatchPredictError(str(cause)) from None
        if isinstance(exc, ray.exceptions.RayError):
            lines = str(exc).strip().splitlines() or ["no details"]
            raise RuntimeError(
                f"batch prediction of {model} v{version} over {table!r} failed on Ray and published nothing "
                f"({type(exc).__name__}: {lines[0]}); {output!r} keeps its previous {PARTITION}={day} rows, "
                "run it again"
            ) from None
        raise
    _remove_unfinished(paths)  # the pieces a task killed mid-write (and then retried) left behind
    files = [
        DataFile(
            path=str(Path(p["path"]).relative_to(target.path)),
            rows=p["rows"],
            bytes=p["bytes"],
            partition={PARTITION: day},
        )
        for p in parts
    ]
    target.commit(files, replace_partitions=[{PARTITION: day}], partition_by=[PARTITION])
    rows = sum(p["rows"] for p in parts)
    published = _publish(store, project, model, version, computed_at, entity, [p["path"] for p in parts])
    return BatchResult(model, version, output, day, rows, published, time.perf_counter() - started)


def score_group(bundle: Bundle, pieces: list[Piece], spec: dict[str, Any], path: str) -> dict[str, Any]:
    """The Ray task: score one group of the input and write it to `path` atomically; its rows and size."""
    import duckdb

    tables = [pq.ParquetFile(p.path).read_row_groups(p.row_groups) for p in pieces]
    rows = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    db = duckdb.connect(config={"threads": 1})
    try:
        db.register(spec["table"], rows)
        # The query reads only the rows handed to it: no files, no settings changed back.
        db.execute("SET enable_external_access = false")
        db.execute("SET lock_configuration = true")
        selected = db.sql(spec["query"]).to_arrow_table()
    finally:
        db.close()
    scores = score_rows(bundle, selected, spec["entity"])
    computed_at = datetime.fromisoformat(spec["computed_at"])
    out = prediction_rows(
        selected.column(spec["entity"]), scores, spec["version"], computed_at, spec["entity"]
    )
    out = out.append_column(PARTITION, pa.array([spec["day"]] * out.num_rows, pa.string()))
    # A retry of this task (its worker died) writes the same name again: one part per group, ever.
    tmp = Path(f"{path}.{os.getpid()}.tmp")
    pq.write_table(out, tmp, compression="zstd")
    publish(tmp, Path(path))
    return {"path": path, "rows": out.num_rows, "bytes": Path(path).stat().st_size}


def _remove_unfinished(paths: list[Path]) -> None:
    for path in paths:
        for tmp in path.parent.glob(f"{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _publish(
    store: PredictionStore | None,
    project: str,
    model: str,
    version: int,
    computed_at: datetime,
    entity: str,
    paths: list[str],
) -> int:
    """Each entity's score to the prediction store, read back from the published parts."""
    if store is None:
        return 0
    return sum(
        publish_scores(
            store, project, model, version, computed_at, pq.read_table(p, columns=[entity, "score"]), entity
        )
        for p in paths
    )
