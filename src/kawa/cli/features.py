"""`kawa features list|show|materialize`: the project's feature views from the shell."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from kawa.cli._common import console, fail, settings

if TYPE_CHECKING:
    from kawa.config import Config
    from kawa.features import FeatureView, Label

features_app = typer.Typer(
    help="Feature views and labels defined in the project's code.", no_args_is_help=True
)

ProjectOption = Annotated[str | None, typer.Option(help="Project (default: the one in kawa.yaml)")]


def _project_objects(config: Config) -> tuple[dict[str, FeatureView], dict[str, Label]]:
    """The feature views and labels found in the project's code files."""
    from kawa.project_code import ProjectCodeError, load

    try:
        found = load(config)
    except ProjectCodeError as exc:
        raise fail(str(exc)) from None
    views = found.get("feature_view", {})
    labels = found.get("label", {})
    return dict(sorted(views.items())), dict(sorted(labels.items()))  # type: ignore[arg-type]


def _pick(views: dict[str, FeatureView], names: list[str], config: Config) -> list[FeatureView]:
    if not views:
        files = ", ".join(config.code) or "(none)"
        raise fail(
            f"no feature views in the project's code ({files}); define one with kawa.features.FeatureView"
        )
    unknown = [n for n in names if n not in views]
    if unknown:
        raise fail(f"no feature view named {', '.join(map(repr, unknown))}; known: {', '.join(views)}")
    return [views[n] for n in names] if names else list(views.values())


@features_app.command("list")
def list_features(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List the feature views and labels defined in the project's code."""
    config = settings()
    views, labels = _project_objects(config)
    rows = [
        {
            "name": v.name,
            "kind": "feature view",
            "entity": v.entity.name,
            "features": v.feature_names if v.is_spec else "sql",
            "description": v.description,
        }
        for v in views.values()
    ] + [
        {
            "name": x.name,
            "kind": "label",
            "entity": x.entity.name,
            "features": [],
            "description": x.description,
        }
        for x in labels.values()
    ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    if not rows:
        console.print(f"no feature views or labels in {', '.join(config.code)}", style="dim", highlight=False)
        return
    table = Table("name", "kind", "entity", "features", "description")
    for r in rows:
        features = r["features"]
        shown = features if isinstance(features, str) else f"{len(features)}" if features else ""
        table.add_row(str(r["name"]), str(r["kind"]), str(r["entity"]), shown, str(r["description"]))
    console.print(table)


@features_app.command("show")
def show(view: Annotated[str, typer.Argument(help="Feature view name")]) -> None:
    """Print a feature view's features and the SQL it runs."""
    config = settings()
    views, _ = _project_objects(config)
    (found,) = _pick(views, [view], config)
    console.print(f"{found.name}: keyed by {found.entity.name} ({found.entity.key})", highlight=False)
    for name, f in found.features.items():
        parts = [
            f.agg,
            f.expr or "",
            f"where {f.where}" if f.where else "",
            f"window {f.window}" if f.window else "",
        ]
        console.print(f"  {name}: {' '.join(p for p in parts if p)}", highlight=False)
    console.print(found.sql(), highlight=False, markup=False)


@features_app.command("materialize")
def materialize(
    views: Annotated[list[str] | None, typer.Argument(help="Feature views (default: all of them)")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Compute values at this time (ISO; default: now)")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Write the latest feature values per entity to the online store."""
    from kawa.features import FeatureError
    from kawa.features import materialize as write
    from kawa.features.materialize import namespace
    from kawa.runtime import Runtime

    config = settings()
    found, _ = _project_objects(config)
    chosen = _pick(found, list(views or []), config)
    runtime = Runtime(config)
    try:
        warehouse = runtime.warehouse(project)
        counts = write(warehouse, runtime.online, chosen, as_of=as_of)
    except FeatureError as exc:
        raise fail(str(exc)) from None
    finally:
        runtime.close()
    for name, count in counts.items():
        console.print(
            f"{name}: {count} entities -> online store {namespace(warehouse.project, name)}", highlight=False
        )


def register(app: typer.Typer) -> None:
    app.add_typer(features_app, name="features")
