"""`kawa pipeline list|run` and `kawa runs list|show|logs`: the project's pipelines and their runs."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kawa.cli._common import console, err, fail, settings

if TYPE_CHECKING:
    from kawa.pipelines import Pipeline, RunEvent, RunRecord
    from kawa.runtime import Runtime

pipeline_app = typer.Typer(help="List and run the project's pipelines.", no_args_is_help=True)
runs_app = typer.Typer(help="Recorded pipeline runs.", no_args_is_help=True)

_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "timeout": "red",
    "cancelled": "red",
    "running": "yellow",
    "queued": "dim",
    "skipped": "dim",
}

ProjectOption = Annotated[str | None, typer.Option(help="Project (default: the one in kawa.yaml)")]


def _runtime() -> Runtime:
    from kawa.runtime import Runtime

    return Runtime(settings())


def _pipelines() -> dict[str, Pipeline]:
    from kawa.pipelines import PipelineDefinitionError, project_pipelines
    from kawa.project_code import ProjectCodeError

    try:
        return project_pipelines(settings())
    except (ProjectCodeError, PipelineDefinitionError) as exc:
        raise fail(str(exc)) from None


@pipeline_app.command("list")
def pipeline_list() -> None:
    """List the pipelines defined in the project's code, with their steps and parameters."""
    from kawa.pipelines.params import show

    found = _pipelines()
    if not found:
        config = settings()
        files = ", ".join(config.code)
        raise fail(f"no pipelines in {files} under {config.root}; define a Pipeline(...) there")
    table = Table("pipeline", "steps", "parameters (defaults)", "description")
    for name in sorted(found):
        p = found[name]
        params = ", ".join(f"{k}={show(v)}" for k, v in p.params.items())
        table.add_row(name, " -> ".join(s.name for s in p.steps), params, p.description)
    _print_table(table)


@pipeline_app.command("run")
def pipeline_run(
    name: Annotated[str, typer.Argument(help="The pipeline to run")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Override a parameter: name=value (repeatable)")
    ] = None,
    experiment: Annotated[str, typer.Option(help="Experiment that keeps this run apart")] = "default",
    logical_date: Annotated[
        str | None, typer.Option(help="The date the run is for (ISO 8601; default: now)")
    ] = None,
    project: ProjectOption = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Run every step, even those whose earlier result could be reused"),
    ] = False,
    in_process: Annotated[
        bool,
        typer.Option("--in-process", help="Run the steps in this process (no timeouts or resource limits)"),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Run even while the pipeline already runs max_active_runs runs"),
    ] = False,
) -> None:
    """Run a pipeline now, a process or Ray task per step, printing steps as they end; exit 1 if it fails.

    While the pipeline already runs `max_active_runs` runs (scheduled or manual), the run is refused
    with exit code 1, naming them; `--force` runs it alongside them.
    """
    from kawa.pipelines import (
        InProcessExecutor,
        ParamError,
        RunLimitReached,
        executor_for,
        parse_assignments,
        run_pipeline,
    )

    pipelines = _pipelines()
    if name not in pipelines:
        raise fail(f"no pipeline named {name!r}; pipelines: {', '.join(sorted(pipelines)) or 'none'}")
    try:
        when = datetime.fromisoformat(logical_date) if logical_date else None
    except ValueError:
        raise fail(f"--logical-date {logical_date!r} is not an ISO 8601 date or time") from None
    runtime = _runtime()
    try:
        overrides = parse_assignments(param or [])
        record = run_pipeline(
            runtime,
            pipelines[name],
            overrides,
            experiment=experiment,
            project=project,
            logical_date=when,
            on_event=_print_event,
            executor=InProcessExecutor() if in_process else executor_for(runtime.config),
            cache=not no_cache,
            force=force,
        )
    except (ParamError, ValueError, RunLimitReached) as exc:
        raise fail(str(exc)) from None
    finally:
        runtime.close()
    if not record.succeeded:
        raise typer.Exit(1)


