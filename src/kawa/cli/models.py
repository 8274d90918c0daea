"""`kawa models list|show|promote`: the model registry from the shell."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from kawa.cli._common import console, fail, settings

if TYPE_CHECKING:
    from kawa.models import ModelVersion, Registry

models_app = typer.Typer(help="Registered models: versions, metrics and aliases.", no_args_is_help=True)

ProjectOption = Annotated[str | None, typer.Option(help="Project (default: the one in kawa.yaml)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]


@contextmanager
def _registry(project: str | None) -> Iterator[tuple[Registry, str]]:
    """The registry over the configured stores, and the project to look in."""
    from kawa.models import ModelNotFoundError, Registry
    from kawa.runtime import Runtime

    config = settings()
    runtime = Runtime(config)
    registry = Registry.from_runtime(runtime)
    try:
        yield registry, project or config.project
    except (ModelNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    finally:
        registry.close()
        runtime.close()


@models_app.command("list")
def list_models(project: ProjectOption = None, as_json: JsonOption = False) -> None:
    """List the project's models with their newest version and aliases."""
    with _registry(project) as (registry, name):
        found = registry.list_models(name)
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "name": m.name,
                        "latest_version": m.latest_version,
                        "versions": m.versions,
                        "aliases": m.aliases,
                        "description": m.description,
                        "created_at": m.created_at.isoformat(),
                    }
                    for m in found
                ]
            )
        )
        return
    if not found:
        console.print(
            f"no models in project {name!r} yet; a training pipeline registers them", highlight=False
        )
        return
    table = Table("name", "latest", "versions", "aliases", "created", "description")
    for m in found:
        aliases = ", ".join(f"{a}={v}" for a, v in m.aliases.items())
        table.add_row(
            m.name, str(m.latest_version or ""), str(m.versions), aliases, _when(m.created_at), m.description
        )
    console.print(table)


@models_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Model name")],
    version: Annotated[int | None, typer.Option(help="Version (default: the newest)")] = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one version: metrics, params, input signature, aliases and training data."""
    with _registry(project) as (registry, project_name):
        found = registry.show(project_name, name, version)
    if as_json:
        console.print_json(json.dumps(found.to_json()))
        return
    _print_version(found)


@models_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Model name")],
    version: Annotated[int, typer.Argument(help="Version to point the alias at")],
    alias: Annotated[str, typer.Option(help="Alias to move, e.g. production or staging")] = "production",
    project: ProjectOption = None,
) -> None:
    """Point an alias (production by default) at a version; serving follows at its next request."""
    with _registry(project) as (registry, project_name):
        before = registry.promote(project_name, name, version, alias)
    was = "new alias" if before is None else f"was version {before}"
    console.print(f"{name}: {alias} -> version {version} ({was})", highlight=False)


def _print_version(v: ModelVersion) -> None:
    output = v.signature.get("output", {})
    console.print(f"[bold]{v.name}[/bold] version {v.version}", highlight=False)
    facts = {
        "project": v.project,
        "aliases": ", ".join(v.aliases) or "(none)",
        "flavor": v.flavor,
        "task": output.get("task", ""),
        "label": output.get("label", ""),
        "output": _output(output),
        "run": v.run_id or "(none)",
        "created": _when(v.created_at),
        "artifact": v.artifact,
    }
    for key, value in facts.items():
        console.print(f"  {key:9} {value}", highlight=False)
    scalars = {k: m for k, m in v.metrics.items() if not isinstance(m, dict | list)}
    if scalars:
        table = Table("metric", "value", title="holdout metrics", title_justify="left")
        for key, value in scalars.items():
            table.add_row(key, _number(value))
        console.print(table)
    inputs = Table("input", "kind", "type", "categories", title="signature", title_justify="left")
    for field in v.signature.get("inputs", []):
        categories = field.get("categories")
        shown = "" if categories is None else _shorten(", ".join(map(str, categories)), 60)
        if categories is not None and field.get("unknown") == "error":
            shown += " (unknown: error)"
        inputs.add_row(field["name"], field["kind"], field["type"], shown)
    console.print(inputs)
    if v.training:
        console.print("training data", style="italic")
        for key, value in v.training.items():
            console.print(f"  {key}: {value}", highlight=False)
    params = _flatten(v.params)
    if params:
        table = Table("param", "value", title="params", title_justify="left")
        for key, value in params.items():
            table.add_row(key, _shorten(str(value), 80))
        console.print(table)
    example = v.signature.get("example")
    if example:
        console.print("try it", style="italic")
        console.print(f"  kawa predict {v.name} --json '{json.dumps(example, default=str)}'", highlight=False)


def _output(output: dict[str, Any]) -> str:
    if output.get("kind") == "probability":
        return f"probability that {output.get('label')} = {output.get('positive_class')!r}"
    if output.get("kind") == "probabilities":
        return f"probability of each class of {output.get('label')}: {output.get('classes')}"
    return f"predicted {output.get('label')}"


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif value is not None:
            flat[f"{prefix}{key}"] = value
    return flat


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else ""


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
