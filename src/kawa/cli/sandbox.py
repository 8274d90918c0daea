"""`kawa pipeline test NAME`: run a pipeline for real on a sample of the warehouse, in a sandbox, for CI."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from kawa.cli._common import console, fail, settings
from kawa.cli.pipelines import _pipelines, _print_event, pipeline_app


def pipeline_test(
    name: Annotated[str, typer.Argument(help="The pipeline to try")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Override a parameter: name=value (repeatable)")
    ] = None,
    logical_date: Annotated[
        str | None, typer.Option(help="The date the run is for (ISO 8601; default: now)")
    ] = None,
    fraction: Annotated[
        float, typer.Option(help="Share of each table's rows copied into the sandbox (0 < f <= 1)")
    ] = 0.1,
    min_rows: Annotated[
        int, typer.Option(help="Data files with at most this many rows are copied whole")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the sample, for a repeatable test")] = 42,
    keep: Annotated[
        Path | None,
        typer.Option(help="Build the sandbox in this folder and keep it (default: a temporary one)"),
    ] = None,
    project: Annotated[str | None, typer.Option(help="Project (default: the one in kawa.yaml)")] = None,
) -> None:
    """Try a pipeline before deploying it, on a sample of the warehouse in a sandbox; exit 1 if it fails.

    Nothing real is touched: the sandbox has its own lake, metadata, artifacts and event log, and no
    webhook is called. Steps run in their own processes, as in production, without the cache.
    """
    from kawa.pipelines import ParamError, parse_assignments
    from kawa.pipelines.sandbox import make_sandbox, run_in_sandbox

    pipelines = _pipelines()
    if name not in pipelines:
        raise fail(f"no pipeline named {name!r}; pipelines: {', '.join(sorted(pipelines)) or 'none'}")
    try:
        when = datetime.fromisoformat(logical_date) if logical_date else None
    except ValueError:
        raise fail(f"--logical-date {logical_date!r} is not an ISO 8601 date or time") from None
    try:
        overrides = parse_assignments(param or [])
        pipelines[name].resolve_params(overrides)
    except ParamError as exc:
        raise fail(str(exc)) from None
    config = settings()
    project = project or config.project
    try:
        sandbox = make_sandbox(config, project, fraction=fraction, min_rows=min_rows, seed=seed, folder=keep)
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        for t in sandbox.tables:
            console.print(
                f"sample of {t.name}: {t.rows:,} of {t.source_rows:,} rows", style="dim", highlight=False
            )
        record = run_in_sandbox(
            sandbox,
            pipelines[name],
            dict(overrides),
            project=project,
            logical_date=when,
            on_event=_print_event,
        )
    finally:
        sandbox.close()
    if keep is not None:
        console.print(f"sandbox kept in {keep}", style="dim", highlight=False)
    if not record.succeeded:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    pipeline_app.command("test")(pipeline_test)
