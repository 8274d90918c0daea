"""`kawa predict`: score rows (JSON) or a whole query (batch) with a registered model."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer

from kawa.cli._common import console, fail, settings


def predict(
    model: Annotated[str, typer.Argument(help="Registered model name")],
    rows: Annotated[
        str | None, typer.Option("--json", help="One JSON object, or a JSON array of rows")
    ] = None,
    sql: Annotated[str | None, typer.Option(help="Batch: score every row of this query")] = None,
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
    """Predict from human-readable JSON rows (--json), or score a query into a table (--sql)."""
    from kawa.models import ModelNotFoundError, Registry, RowError
    from kawa.runtime import Runtime
    from kawa.serving.batch import BatchPredictError, batch_predict
    from kawa.serving.online import PredictRequestError, parse_rows
    from kawa.serving.online import predict as predict_rows
    from kawa.serving.store import PredictionStore
    from kawa.warehouse import SQLError

    if (rows is None) == (sql is None):
        raise fail("pass either --json '{...}' (rows) or --sql 'SELECT ...' (batch)")
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
        assert sql is not None
        batch = batch_predict(
            runtime.warehouse(name), registry, model, sql, entity=entity, output=output,
            run_date=date.fromisoformat(run_date) if run_date else None, version=version, alias=alias,
            store=PredictionStore(runtime.online) if publish else None,
        )  # fmt: skip
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
    ) as exc:
        raise fail(str(exc)) from None
    finally:
        runtime.close()


def register(app: typer.Typer) -> None:
    app.command()(predict)
