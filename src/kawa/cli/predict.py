"""`kawa predict`: score rows (JSON) or a whole query (batch) with a registered model."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

import typer

from kawa.cli._common import console, fail, settings


def predict(
    model: Annotated[str, typer.Argument(help="Registered model name")],
    rows: Annotated[
        str | None, typer.Option("--json", help="One JSON object, or a JSON array of rows")
    ] = None,
    sql: Annotated[str | None, typer.Option(help="Batch: score every row of this query")] = None,
    table: Annotated[
        str | None,
        typer.Option(help="Batch: score every row of this table (over Ray tasks with stores.executor: ray)"),
    ] = None,
    entity: Annotated[str, typer.Option(help="Batch: the column that names each entity")] = "user_id",
    output: Annotated[
        str | None, typer.Option(help="Batch: table to write (default MODEL_predictions)")
    ] = None,
    run_date: Annotated[
        str | None, typer.Option(help="Batch: the partition to replace (default today)")
    ] = None,
    publish: Annotated[bool, typer.Option(help="Batch: also publish to the prediction store")] = True,
    version: Annotated[int | None, typer.Option(help="Use this version instead of the alias")] = None,
    alias: Annotated[str, typer.Option(help="The alias to use when no version is given")] = "production",
    project: Annotated[str | None, typer.Option(help="Project (default: the one in kawa.yaml)")] = None,
) -> None:
    """Predict from human-readable JSON rows (--json), or score a query (--sql) or a table (--table)."""
    from kawa.models import ModelNotFoundError, Registry, RowError
    from kawa.runtime import Runtime
    from kawa.serving.batch import BatchPredictError, batch_predict
    from kawa.serving.distributed import predict_table
    from kawa.serving.online import PredictRequestError, parse_rows
    from kawa.serving.online import predict as predict_rows
    from kawa.serving.store import PredictionStore
    from kawa.warehouse import SQLError

    if [rows, sql, table].count(None) != 2:
        raise fail("pass one of --json '{...}' (rows), --sql 'SELECT ...' or --table NAME (batch)")
    runtime = Runtime(settings())
    name = project or runtime.config.project
    try:
        registry = Registry.from_runtime(runtime)
        if rows is not None:
            result = predict_rows(
                registry, name, model, parse_rows(rows.encode()), version=version, alias=alias
            )
            console.print_json(json.dumps(result))
            return
        options: dict[str, Any] = {
            "entity": entity, "output": output, "version": version, "alias": alias,
            "run_date": date.fromisoformat(run_date) if run_date else None,
            "store": PredictionStore(runtime.online) if publish else None,
        }  # fmt: skip
        if table is not None:  # a whole table can be split by its files: on Ray when kawa.yaml says so
            executor = runtime.config.stores.executor
            warehouse = runtime.warehouse(name)
            batch = predict_table(warehouse, registry, model, table, executor=executor, **options)
        else:
            assert sql is not None
            batch = batch_predict(runtime.warehouse(name), registry, model, sql, **options)
        console.print(
            f"scored {batch.rows:,} rows with {model} v{batch.version} into {batch.table} "
            f"(run_date={batch.run_date}) in {batch.seconds:.1f}s; published {batch.published:,} predictions",
            highlight=False,
        )
    except (
        PredictRequestError,
        RowError,
        ModelNotFoundError,
        BatchPredictError,
        SQLError,
        ValueError,
        LookupError,
        RuntimeError,
    ) as exc:
        raise fail(str(exc)) from None
    finally:
        runtime.close()


def register(app: typer.Typer) -> None:
    app.command()(predict)