def _print_event(event: RunEvent) -> None:
    if event.kind == "run_started":
        console.print(f"run {event.run_id} of pipeline {event.pipeline}", highlight=False)
    elif event.kind == "step_started":
        console.print(f"  {event.step}: running", highlight=False)
    elif event.kind == "step_retrying":
        headline = (event.error or "").strip().splitlines()[-1:] or [""]
        console.print(
            f"  {event.step}: {_status(event.status or '')} ({headline[0]}); {event.detail}", highlight=False
        )
    elif event.kind == "step_finished":
        status = _status(event.status or "")
        detail = f" ({event.detail})" if event.detail else ""
        console.print(f"  {event.step}: {status} in {_seconds(event.duration_s)}{detail}", highlight=False)
    elif event.kind == "run_finished":
        if event.status != "succeeded" and event.error:
            err.print(event.error.rstrip(), highlight=False, markup=False)
        status = _status(event.status or "")
        console.print(f"run {event.run_id} {status} in {_seconds(event.duration_s)}", highlight=False)


@runs_app.command("list")
def runs_list(
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline")] = None,
    experiment: Annotated[str | None, typer.Option(help="Only runs of this experiment")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (newest first)")] = 20,
    project: ProjectOption = None,
) -> None:
    """List recorded runs, newest first."""
    from kawa.pipelines import RunStore

    runtime = _runtime()
    try:
        records = RunStore(runtime.metadata).list(
            project or runtime.config.project,
            pipeline=pipeline,
            experiment=experiment,
            status=status,
            limit=limit,
        )
    finally:
        runtime.close()
    table = Table("run id", "pipeline", "experiment", "kind", "status", "started", "duration", "model")
    for r in records:
        sent = (r.message or {}).get("sent", {})
        model = f"{sent['model_id']} v{sent['version']}" if sent.get("model_id") else ""
        table.add_row(
            r.run_id,
            r.pipeline,
            r.experiment,
            r.kind,
            _status(r.status),
            _time(r.started_at),
            _seconds(r.duration_s),
            model,
        )
    _print_table(table)
    console.print(f"{len(records)} run{'s' if len(records) != 1 else ''}", style="dim")


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="A run id, or the start of one")],
    project: ProjectOption = None,
) -> None:
    """Show one run: parameters, steps with status and durations, metrics, artifacts and error."""
    record = _record(run_id, project)
    fields = [
        ("run", record.run_id),
        ("pipeline", record.pipeline),
        ("project", record.project),
        ("experiment", record.experiment),
        ("kind", record.kind),
        ("status", _status(record.status)),
        ("logical date", _time(record.logical_date)),
        ("started", _time(record.started_at)),
        ("finished", _time(record.finished_at)),
        ("duration", _seconds(record.duration_s)),
    ]
    for key, value in fields:
        console.print(f"[bold]{key}:[/bold] {value}", highlight=False)
    console.print("[bold]params:[/bold]", highlight=False)
    for key, value in record.params.items():
        console.print(f"  {key} = {json.dumps(value)}", highlight=False, markup=False)
    results = _step_results(record.run_id)
    steps = Table(
        "#", "step", "status", "duration", "resources", "metrics", "outputs", "notes", title="steps"
    )
    for s in record.steps:
        steps.add_row(
            str(s.position + 1),
            s.step,
            _status(s.status),
            _seconds(s.duration_s),
            _compact(s.resources),
            _compact(s.metrics),
            _compact(s.outputs),
            _notes(results.get(s.step, {})),
        )
    _print_table(steps)
    if record.metrics:
        console.print("[bold]metrics:[/bold]", highlight=False)
        for key, value in record.metrics.items():
            console.print(f"  {key} = {value}", highlight=False, markup=False)
    if record.artifacts:
        console.print("[bold]artifacts:[/bold]", highlight=False)
        for path in record.artifacts:
            console.print(f"  {path}", highlight=False, markup=False)
    if record.message:
        sinks = [*record.message.get("delivery", []), *filter(None, [record.message.get("event_log")])]
        receipts = ", ".join(_receipt(r) for r in sinks)
        console.print(f"[bold]status message:[/bold] {receipts}", highlight=False)
    if record.error:
        console.print("[bold red]error:[/bold red]", highlight=False)
        console.print(record.error.rstrip(), highlight=False, markup=False)


