"""`kawa deploy`: show what the project's code changes in deployed pipelines and schedules, then apply it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from kawa.cli._common import console, err, fail, settings
from kawa.cli.pipelines import _pipelines

if TYPE_CHECKING:
    from kawa.pipelines.deploy import DeployPlan

_STYLE = {"added": "green", "changed": "yellow", "updated": "yellow", "removed": "red", "refused": "red"}


def deploy(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would change")] = False,
    project: Annotated[str | None, typer.Option(help="Project (default: the one in kawa.yaml)")] = None,
) -> None:
    """Deploy this folder's pipelines and schedules (a git checkout, say): show the changes, then apply.

    Exit code 1 when a schedule is refused (its first run is in the past) or nothing could be applied.
    """
    from kawa.pipelines.deploy import apply_deploy, plan_deploy
    from kawa.runtime import Runtime

    pipelines = _pipelines()
    runtime = Runtime(settings())
    try:
        project = project or runtime.config.project
        plan = plan_deploy(runtime, project, pipelines)
        _print_plan(plan)
        if plan.empty:
            console.print(
                "nothing to deploy: the deployed pipelines and schedules match the code", highlight=False
            )
            return
        if dry_run:
            console.print("dry run: nothing was changed", style="dim", highlight=False)
            raise typer.Exit(1 if plan.refused else 0)
        try:
            applied = apply_deploy(runtime, project, pipelines)
        except Exception as exc:
            raise fail(
                f"deploy failed, nothing was recorded as deployed: {type(exc).__name__}: {exc}"
            ) from None
    finally:
        runtime.close()
    commit = applied.source.get("commit")
    where = applied.source["root"]
    if commit:
        where = f"commit {commit[:12]}" + (
            " (with uncommitted changes)" if applied.source.get("dirty") else ""
        )
    console.print(
        f"deployed {len(applied.specs)} pipeline(s) of project {project} from {where}: "
        f"{len(applied.pipelines)} pipeline and {len(applied.schedules)} schedule change(s)",
        highlight=False,
    )
    if applied.refused:
        raise typer.Exit(1)


def _print_plan(plan: DeployPlan) -> None:
    for change in plan.pipelines:
        style = _STYLE.get(change.action, "")
        details = f": {'; '.join(change.details)}" if change.details else ""
        console.print(
            f"pipeline {change.pipeline}: [{style}]{change.action}[/{style}]{details}", highlight=False
        )
    for s in plan.schedules:
        style = _STYLE.get(s.action, "")
        what = f" ({s.schedule})" if s.schedule else ""
        console.print(f"schedule of {s.pipeline}: [{style}]{s.action}[/{style}]{what}", highlight=False)
        if s.error:
            err.print(f"  {s.error}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
