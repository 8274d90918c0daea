"""`kawa serve`: the collector, API and workers in one supervised process tree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kawa.cli._common import config_file, console, settings


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default from kawa.yaml: 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default from kawa.yaml: 8642)")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="API/collector processes on the one port (needs the Redis event log when > 1)"),
    ] = None,
    trigger_workers: Annotated[
        int | None,
        typer.Option(help="Trigger worker processes, splitting events by entity (Redis event log when > 1)"),
    ] = None,
) -> None:
    """Start kawa: the HTTP API and collector, the lake writer, and the workers; Ctrl-C stops them."""
    from kawa.cli.project import init_project
    from kawa.serve.supervisor import Supervisor

    path = config_file()
    if path is None:
        path, _ = init_project(Path("."), "default")
        console.print(
            f"# no kawa.yaml found: wrote {path} with project 'default'; `kawa keys` shows its keys",
            highlight=False,
        )
    config = settings()
    if host is not None:
        config.server.host = host
    if port is not None:
        config.server.port = port
    if workers is not None:
        config.server.workers = workers
    if trigger_workers is not None:
        config.triggers.workers = trigger_workers
    raise typer.Exit(Supervisor(config, path).run())


def register(app: typer.Typer) -> None:
    app.command()(serve)