@runs_app.command("logs")
def runs_logs(
    run_id: Annotated[str, typer.Argument(help="A run id, or the start of one")],
    step: Annotated[str | None, typer.Option(help="Only this step's log")] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing the output of running steps until the run ends"),
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Print what the steps of a run printed and logged; with -f, follow a running run live."""
    import sys

    from kawa.pipelines import follow as follow_logs

    record = _record(run_id, project)
    steps = [s for s in record.steps if step is None or s.step == step]
    if step is not None and not steps:
        raise fail(f"run {record.run_id} has no step {step!r}; steps: {[s.step for s in record.steps]}")
    runtime = _runtime()
    try:
        for text in follow_logs(runtime, record.run_id, step=step, live=follow):
            if text.startswith("== ") and text.endswith(")\n") and "\n" not in text[:-1]:
                console.print(f"[bold]{text.rstrip()}[/bold]", highlight=False, markup=True)
            else:
                sys.stdout.write(text)
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()


def _record(run_id: str, project: str | None) -> RunRecord:
    from kawa.pipelines import RunStore

    runtime = _runtime()
    try:
        store = RunStore(runtime.metadata)
        try:
            full = store.resolve(run_id, project or runtime.config.project)
        except LookupError as exc:
            raise fail(str(exc)) from None
        record = store.get(full)
    finally:
        runtime.close()
    assert record is not None
    return record


def _print_table(table: Table) -> None:
    # Piped output has no terminal width; the default 80 columns would cut run ids and times.
    out = console if console.is_terminal else Console(width=max(console.width, 160))
    out.print(table)


def _status(status: str) -> str:
    style = _STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}s" if value < 60 else f"{int(value // 60)}m{value % 60:04.1f}s"


def _compact(value: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in value.items())


def _step_results(run_id: str) -> dict[str, dict[str, Any]]:
    """Each step's cache hit and attempts, as the runner recorded them."""
    from kawa.pipelines.cache import StepResults

    runtime = _runtime()
    try:
        return StepResults(runtime).get(run_id)
    finally:
        runtime.close()


def _notes(result: dict[str, Any]) -> str:
    if result.get("cached_from"):
        return f"cached from run {result['cached_from']}"
    attempts = result.get("attempts") or 0
    return f"{attempts} attempts" if attempts > 1 else ""


def _receipt(receipt: dict[str, Any]) -> str:
    where = receipt.get("sink", "?") + (f" {receipt['host']}" if receipt.get("host") else "")
    if receipt.get("ok"):
        return f"{where}: sent"
    return f"{where}: failed after {receipt.get('attempts', 0)} attempt(s) ({receipt.get('error')})"


# -- schedules and backfill ---------------------------------------------------------------------------


@pipeline_app.command("schedules")
def pipeline_schedules(
    name: Annotated[str | None, typer.Argument(help="Show this pipeline's scheduled dates")] = None,
    next_runs: Annotated[int, typer.Option("--next", help="How many next run times to show")] = 1,
    limit: Annotated[int, typer.Option(help="With a pipeline: show at most this many dates")] = 30,
    project: ProjectOption = None,
) -> None:
    """Show the schedules (status, next runs, last run), or one pipeline's claimed and skipped dates."""
    from datetime import UTC

    from kawa.schedule.overview import history, overview

    pipelines = _pipelines()
    runtime = _runtime()
    try:
        project = project or runtime.config.project
        if name is not None:
            rows = history(runtime.metadata, project, name, limit)
            zone = _zone(pipelines, name)
            table = Table("logical date", "kind", "state", "run id", "run status", "reason")
            for claim, status in rows:
                reason = (claim.reason or "").splitlines()[0] if claim.reason else ""
                when = _when(claim.logical_date, zone)
                table.add_row(
                    when, claim.kind, claim.state, claim.run_id or "", _status(status or ""), reason
                )
            _print_table(table)
            console.print(f"{len(rows)} date{'s' if len(rows) != 1 else ''}", style="dim")
            return
        views = overview(runtime.metadata, project, pipelines, datetime.now(UTC), max(1, next_runs))
    finally:
        runtime.close()
    table = Table("pipeline", "schedule", "status", "next run", "last run", "queued", "running", "waits for")
    for v in views:
        zone = _zone(pipelines, v.pipeline)
        last = (
            f"{_when(v.last.logical_date, zone)} {_status(v.last_status or v.last.state)}" if v.last else ""
        )
        upcoming = "\n".join(_when(d, zone) for d in v.next_runs)
        running = f"{v.running}/{v.max_active_runs}"
        table.add_row(
            v.pipeline,
            v.schedule,
            _status(v.status),
            upcoming,
            last,
            str(v.queued),
            running,
            ", ".join(v.wait_for),
        )
    _print_table(table)
    for v in views:
        if v.error:
            err.print(v.error, highlight=False, markup=False)


@pipeline_app.command("backfill")
def pipeline_backfill(
    name: Annotated[str, typer.Argument(help="The pipeline to backfill")],
    start: Annotated[str, typer.Option("--from", help="First logical date (ISO 8601, schedule's zone)")],
    end: Annotated[
        str, typer.Option("--to", help="Last logical date, included (a plain date: that whole day)")
    ],
    wait: Annotated[
        bool, typer.Option(help="Follow the runs until they end (--no-wait: queue and exit)")
    ] = True,
    project: ProjectOption = None,
) -> None:
    """Run a pipeline's scheduled dates from --from to --to, oldest first, within max_active_runs."""
    from datetime import UTC

    from kawa.pipelines import executor_for
    from kawa.schedule import ScheduleError
    from kawa.schedule.backfill import Backfill, Progress, backfill_dates
    from kawa.schedule.launch import InlineLauncher, Launcher, ProcessLauncher

    pipelines = _pipelines()
    if name not in pipelines:
        raise fail(f"no pipeline named {name!r}; pipelines: {', '.join(sorted(pipelines)) or 'none'}")
    p = pipelines[name]
    try:
        dates = backfill_dates(p, start, end, datetime.now(UTC))
    except ScheduleError as exc:
        raise fail(str(exc)) from None
    zone = _zone(pipelines, name)
    runtime = _runtime()
    try:
        # One at a time runs in this process; more at once need processes of their own.
        launcher: Launcher = (
            ProcessLauncher(runtime.config)
            if p.max_active_runs > 1
            else InlineLauncher(runtime, executor=executor_for(runtime.config))
        )
        job = Backfill(runtime, pipelines, name, project=project, launcher=launcher)
        outcome = job.enqueue(dates)
        for date, what in outcome.items():
            console.print(f"{_when(date, zone)}  {what}", highlight=False)
        if not job.dates:
            console.print("nothing to run", style="dim")
            return
        served = job.scheduler_alive()
        console.print(
            f"{len(job.dates)} run(s) queued; "
            + (
                "kawa serve's scheduler runs them"
                if served
                else f"running them here, {p.max_active_runs} at a time"
            ),
            highlight=False,
        )
        if not wait and served:
            return

        def show(progress: Progress) -> None:
            what = _status(progress.status) if progress.status else (progress.detail or "")
            console.print(f"{_when(progress.claim.logical_date, zone)}  {what}", highlight=False)

        claims = job.run(dispatch=not served, on_progress=show)
        statuses = [job.run_status(c) for c in claims]
    finally:
        runtime.close()
    failed = [s for s in statuses if s != "succeeded"]
    console.print(f"{len(statuses) - len(failed)} succeeded, {len(failed)} did not", highlight=False)
    if failed:
        raise typer.Exit(1)


def _zone(pipelines: dict[str, Pipeline], name: str) -> tzinfo | None:
    """The time zone of `name`'s schedule, if it has one."""
    schedule = pipelines[name].schedule if name in pipelines else None
    return schedule.tz if schedule is not None else None


def _when(value: datetime, zone: tzinfo | None) -> str:
    """A logical date in the schedule's zone (and UTC when that differs)."""
    if zone is None or value.astimezone(zone).utcoffset() == value.utcoffset():
        return value.isoformat()
    return f"{value.astimezone(zone).isoformat()} ({value.strftime('%H:%M')} UTC)"


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")
    app.add_typer(runs_app, name="runs")
