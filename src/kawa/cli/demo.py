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
    from kawa.serve.local import LocalServer


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
        bool,
        typer.Option(
            help="After sending, run the pipelines: loyalty (features, train, predict), then the decisions"
        ),
    ] = True,
    decisions: Annotated[
        bool,
        typer.Option(
            help="With --train, also the decisions: RFM clusters in SQL, recommendations, a cart-abandonment "
            "segment sent to a local webhook, and a bandit rewarded by click events"
        ),
    ] = True,
    visits: Annotated[int, typer.Option(help="Simulated visits that ask the coupon_banner bandit")] = 300,
    realtime: Annotated[
        bool,
        typer.Option(
            "--realtime",
            help="Then train the purchase-intent sequence model and replay fresh visits live, "
            "printing each prediction as it lands (needs kawa[torch] to train)",
        ),
    ] = False,
    sessions: Annotated[int, typer.Option(help="Visits the real-time replay sends")] = 12,
    speed: Annotated[float, typer.Option(help="How many times faster than real life the replay runs")] = 20.0,
) -> None:
    """Generate a deterministic shop, send it through the HTTP collector, then learn from it and act on it."""
    from kawa.cli.project import init_project
    from kawa.demo.run import PROJECT, has_events, ingest_demo, run_loyalty
    from kawa.demo.shop import ShopConfig
    from kawa.serve.local import LocalServer

    try:
        config = ShopConfig(users=users, days=days, seed=seed)
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    if visits < 1:
        raise fail(f"--visits {visits} must be at least 1 (e.g. 300)")
    if not (folder / "kawa.yaml").exists():
        init_project(folder, PROJECT)
        console.print(f"created the demo project in {folder}/ (kawa.yaml holds its keys)", highlight=False)
    else:
        from kawa.config import ConfigError, load_config

        try:
            projects = load_config(folder / "kawa.yaml").projects
        except ConfigError as exc:
            raise fail(str(exc)) from None
        if PROJECT not in projects:
            raise fail(
                f"{folder / 'kawa.yaml'} has no project {PROJECT!r}, which the demo shop sends to; add it "
                f"with `kawa keys create --project {PROJECT}` in {folder}, or give --dir a new folder"
            )
    server = None if url else LocalServer(folder)
    if server is not None:
        with console.status("starting kawa serve ..."):
            server.start()
        url = server.url
    assert url is not None
    try:
        if realtime and has_events(folder):
            console.print(
                "the demo shop is already in the lake; going on to the real-time part", highlight=False
            )
            _realtime(folder, url, server, sessions=sessions, speed=speed)
            return
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
            if decisions:
                from datetime import timedelta

                from kawa.cli._demo_decisions import show_decisions

                last_day = config.start + timedelta(days=config.days - 1)
                if not show_decisions(folder, url, day=last_day, visits=visits, seed=seed):
                    raise typer.Exit(1)
        if realtime:
            _realtime(folder, url, server, sessions=sessions, speed=speed)
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


def _realtime(folder: Path, url: str, server: LocalServer | None, *, sessions: int, speed: float) -> None:
    """Train the intent model, switch its trigger on, then replay fresh visits and print predictions."""
    from kawa.config import load_config
    from kawa.demo.realtime import Landed, replay
    from kawa.demo.run import PROJECT, enable_intent, run_intent

    keys = load_config(folder / "kawa.yaml").projects[PROJECT]
    with console.status("training the purchase-intent sequence model (CNN over the session's pages) ..."):
        report = run_intent(folder)
    if report.status != "succeeded":
        console.print(
            f"[red]the intent pipeline {report.status}[/red] (run {report.run_id}):\n{report.error}"
        )
        raise typer.Exit(1)
    m = report.metrics
    nan = float("nan")
    quality = Table("model", "holdout AUC", title="Will this visit buy? (scored on every page view)")
    quality.add_row("purchase_intent (1-D CNN over the last 10 pages)", f"{m.get('auc', nan):.3f}")
    quality.add_row("baseline: bag of pages (logistic regression)", f"{m.get('baseline_auc', nan):.3f}")
    console.print(quality)
    if report.version is None:
        console.print(
            "[red]the model did not beat the baseline, so it was not promoted; nothing to serve[/red]"
        )
        raise typer.Exit(1)
    # The trigger goes into the project's code only now, so the history sent above is not scored, and the
    # trigger worker reads the code when it starts: restart the server this command started.
    enable_intent(folder)
    if server is not None:
        with console.status("restarting kawa serve with the intent_on_view trigger ..."):
            server.stop()
            server.start()
    else:
        console.print(
            f"added the intent_on_view trigger to {folder}/pipelines.py; restart the server at {url} "
            "if its trigger worker does not list it yet (kawa triggers list)",
            highlight=False,
        )
    console.print(
        f"replaying {sessions} fresh visits at {speed:g}x through POST /v1/events; "
        "each view is scored by the intent_on_view trigger and read back with "
        "GET /v1/predictions/purchase_intent/{session}:",
        highlight=False,
    )

    def landed(hit: Landed) -> None:
        if hit.score is None:
            console.print(
                f"  {hit.session_id:<22} view {hit.step:>2} {hit.page_type:<9} [red]no prediction[/red]"
            )
            return
        bar = "#" * round(hit.score * 20)
        ending = "buys" if hit.purchased else "leaves"
        console.print(
            f"  {hit.session_id:<22} view {hit.step:>2} {hit.page_type:<9} P(buy)={hit.score:.2f} "
            f"{bar:<20} v{hit.version}  {hit.latency_ms:5.1f} ms   (this visit {ending})",
            highlight=False,
        )

    result = replay(url, keys.write_key, keys.read_key, sessions=sessions, speed=speed, on_landed=landed)
    console.print(
        f"{len(result.landed)} predictions in {result.seconds:.1f}s, {result.missing} missing; "
        f"event acknowledged -> prediction readable: p50 {result.latency(50):.1f} ms, "
        f"p99 {result.latency(99):.1f} ms (includes this client's polling)",
        highlight=False,
    )
    console.print(
        f"last score of each visit: {result.mean_score(True):.2f} on average for visits that bought, "
        f"{result.mean_score(False):.2f} for those that did not",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
