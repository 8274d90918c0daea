"""`kawa sql` and `kawa load`: the warehouse from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich.table import Table

from kawa.cli._common import console, fail, settings
from kawa.warehouse import SQLError, Warehouse


def _warehouse(project: str | None) -> Warehouse:
    config = settings()
    return Warehouse(config.state_path / "lake", project or config.project)


def sql(
    query: Annotated[
        str, typer.Argument(help="SQL over the project's tables, e.g. SELECT count(*) FROM events")
    ],
    project: Annotated[str | None, typer.Option(help="Project (default: the one in kawa.yaml)")] = None,
    limit: Annotated[int, typer.Option(help="Print at most this many rows")] = 100,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
) -> None:
    """Run SQL on the warehouse and print the result; CREATE MODEL and ML.* calls too (docs/sql-models.md)."""
    try:
        result = _run(_warehouse(project), query, limit)
    except SQLError as exc:
        raise fail(str(exc)) from None
    if fmt == "json":
        console.print_json(json.dumps(result.to_pylist(), default=str))
    elif fmt == "csv":
        import csv
        import sys

        out = csv.writer(sys.stdout)
        out.writerow(result.column_names)
        out.writerows([list(r.values()) for r in result.to_pylist()])
    else:
        table = Table(*result.column_names, show_lines=False)
        for row in result.to_pylist():
            table.add_row(*("" if v is None else str(v) for v in row.values()))
        console.print(table)
        console.print(f"{result.num_rows} row{'s' if result.num_rows != 1 else ''}", style="dim")


def _run(warehouse: Warehouse, query: str, limit: int) -> pa.Table:
    """The query's rows; the model registry is opened only for SQL that uses models."""
    from kawa import sqlml

    if not sqlml.mentions_models(query):
        return warehouse.query(query, limit=limit)
    from kawa.models import Registry
    from kawa.runtime import Runtime

    runtime = Runtime(settings())
    try:
        with Registry.from_runtime(runtime) as registry:
            return sqlml.run(warehouse, registry, query, limit=limit)
    finally:
        runtime.close()


def load(
    table: Annotated[str, typer.Argument(help="Warehouse table to replace")],
    file: Annotated[Path, typer.Argument(help="A .csv, .tsv, .parquet, .jsonl/.ndjson or .json file")],
    partition: Annotated[str | None, typer.Option(help="Replace only this partition: column=value")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Force the format (csv, tsv, parquet, jsonl, json)")
    ] = None,
    project: Annotated[str | None, typer.Option(help="Project (default: the one in kawa.yaml)")] = None,
) -> None:
    """Load a file into a warehouse table, replacing the table (or one partition) atomically."""
    from kawa.warehouse.load import LoadError, load_file, parse_partition

    try:
        result = load_file(_warehouse(project), table, file, partition=parse_partition(partition), fmt=fmt)
    except (LoadError, ValueError) as exc:
        raise fail(str(exc)) from None
    where = (
        f" partition {next(iter(result.partition.items()))[0]}={next(iter(result.partition.values()))}"
        if result.partition
        else ""
    )
    console.print(
        f"loaded {result.rows} rows into {result.table}{where} ({', '.join(result.columns)})", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command()(sql)
    app.command()(load)
