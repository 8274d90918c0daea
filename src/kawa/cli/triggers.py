"""`kawa triggers list|errors`: the project's triggers with live counts, from the shell."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from kawa.cli._common import console, fail, settings

if TYPE_CHECKING:
    from kawa.config import Config
    from kawa.triggers import Trigger

triggers_app = typer.Typer(help="Triggers: events that ask for a real-time prediction.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _declared(config: Config) -> dict[str, Trigger]:
    from kawa.project_code import ProjectCodeError
    from kawa.triggers import TriggerError, load_triggers

    try:
        return load_triggers(config)
    except (ProjectCodeError, TriggerError) as exc:
        raise fail(str(exc)) from None


def _live(config: Config) -> dict[str, Any]:
    """What the worker has stored: counters per trigger, and its lag behind the event log."""
    from kawa.runtime import Runtime
    from kawa.serve.worker import part_alive
    from kawa.triggers import state

    runtime = Runtime(config)
    try:
        alive = part_alive(runtime.state_path, "triggers")
        return state.status(runtime.online, config.project, runtime.event_log.end_offset(), running=alive)
    finally:
        runtime.close()


@triggers_app.command("list")
def list_triggers(as_json: JsonOption = False) -> None:
    """List the triggers in the project's code with what they have done (matched, scored, errors, lag)."""
    config = settings()
    declared = _declared(config)
    live = _live(config)
    counts = {t["name"]: t for t in live["triggers"]}
    worker = live["worker"] or {}
    rows = []
    for name, trigger in declared.items():
        found = counts.get(name, {})
        rows.append(
            {
                **trigger.describe(),
                **{k: found.get(k, 0) for k in ("matched", "scored", "errors")},
                "last_latency_ms": found.get("last_latency_ms"),
                "last_version": found.get("last_version"),
                "running": bool(found.get("active")),
            }
        )
    if as_json:
        console.print_json(json.dumps({"triggers": rows, "worker": live["worker"]}))
        return
    if not rows:
        console.print(
            f"no triggers in {', '.join(config.code)} or triggers.yaml; "
            "declare one with kawa.triggers.Trigger",
            style="dim",
            highlight=False,
        )
        return
    lag = _lag(worker)
    table = Table("name", "on", "key", "model@alias", "matched", "scored", "errors", "lag", "last latency")
    for r in rows:
        latency = r["last_latency_ms"]
        version = f" (v{r['last_version']})" if r["last_version"] else ""
        table.add_row(
            r["name"] + ("" if r["running"] else " [dim](not running: restart kawa serve)[/dim]"),
            json.dumps(r["on"]),
            r["key"],
            f"{r['model']}@{r['alias']}{version}",
            str(r["matched"]),
            str(r["scored"]),
            f"[red]{r['errors']}[/red]" if r["errors"] else "0",
            lag,
            f"{latency:.1f} ms" if latency is not None else "",
        )
    console.print(table)


@triggers_app.command("errors")
def errors(
    name: Annotated[str, typer.Argument(help="Trigger name")],
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show a trigger's newest error records: which event, at which stage, and why."""
    from kawa.runtime import Runtime
    from kawa.triggers import state

    config = settings()
    runtime = Runtime(config)
    try:
        found = state.errors(runtime.online, config.project, name, limit)
    finally:
        runtime.close()
    if as_json:
        console.print_json(json.dumps(found))
        return
    if not found:
        console.print(f"no error records for trigger {name!r}", highlight=False)
        return
    table = Table("at", "stage", "event_id", "entity", "version", "error")
    for e in found:
        table.add_row(
            e["at"], e["stage"], e.get("event_id") or "", e.get("entity") or "",
            str(e.get("model_version") or ""), e["error"],
        )  # fmt: skip
    console.print(table)


def _lag(worker: dict[str, Any]) -> str:
    if not worker:
        return "(worker not started)"
    if not worker.get("lag_bytes"):
        return "0"
    return f"{worker['lag_s']:.1f} s ({worker['lag_bytes']:,} B)"


def register(app: typer.Typer) -> None:
    app.add_typer(triggers_app, name="triggers")
