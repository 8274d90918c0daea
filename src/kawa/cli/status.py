"""`kawa status`: the health of every store and of the running `kawa serve`, and the event log lags."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from kawa.cli._common import console, settings

_STYLE = {"ok": "green", "down": "red", "stopped": "yellow"}
_LAGS = {
    "acknowledged_offset": "event log end (acknowledged to clients)",
    "lake_offset": "lake writer's offset (published as Parquet)",
    "lake_lag_bytes": "not yet in the lake (bytes)",
    "scored_offset": "trigger worker's offset (matched and scored)",
    "scored_lag_bytes": "not yet scored (bytes)",
    "error": "cannot read the lags",
}


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each store")] = 5.0,
) -> None:
    """Show whether each store and each part of `kawa serve` is healthy, and how far behind the log
    the lake and the trigger worker are. Exits 1 when something is down."""
    from kawa.observe.health import check

    report = check(settings(), timeout_s=timeout)
    if as_json:
        console.print_json(json.dumps(report.to_json()))
    else:
        table = Table("part", "kind", "backend", "status", "detail", title="kawa status")
        for c in report.checks:
            style = _STYLE.get(c.status, "")
            table.add_row(c.name, c.kind, c.backend, f"[{style}]{c.status}[/{style}]", c.detail)
        console.print(table)
        if report.lags:
            lags = Table("event log", "value", title="lags")
            for key, value in report.lags.items():
                lags.add_row(_LAGS.get(key, key), str(value))
            console.print(lags)
        console.print("healthy" if report.healthy else "[red]unhealthy[/red]: a part above is down")
    raise typer.Exit(0 if report.healthy else 1)


def register(app: typer.Typer) -> None:
    app.command()(status)
