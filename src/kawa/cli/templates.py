"""`kawa templates`, `kawa new pipeline --template NAME` and `kawa init --template NAME`: starting points."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kawa.cli._common import config_file, console, fail

if TYPE_CHECKING:
    from kawa.templates.catalog import Installed

new_app = typer.Typer(
    help="Add to the project from a template: kawa new pipeline --template NAME.",
    invoke_without_command=True,
)

TemplateOption = Annotated[
    str | None, typer.Option("--template", "-t", help="The template to copy (`kawa templates` lists them)")
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace a file of the template's name that exists already")
]


def templates_list(
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a Markdown list (README's Templates section)")
    ] = False,
) -> None:
    """List the templates: use cases with ready pipelines that run on the demo shop (`kawa demo`)."""
    from kawa.templates.catalog import markdown, templates

    if as_markdown:
        console.print(markdown(), end="", highlight=False, markup=False, soft_wrap=True)
        return

    table = Table("template", "what it does", "declares", "needs")
    table.columns[0].no_wrap = True
    table.columns[1].min_width = 40
    table.columns[3].no_wrap = True
    for name, (template, _) in sorted(templates().items()):
        declares = ", ".join([*template.pipelines, *template.extras])
        table.add_row(*(escape(cell) for cell in (name, template.summary, declares, template.needs)))
    console.print(table)
    console.print(
        "start a project with `kawa init --template NAME DIR`, or add one to this project with "
        "`kawa new pipeline --template NAME`",
        highlight=False,
    )


@new_app.callback()
def new(
    ctx: typer.Context,
    list_: Annotated[bool, typer.Option("--list", help="List the templates")] = False,
) -> None:
    """Add a template's pipelines to the project (`kawa new pipeline --template NAME`)."""
    if list_:
        templates_list()
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        console.print(ctx.get_help())
        raise typer.Exit()


@new_app.command("pipeline")
def new_pipeline(template: TemplateOption = None, force: ForceOption = False) -> None:
    """Copy a template into the project as <template>.py and list it in kawa.yaml's `code`."""
    from kawa.templates.catalog import TemplateError, install

    if template is None:
        raise fail("name a template: kawa new pipeline --template NAME (`kawa templates` lists them)")
    path = config_file()
    if path is None:
        raise fail(f"no kawa.yaml here or above; start a project with `kawa init --template {template} DIR`")
    try:
        installed = install(template, path, force=force)
    except TemplateError as exc:
        raise fail(escape(str(exc))) from None
    _print_installed(installed)


def init_from_template(folder: Path, project: str, template: str, force: bool) -> None:
    """`kawa init --template`: a new project whose code is the template's module, copied."""
    from kawa.auth import ProjectNameError
    from kawa.cli.project import _print_keys, init_project
    from kawa.config import CONFIG_NAME
    from kawa.templates.catalog import TemplateError, find, install

    try:
        found, _ = find(template)
        target = folder / f"{found.name}.py"
        if target.exists() and not force:
            raise TemplateError(
                f"{target} exists already; pass --force to replace it, or pick another folder"
            )
        if (folder / CONFIG_NAME).exists():
            raise TemplateError(
                f"{folder / CONFIG_NAME} exists already; add the template to that project with "
                f"`kawa new pipeline --template {template}` run there"
            )
        path, config = init_project(folder, project)
        installed = install(template, path, force=force)
    except (TemplateError, FileExistsError, ProjectNameError) as exc:
        raise fail(escape(str(exc))) from None
    console.print(f"# wrote {path}", highlight=False)
    _print_keys(project, config.projects[project])
    _print_installed(installed)


def _print_installed(installed: Installed) -> None:
    template = installed.template
    verb = "replaced" if installed.replaced else "wrote"
    lines = [f"# {verb} {installed.path} (the {template.name} template: edit its SQL and parameters)"]
    if installed.listed:
        lines.append(f"# listed {installed.path.name} under code: in kawa.yaml")
    if template.extras:
        lines.append(f"# it also declares {', '.join(template.extras)}")
    if template.needs:
        lines.append(f"# it needs {template.needs}: pip install '{template.needs}'")
    lines += [f"kawa pipeline run {pipeline}" for pipeline in template.pipelines]
    for line in lines:
        console.print(line, highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("templates")(templates_list)
    app.add_typer(new_app, name="new")
