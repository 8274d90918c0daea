"""The `kawa` command line: a thin face that parses, calls one part, and prints."""

from __future__ import annotations

from typing import Annotated

import typer

from kawa import __version__
from kawa.cli import (
    bandits,
    catalog,
    demo,
    deploy,
    features,
    lineage,
    models,
    pipelines,
    predict,
    project,
    sandbox,
    segments,
    serve,
    status,
    templates,
    triggers,
    warehouse,
)

app = typer.Typer(
    name="kawa",
    help="kawa: events in, predictions out. A self-hosted ML platform for behavioural event data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kawa {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print kawa's version and exit"
        ),
    ] = False,
) -> None:
    pass


project.register(app)
serve.register(app)
warehouse.register(app)
demo.register(app)
pipelines.register(app)
models.register(app)
predict.register(app)
features.register(app)
triggers.register(app)
lineage.register(app)
catalog.register(app)
sandbox.register(app)
deploy.register(app)
bandits.register(app)
segments.register(app)
templates.register(app)
status.register(app)


def main() -> None:
    app()


__all__ = ["app", "main"]
