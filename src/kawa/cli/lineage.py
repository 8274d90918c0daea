"""`kawa lineage NAME [--impact]`: where a table or model comes from, and what depends on it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from kawa.cli._common import console, fail, settings

if TYPE_CHECKING:
    from kawa.lineage import Dataset, LineageGraph

_STYLE = {"ok": "green", "stale": "yellow", "failing": "red", "blocked": "red"}


def lineage(
    name: Annotated[str, typer.Argument(help="A table or model (table:NAME or model:NAME if both exist)")],
    impact: Annotated[
        bool, typer.Option("--impact", help="List everything downstream that is failing, blocked or stale")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text")] = False,
    project: Annotated[str | None, typer.Option(help="Project (default: the one in kawa.yaml)")] = None,
) -> None:
    """Show what a table or model is made from (upstream) and what is made from it (downstream)."""
    from kawa.lineage import LineageGraph, describe
    from kawa.lineage import impact as impact_of
    from kawa.runtime import Runtime

    runtime = Runtime(settings())
    try:
        project = project or runtime.config.project
        graph = LineageGraph.load(runtime.metadata, project)
        dataset = _one(graph, name)
        if impact:
            found = impact_of(graph, dataset, lake_root=runtime.lake_root, project=project)
            if as_json:
                print(
                    json.dumps(
                        {"kind": dataset.kind, "name": dataset.name, "impact": [i.to_json() for i in found]}
                    )
                )
                return
            _print_impact(str(dataset), [i.to_json() for i in found])
            bad = [i for i in found if i.status != "ok"]
            console.print(
                f"{len(found)} downstream, {len(bad)} failing, blocked or stale", style="dim", highlight=False
            )
            return
        data = describe(graph, dataset)
    finally:
        runtime.close()
    if as_json:
        print(json.dumps(data))
        return
    _print_lineage(data)


def _one(graph: LineageGraph, name: str) -> Dataset:
    found = graph.find(name)
    if not found:
        known = ", ".join(str(d) for d in graph.datasets()[:20]) or "none yet: run a pipeline first"
        raise fail(f"no run has read or written {name!r}; known tables and models: {known}")
    if len(found) > 1:
        raise fail(f"{name!r} is both a table and a model; say table:{name} or model:{name}")
    return found[0]


def _print_lineage(data: dict[str, Any]) -> None:
    console.print(f"[bold]{data['kind']} {data['name']}[/bold]", highlight=False)
    for title, key in (("written by", "written_by"), ("read by", "read_by")):
        for p in data[key]:
            parts = f" [{', '.join(p['partitions'][:5])}]" if p["partitions"] else ""
            status = p["latest_status"] or "?"
            line = f"  {title}: {p['pipeline']} (steps {', '.join(p['steps'])}){parts}, latest run {status}"
            console.print(line, highlight=False, markup=False)
    console.print(
        "[bold]upstream[/bold]" + ("" if data["upstream"] else ": nothing recorded"), highlight=False
    )
    for link in data["upstream"]:
        indent = "  " * link["depth"]
        steps = ", ".join(link["steps"])
        text = f"{indent}<- {link['kind']} {link['name']}  (read by {link['pipeline']}: {steps})"
        console.print(text, highlight=False, markup=False)
    console.print(
        "[bold]downstream[/bold]" + ("" if data["downstream"] else ": nothing recorded"), highlight=False
    )
    for link in data["downstream"]:
        indent = "  " * link["depth"]
        steps = ", ".join(link["steps"])
        text = f"{indent}-> {link['kind']} {link['name']}  (written by {link['pipeline']}: {steps})"
        console.print(text, highlight=False, markup=False)


def _print_impact(title: str, rows: list[dict[str, Any]]) -> None:
    table = Table("depth", "kind", "name", "status", "why", title=f"downstream of {title}")
    for r in rows:
        style = _STYLE.get(r["status"], "")
        name = r["name"] + (f" (by {r['via']})" if r["via"] else "")
        table.add_row(str(r["depth"]), r["kind"], name, f"[{style}]{r['status']}[/{style}]", r["reason"])
    from kawa.cli.pipelines import _print_table

    _print_table(table)


def register(app: typer.Typer) -> None:
    app.command("lineage")(lineage)
