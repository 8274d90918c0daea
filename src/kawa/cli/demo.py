"""`kawa demo`: the whole loop on a generated shop, through a real `kawa serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from kawa.cli._common import console, fail


def demo(
    folder: Annotated[
        Path, typer.Option("--dir", help="Project folder for the demo (created if missing)")
    ] = Path("kawa-demo"),
    users: Annotated[int, typer.Option(help="Registered users in the shop")] = 2000,
    days: Annotated[int, typer.Option(help="Days of traffic")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same shop")] = 7,
    url: Annotated[
        str | None, typer.Option(help="Send to this running kawa serve instead of starting one in --dir")
    ] = None,
) -> None:
    """Generate a deterministic shop, send it through the HTTP collector, and show what landed."""
    from kawa.cli.project import init_project
    from kawa.demo.run import PROJECT, ingest_demo
    from kawa.demo.shop import ShopConfig
    from kawa.serve.local import LocalServer

    try:
        config = ShopConfig(users=users, days=days, seed=seed)
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    if not (folder / "kawa.yaml").exists():
        init_project(folder, PROJECT)
        console.print(f"created the demo project in {folder}/ (kawa.yaml holds its keys)", highlight=False)
    server = None if url else LocalServer(folder)
    if server is not None:
        with console.status("starting kawa serve ..."):
            server.start()
        url = server.url
    assert url is not None
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("generating the shop", total=None)

            def generated(shop: object) -> None:
                bar.update(task, description="sending events", total=len(shop.events))  # type: ignore[attr-defined]

            report = ingest_demo(
                folder, config, url, on_generated=generated, progress=lambda n: bar.advance(task, n)
            )
    finally:
        if server is not None:
            server.stop()
    rate = report.accepted / report.seconds if report.seconds else 0.0
    console.print(
        f"sent {report.generated:,} events over HTTP in {report.seconds:.1f}s ({rate:,.0f} events/s): "
        f"{report.accepted:,} accepted, {report.rejected:,} rejected",
        highlight=False,
    )
    table = Table("event", "count", title="What landed in the warehouse (events)")
    for name, n in report.by_event:
        table.add_row(name, f"{n:,}")
    console.print(table)
    console.print(
        f"{report.users:,} users, {report.visitors:,} visitors, {report.days} days "
        f"({report.first_day} .. {report.last_day}); ground truth in: {', '.join(report.truth_tables)}",
        highlight=False,
    )
    console.print(
        f'try: cd {folder} && kawa sql "SELECT event_name, count(*) FROM events GROUP BY 1"', highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
