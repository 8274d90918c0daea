"""`kawa init` and `kawa keys`: projects (tenants) and their write, read and admin keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kawa.auth import ProjectNameError, Role, generate_key, generate_keys, validate_project_name
from kawa.cli._common import config_file, console, fail, settings
from kawa.cli.templates import ForceOption
from kawa.config import CONFIG_NAME, Config, ProjectKeys, dump_config, load_config
from kawa.runtime import Runtime

keys_app = typer.Typer(help="List, create and revoke project API keys.", invoke_without_command=True)


def _print_keys(project: str, keys: ProjectKeys) -> None:
    console.print(f"project={project}", highlight=False)
    console.print(f"write_key={keys.write_key}", highlight=False)
    console.print(f"read_key={keys.read_key}", highlight=False)
    console.print(f"admin_key={keys.admin_key}", highlight=False)


def init_project(folder: Path, project: str) -> tuple[Path, Config]:
    """Write kawa.yaml with `project` and new keys into `folder`, and register the keys."""
    validate_project_name(project)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_NAME
    if path.exists():
        raise FileExistsError(
            f"{path} exists already; use `kawa keys create --project NAME` to add a project"
        )
    config = Config(project=project, projects={project: generate_keys()})
    path.write_text(dump_config(config))
    path.chmod(0o600)  # it holds the admin key
    config = load_config(path)
    runtime = Runtime(config)
    try:
        runtime.register_configured_keys()
    finally:
        runtime.close()
    return path, config


def init(
    folder: Annotated[Path, typer.Argument(help="Folder for kawa.yaml (created if missing)")] = Path("."),
    project: Annotated[str, typer.Option(help="Name of the first project")] = "default",
    template: Annotated[str | None, typer.Option(help="Start from a template (`kawa templates`)")] = None,
    force: ForceOption = False,
) -> None:
    """Create kawa.yaml with a project and its write, read and admin keys, and print the keys."""
    if template is not None:
        from kawa.cli.templates import init_from_template

        return init_from_template(folder, project, template, force)
    try:
        path, config = init_project(folder, project)
    except (FileExistsError, ProjectNameError) as exc:
        raise fail(str(exc)) from None
    console.print(f"# wrote {path}", highlight=False)
    _print_keys(project, config.projects[project])


@keys_app.callback()
def keys_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of key=value lines")] = False,
) -> None:
    """Print every project's keys from kawa.yaml."""
    if ctx.invoked_subcommand is not None:
        return
    config = settings()
    if as_json:
        data = {
            p: {"write_key": k.write_key, "read_key": k.read_key, "admin_key": k.admin_key}
            for p, k in config.projects.items()
        }
        console.print_json(json.dumps(data))
        return
    if not config.projects:
        raise fail("no projects in kawa.yaml; run `kawa init` first")
    for name, keys in config.projects.items():
        _print_keys(name, keys)


@keys_app.command("create")
def keys_create(project: Annotated[str, typer.Option(help="Name of the new project")]) -> None:
    """Add a project (tenant) with its own keys to kawa.yaml and print them."""
    path = config_file()
    if path is None:
        raise fail("no kawa.yaml here; run `kawa init` first")
    config = settings()
    try:
        validate_project_name(project)
    except ProjectNameError as exc:
        raise fail(str(exc)) from None
    if project in config.projects:
        raise fail(f"project {project!r} exists already; `kawa keys` prints its keys")
    config.projects[project] = generate_keys()
    path.write_text(dump_config(config))
    runtime = Runtime(config)
    try:
        runtime.keyring.add_project(project, config.projects[project])
    finally:
        runtime.close()
    _print_keys(project, config.projects[project])


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="The key, or its key id")]) -> None:
    """Revoke a key at once; kawa.yaml gets a new key of the same role in its place."""
    config = settings()
    runtime = Runtime(config)
    try:
        if not runtime.keyring.revoke(key):
            raise fail("no such key (or revoked already)")
        path = config_file()
        for name, keys in config.projects.items():
            for field in ("write_key", "read_key", "admin_key"):
                value = getattr(keys, field)
                if key == value or value[5:].startswith(key + "_"):  # the key, or its id (kw_x_<id>_...)
                    new = generate_key(Role(field.removesuffix("_key")))
                    setattr(keys, field, new)
                    runtime.keyring.register(name, new)
                    console.print(f"{field}={new}", highlight=False)
        if path is not None:
            path.write_text(dump_config(config))
    finally:
        runtime.close()
    console.print("revoked", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.add_typer(keys_app, name="keys")
