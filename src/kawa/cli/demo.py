"""`kawa demo`: the whole loop on a generated shop, through a real `kawa serve`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from kawa.cli._common import console, fail

if TYPE_CHECKING:
    from kawa.demo.run import IngestReport, LoopReport


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
    train: Annotated[
        bool, typer.Option(help="Also run the loyalty pipeline: features, train, predict")
    ] = True,
) -> None:
    """Generate a deterministic shop, send it through the HTTP collector, and show what landed."""
    from kawa.cli.project import init_project
    from kawa.demo.run import PROJECT, ingest_demo, run_loyalty
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
        _print_ingest(report, folder)
        if train:
            with console.status(
                "running the loyalty pipeline: features, training, registry, batch prediction"
            ):
                loop = run_loyalty(folder, url)
            _print_loop(loop, folder, url)
            if loop.status != "succeeded":
                raise typer.Exit(1)
    finally:
        if server is not None:
            server.stop()


def _print_ingest(report: IngestReport, folder: Path) -> None:
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


def _print_loop(loop: LoopReport, folder: Path, url: str) -> None:
    if loop.status != "succeeded":
        console.print(f"[red]the loyalty pipeline {loop.status}[/red] (run {loop.run_id}):\n{loop.error}")
        return
    m = loop.metrics
    nan = float("nan")
    quality = Table(
        "model", "holdout AUC", title="Will the user buy in the next 14 days? (time-split holdout)"
    )
    quality.add_row(f"loyalty v{loop.version} (LightGBM, RFM + engagement)", f"{m.get('auc', nan):.3f}")
    quality.add_row("baseline: recency only", f"{m.get('baseline_recency_auc', nan):.3f}")
    if "ground_truth_loyalty_auc" in m:
        quality.add_row("the shop's hidden loyalty (ground truth)", f"{m['ground_truth_loyalty_auc']:.3f}")
    console.print(quality)
    top = Table("user", "score", "hidden loyalty", "persona", title="Top users by score")
    for row in loop.top_users:
        top.add_row(row["user_id"], str(row["score"]), str(row["hidden_loyalty"]), str(row["persona"]))
    console.print(top)
    console.print(
        f"coupon A (score >= {loop.threshold}): {loop.coupon_a:,} users; coupon B: {loop.coupon_b:,} users "
        f"(run {loop.run_id}, model loyalty v{loop.version} at alias production)",
        highlight=False,
    )
    if loop.example_user is None:
        return
    user = loop.example_user
    console.print(
        f"read over HTTP: GET /v1/predictions/loyalty/{user} -> {loop.http_prediction}", highlight=False
    )
    console.print(
        f"predict over HTTP: POST /v1/models/loyalty/predict -> {loop.http_predict}", highlight=False
    )
    console.print(
        f"\nread predictions yourself: cd {folder} && kawa serve, then in another shell:\n"
        f"  curl -H 'Authorization: Bearer {loop.read_key}' http://127.0.0.1:8642/v1/predictions/loyalty/{user}\n"
        f"  kawa models show loyalty      # the input signature of POST /v1/models/loyalty/predict",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
