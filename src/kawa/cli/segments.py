"""`kawa segments list|run|log`: the project's segments, a run for a day, and the delivery log."""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kawa.cli._common import console, err, fail, settings

if TYPE_CHECKING:
    from kawa.segments import Segment

segments_app = typer.Typer(
    help="Segments: users picked by SQL, each new member delivered once per day.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
DayOption = Annotated[str | None, typer.Option("--day", help="A day, YYYY-MM-DD (default: today)")]
_STYLE = {"delivered": "green", "failed": "red", "pending": "yellow"}


def _segments() -> dict[str, Segment]:
    from kawa.pipelines import PipelineDefinitionError
    from kawa.project_code import ProjectCodeError
    from kawa.segments import project_segments

    try:
        return project_segments(settings())
    except (ProjectCodeError, PipelineDefinitionError) as exc:
        raise fail(str(exc)) from None


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"--day {text!r} is not a date; write YYYY-MM-DD, e.g. 2026-11-27") from None


@segments_app.command("list")
def segments_list(as_json: JsonOption = False) -> None:
    """List the segments in the project's code with what they delivered."""
    from kawa.runtime import Runtime
    from kawa.segments import segments_overview

    found = _segments()
    runtime = Runtime(settings())
    try:
        rows = segments_overview(runtime.metadata, runtime.config.project, found)
    finally:
        runtime.close()
    if as_json:
        console.print_json(json.dumps({"segments": rows}))
        return
    if not rows:
        config = settings()
        console.print(
            f"no segments in {', '.join(config.code)} under {config.root}; declare one with "
            "kawa.segments.Segment(name, sql, destination=...)",
            highlight=False,
        )
        return
    table = Table(
        "segment", "entity", "destination", "schedule", "once per", "delivered", "failed", "last day"
    )
    for r in rows:
        counts = r["deliveries"]
        table.add_row(
            escape(r["name"]) + ("" if r["in_code"] else " [dim](not in the code)[/dim]"),
            escape(r.get("entity") or ""),
            escape(r.get("destination") or ""),
            escape(r.get("schedule") or ("manual" if r["in_code"] else "")),
            r.get("once_per") or "",
            str(counts["delivered"]),
            f"[red]{counts['failed']}[/red]" if counts["failed"] else "0",
            r["last_day"] or "",
        )
    _print(table)


@segments_app.command("run")
def segments_run(
    name: Annotated[str, typer.Argument(help="The segment to run")],
    day: DayOption = None,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process", help="Run the step in this process (no timeout), not where stores.executor says"
        ),
    ] = False,
) -> None:
    """Deliver a segment's new members for a day now (a manual run of its pipeline); exit 1 if it fails."""
    from kawa.pipelines import InProcessExecutor, RunLimitReached, executor_for
    from kawa.runtime import Runtime
    from kawa.segments import SegmentError, run_segment

    segments = _segments()
    if name not in segments:
        raise fail(f"no segment named {name!r}; segments: {', '.join(sorted(segments)) or 'none'}")
    segment = segments[name]
    when = _day(day)
    runtime = Runtime(settings())
    try:
        executor = InProcessExecutor() if in_process else executor_for(runtime.config)
        record = run_segment(runtime, segment, day=when, executor=executor)
    except (SegmentError, RunLimitReached) as exc:
        raise fail(str(exc)) from None
    finally:
        runtime.close()
    m = record.metrics
    counts = ", ".join(f"{int(m.get(k) or 0)} {k}" for k in ("members", "new", "retried", "delivered"))
    day_text = segment.day_of(record.logical_date).isoformat() if record.logical_date else ""
    console.print(f"segment {name} {day_text}: run {record.run_id} {record.status}", highlight=False)
    console.print(f"  {counts} to {segment.destination.describe()}", highlight=False)
    if not record.succeeded:
        err.print(_exception(record.error) or record.status, highlight=False, markup=False, soft_wrap=True)
        err.print(f"its log: kawa runs logs {record.run_id}", highlight=False)
        raise typer.Exit(1)


@segments_app.command("log")
def segments_log(
    name: Annotated[str | None, typer.Argument(help="Only this segment")] = None,
    day: DayOption = None,
    status: Annotated[str | None, typer.Option(help="Only pending, delivered or failed")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (newest first)")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show the delivery log: each member with segment, day, destination, batch, status and time."""
    from kawa.runtime import Runtime
    from kawa.segments import DeliveryLog

    when = _day(day)
    runtime = Runtime(settings())
    try:
        rows, total = DeliveryLog(runtime.metadata).entries(
            runtime.config.project, segment=name, day=when, status=status, limit=limit
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    finally:
        runtime.close()
    if as_json:
        console.print_json(json.dumps({"total": total, "deliveries": [r.to_json() for r in rows]}))
        return
    table = Table("segment", "day", "member", "destination", "batch", "status", "tries", "delivered at")
    for r in rows:
        style = _STYLE.get(r.status, "")
        status_text = f"[{style}]{r.status}[/{style}]" + (f" {escape(r.error)}" if r.error else "")
        table.add_row(
            escape(r.segment),
            r.day,
            escape(r.member),
            escape(r.destination),
            r.batch_id[:12],
            status_text,
            str(r.attempts),
            r.delivered_at.strftime("%Y-%m-%d %H:%M:%S") if r.delivered_at else "",
        )
    _print(table)
    console.print(
        f"{len(rows)} of {total} deliver{'y' if total == 1 else 'ies'}", style="dim", highlight=False
    )


def _exception(error: str | None) -> str:
    """The exception at the end of a step's traceback (its message may span lines), without the frames."""
    lines = (error or "").strip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
    start = frames[-1] + 1 if frames else 0
    while start < len(lines) and lines[start].startswith(" "):
        start += 1  # the frame's source line and its ^^^ markers
    return "\n".join(lines[start:]).strip()


def _print(table: Table) -> None:
    # Piped output has no terminal width: the default 80 columns would cut ids and times.
    out = console if console.is_terminal else Console(width=max(console.width, 160))
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(segments_app, name="segments")
