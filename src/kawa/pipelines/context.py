"""RunContext: what a step sees of its run (ids, parameters, stores) and how it records results."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kawa.pipelines._recording import RecordingWarehouse
from kawa.stores.artifacts.base import check_path

if TYPE_CHECKING:
    from kawa.models import Bundle, Registry
    from kawa.pipelines.sweep import SweepResult
    from kawa.runtime import Runtime
    from kawa.serving.batch import BatchResult
    from kawa.stores.artifacts import ArtifactStore
    from kawa.stores.online import OnlineStore
    from kawa.warehouse import Warehouse
    from kawa.warehouse.load import LoadResult

# The column a table written with `partition=ctx.logical_date` (or any date or text) is partitioned by.
PARTITION_COLUMN = "logical_date"


class RunContext:
    """Handed to a step that takes a `ctx: RunContext` parameter; one per step of a run.

    What a step reads and writes through it is recorded for lineage (`lineage`): tables it queries
    through `warehouse`, writes with `write_table` or reads with `read_table`, and models it loads with
    `load_model` or registers with `register_model`. `outputs` may name more by hand:
    `ctx.outputs["tables"] = ["scores"]`, or `ctx.outputs["model"] = {"name": "loyalty", "version": 3}`
    for a model version it registered (that one becomes the model_id and version of the run's status
    message).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        run_id: str,
        pipeline: str,
        experiment: str,
        project: str,
        step: str,
        params: dict[str, Any],
        logical_date: datetime,
    ) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.pipeline = pipeline
        self.experiment = experiment
        self.project = project
        self.step = step
        self.params = params
        self.logical_date = logical_date
        self.outputs: dict[str, Any] = {}
        self.metrics: dict[str, float | None] = {}
        self.artifact_paths: list[str] = []
        self.lineage: list[dict[str, Any]] = []
        self._lineage_lock = threading.Lock()  # a feature view's shards read from threads of their own
        self._warehouse: Warehouse | None = None
        self._registry: Registry | None = None

    @property
    def warehouse(self) -> Warehouse:
        """The project's warehouse (DuckDB over the lake); the tables queried are recorded as read."""
        if self._warehouse is None:
            self._warehouse = RecordingWarehouse(self.runtime.warehouse(self.project), self.record)
        return self._warehouse

    def write_table(
        self,
        name: str,
        data: Any,
        *,
        partition: datetime | date | str | Mapping[str, str] | None = None,
    ) -> LoadResult:
        """Replace warehouse table `name`, or only its `partition`, with `data` (Arrow or pandas), atomically.

        `partition=ctx.logical_date` makes a rerun for the same logical date replace the rows it wrote
        before instead of adding them again. A date, time or text partitions by the `logical_date`
        column; `{"column": "value"}` names the column.
        """
        from kawa.warehouse.load import write_table

        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        return write_table(self.warehouse, name, table, partition=partition_of(partition))

    def read_table(
        self, name: str, *, partition: datetime | date | str | Mapping[str, str] | None = None
    ) -> pa.Table:
        """The rows of warehouse table `name`, or of one `partition` of it; recorded as read."""
        import duckdb

        from kawa.lake.table import check_name

        lake = self.warehouse.table(check_name("table", name))
        manifest = lake.manifest()
        wanted = partition_of(partition)
        if not manifest.files and name not in self.warehouse.tables():
            raise LookupError(
                f"no table {name!r} in the warehouse; tables: {', '.join(self.warehouse.tables())}"
            )
        files = [str(lake.path / f.path) for f in manifest.files if wanted is None or f.partition == wanted]
        self.record(
            {
                "direction": "read",
                "kind": "table",
                "name": name,
                "partition": wanted,
                "version": str(manifest.version),
            }
        )
        if not files:
            with self.warehouse.connect() as db:
                return db.sql(f'SELECT * FROM "{name}" LIMIT 0').to_arrow_table()
        db = duckdb.connect(config={"threads": 2})
        try:
            return db.sql(
                "SELECT * FROM read_parquet(?, union_by_name = true, hive_partitioning = false)",
                params=[files],
            ).to_arrow_table()
        finally:
            db.close()

    @property
    def registry(self) -> Registry:
        """The model registry (prefer `load_model` and `register_model`: they record lineage)."""
        if self._registry is None:
            from kawa.models import Registry

            self._registry = Registry.from_runtime(self.runtime)
        return self._registry

    def load_model(self, name: str, *, version: int | None = None, alias: str = "production") -> Bundle:
        """The model `name` at `version`, or at `alias`; recorded as read."""
        return self.registry.load(self.project, name, self._model_read(name, version, alias))

    def _model_read(self, name: str, version: int | None, alias: str) -> int:
        """Record model `name` as read (at `version`, or at the version `alias` points to); that version."""
        by_alias = version is None
        if version is None:
            version = self.registry.resolve(self.project, name, alias)
        # For a model, `partition` holds the alias it was loaded by: caching checks it still points here.
        self.record(
            {
                "direction": "read",
                "kind": "model",
                "name": name,
                "partition": {"alias": alias} if by_alias else None,
                "version": str(version),
            }
        )
        return version

    def register_model(self, name: str, bundle: Bundle, **details: Any) -> int:
        """Register `bundle` as the next version of model `name` for this run; returns the version.

        `details` go to `Registry.register` (metrics, params, training, description). The version
        becomes the model of the run's status message.
        """
        version = self.registry.register(self.project, name, bundle, run_id=self.run_id, **details)
        self.outputs["model"] = {"name": name, "version": version}
        self.record(
            {"direction": "write", "kind": "model", "name": name, "partition": None, "version": str(version)}
        )
        return version

    def lineage_entries(self) -> list[dict[str, Any]]:
        """What the step read and wrote: what was recorded, plus tables and a model named in `outputs`."""
        entries = list(self.lineage)
        written = {(e["kind"], e["name"]) for e in entries if e["direction"] == "write"}
        tables = self.outputs.get("tables")
        if isinstance(tables, list | tuple):
            for name in tables:
                if isinstance(name, str) and ("table", name) not in written:
                    entries.append(
                        {
                            "direction": "write",
                            "kind": "table",
                            "name": name,
                            "partition": None,
                            "version": None,
                        }
                    )
        model = self.outputs.get("model")
        if (
            isinstance(model, dict)
            and isinstance(model.get("name"), str)
            and ("model", model["name"]) not in written
        ):
            version = model.get("version")
            entries.append(
                {
                    "direction": "write",
                    "kind": "model",
                    "name": model["name"],
                    "partition": None,
                    "version": None if version is None else str(version),
                }
            )
        return entries

    def record(self, entry: dict[str, Any]) -> None:
        """Note one read or write for lineage (the same one twice counts once)."""
        with self._lineage_lock:
            if entry not in self.lineage:
                self.lineage.append(entry)

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store (model files, logs); `log_artifact` files a run's own under its folder."""
        return self.runtime.artifacts

    @property
    def online(self) -> OnlineStore:
        """The online key-value store (features, predictions)."""
        return self.runtime.online

    def log_metric(self, name: str, value: float) -> None:
        """Record a metric of this step and run (the last value logged under a name wins)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric name {name!r} must be non-empty text, e.g. 'auc'")
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)  # numpy scalars
            except (TypeError, ValueError):
                raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}") from None
        number = float(value)
        # JSON has no NaN or infinity; a metric that could not be computed is recorded as null.
        self.metrics[name] = number if math.isfinite(number) else None

    def log_artifact(self, path: str, data: bytes | str) -> str:
        """Store `data` as `runs/<run_id>/artifacts/<path>` and return that artifact path."""
        check_path(path)
        full = f"runs/{self.run_id}/artifacts/{path}"
        self.artifacts.put_bytes(full, data.encode() if isinstance(data, str) else data)
        if full not in self.artifact_paths:
            self.artifact_paths.append(full)
        return full

    def sweep(self, fn: Callable[..., Any], grid: Any, **options: Any) -> SweepResult:
        """Run `fn` over a parameter grid, trials in parallel where kawa.yaml's `stores.executor` runs
        steps: Ray tasks on Ray, a process pool locally. Options as `kawa.pipelines.sweep.sweep`."""
        from kawa.pipelines.executor import ray_address
        from kawa.pipelines.sweep import sweep

        address = ray_address(self.runtime.config.stores.executor)
        options.setdefault("backend", "local" if address is None else "ray")
        options.setdefault("address", address or "auto")
        options.setdefault("config", self.runtime.config)
        return sweep(fn, grid, **options)

    def predict_table(
        self,
        model: str,
        table: str,
        *,
        entity: str,
        version: int | None = None,
        alias: str = "production",
        publish: bool = True,
        **options: Any,
    ) -> BatchResult:
        """Score every row of warehouse table `table` with `model` into the `run_date` partition of
        `<model>_predictions` and, with `publish`, the prediction store: split over the table's Parquet
        files across Ray tasks when kawa.yaml's `stores.executor` is Ray, in this process otherwise.
        `options`: output=, run_date=, rows_per_task= (as `kawa.serving.distributed.predict_table`)."""
        from kawa.serving.distributed import predict_table
        from kawa.serving.store import PredictionStore

        version = self._model_read(model, version, alias)
        read = str(self.warehouse.table(table).manifest().version)
        result = predict_table(
            self.warehouse,
            self.registry,
            model,
            table,
            entity=entity,
            version=version,
            executor=self.runtime.config.stores.executor,
            store=PredictionStore(self.online) if publish else None,
            **options,
        )
        self.record({"direction": "read", "kind": "table", "name": table, "partition": None, "version": read})
        return result

    def close(self) -> None:
        """Release what the context opened (the model registry)."""
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def __repr__(self) -> str:
        return f"RunContext(run_id={self.run_id!r}, pipeline={self.pipeline!r}, step={self.step!r})"


def partition_of(value: datetime | date | str | Mapping[str, str] | None) -> dict[str, str] | None:
    """A `partition=` argument as {column: value}; a time at midnight UTC reads as its date.

    >>> partition_of(datetime(2026, 11, 1, tzinfo=UTC)), partition_of(datetime(2026, 11, 1, 3, tzinfo=UTC))
    ({'logical_date': '2026-11-01'}, {'logical_date': '2026-11-01T03:00:00Z'})
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        if len(value) != 1:
            raise ValueError(f"partition {dict(value)!r} must name one column, e.g. {{'day': '2026-11-01'}}")
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if moment.time() == datetime.min.time():
            return {PARTITION_COLUMN: moment.date().isoformat()}
        return {PARTITION_COLUMN: moment.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if isinstance(value, date):
        return {PARTITION_COLUMN: value.isoformat()}
    return {PARTITION_COLUMN: str(value)}
