"""`kawa catalog`: the project's tables with their docs, what is undocumented or vanished, as Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kawa.cli._common import console, fail, settings

DEFAULT_OUT = "docs/catalog"


def catalog(
    out: Annotated[
        Path | None,
        typer.Option(help=f"Folder for the Markdown pages (default: {DEFAULT_OUT} beside kawa.yaml)"),
    ] = None,
    write: Annotated[bool, typer.Option(help="Write the Markdown pages")] = True,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit with code 1 if anything is undocumented or vanished (for CI)"),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON")] = False,
    project: Annotated[str | None, typer.Option(help="Project (default: the one in kawa.yaml)")] = None,
) -> None:
    """Merge catalog/*.yaml with the live warehouse: report undocumented and vanished columns, write docs."""
    from kawa.catalog import CatalogError, build_catalog, write_markdown
    from kawa.lineage import LineageGraph
    from kawa.runtime import Runtime

    config = settings()
    runtime = Runtime(config)
    try:
        project = project or config.project
        graph = LineageGraph.load(runtime.metadata, project)
        try:
            result = build_catalog(Path(config.root), runtime.warehouse(project), graph=graph)
        except CatalogError as exc:
            raise fail(str(exc)) from None
    finally:
        runtime.close()
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        table = Table("table", "owner", "status", "columns", "undocumented", "vanished", "description")
        for t in result.tables:
            table.add_row(
                t.name,
                t.owner or "",
                t.status,
                str(len([c for c in t.columns if c.status != "vanished"])),
                ", ".join(t.undocumented),
                ", ".join(t.vanished),
                t.description[:60],
            )
        from kawa.cli.pipelines import _print_table

        _print_table(table)
        report = result.report()
        undocumented = sum(len(c) for c in report["undocumented_columns"].values())
        vanished = sum(len(c) for c in report["vanished_columns"].values())
        console.print(
            f"{len(result.tables)} tables: {len(report['undocumented_tables'])} undocumented, "
            f"{len(report['vanished_tables'])} vanished; {undocumented} undocumented and {vanished} vanished "
            "columns",
            highlight=False,
        )
    if write:
        folder = out if out is not None else Path(config.root) / DEFAULT_OUT
        files = write_markdown(result, folder)
        if not as_json:
            console.print(f"wrote {len(files)} Markdown pages to {folder}", style="dim", highlight=False)
    if check and not result.complete:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("catalog")(catalog)
