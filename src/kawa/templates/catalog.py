"""The catalogue of templates: every module of `kawa.templates` that declares a `TEMPLATE` is one.

A template module holds ready pipelines (and the segments, triggers or bandits that go with them) for one
use case, runs on the demo shop as it is, and is adapted by editing its SQL and parameters:

    TEMPLATE = Template(
        name="loyalty",
        summary="will a user buy in the next 14 days? a LightGBM score per user, coupon A or B",
        pipelines=("loyalty",),
    )

`templates()` finds them all, so a new template needs no registration beyond its own module.
`install(name, kawa_yaml)` copies a template's module into a project as `<name>.py` (its own file
from then on, to edit) and adds it to kawa.yaml's `code` list (`kawa init --template`, `kawa new
pipeline --template`).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Template:
    """One use case: its name, a one-line summary, and the names of the pipelines its module defines."""

    name: str
    summary: str
    pipelines: tuple[str, ...]
    # Other top-level names of the module a project gets with it (segments, triggers, bandits, views).
    extras: tuple[str, ...] = field(default=())
    # Extra packages it needs (e.g. "kawa[torch]"), shown next to it; empty when the base install does.
    needs: str = ""


def templates() -> dict[str, tuple[Template, str]]:
    """Every template by name, with the module that declares it (`kawa.templates.<module>`)."""
    import kawa.templates as package

    found: dict[str, tuple[Template, str]] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "catalog":
            continue
        module = importlib.import_module(f"kawa.templates.{info.name}")
        template = getattr(module, "TEMPLATE", None)
        if isinstance(template, Template):
            if template.name in found:
                raise ValueError(
                    f"two templates are named {template.name!r}: kawa.templates.{info.name} and "
                    f"{found[template.name][1]}; rename one"
                )
            found[template.name] = (template, module.__name__)
    return found


def markdown() -> str:
    """The templates as a Markdown list, one line each (README's Templates section; `kawa templates
    --markdown`)."""
    lines = []
    for name, (template, _) in sorted(templates().items()):
        needs = f" (needs `{template.needs}`)" if template.needs else ""
        lines.append(f"- `{name}`: {template.summary}{needs}")
    return "\n".join(lines) + "\n"


class TemplateError(ValueError):
    """A template that does not exist, or cannot be added to a project; the message says what to do."""


def find(name: str) -> tuple[Template, str]:
    """The template called `name` and its module; TemplateError listing the templates otherwise."""
    found = templates()
    if name not in found:
        raise TemplateError(f"no template named {name!r}; templates: {', '.join(sorted(found))}")
    return found[name]


def project_source(name: str) -> str:
    """Template `name`'s module source as a project file: a header saying where it came from, relative
    imports made absolute, and the `TEMPLATE` declaration (which only the catalogue reads) left out."""
    template, module_name = find(name)
    module = importlib.import_module(module_name)
    source = Path(module.__file__ or "").read_text()
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    drop: set[int] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "TEMPLATE" for t in targets):
            drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module == "kawa.templates.catalog":
            if [a.name for a in node.names] == ["Template"]:
                drop.update(range(node.lineno - 1, node.end_lineno or node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.level:
            package = module_name.rsplit(".", node.level)[0]
            absolute = f"{package}.{node.module}" if node.module else package
            names = ", ".join(a.name if a.asname is None else f"{a.name} as {a.asname}" for a in node.names)
            lines[node.lineno - 1] = f"from {absolute} import {names}\n"
            drop.update(range(node.lineno, node.end_lineno or node.lineno))
    body = "".join(line for i, line in enumerate(lines) if i not in drop).rstrip("\n") + "\n"
    header = (
        f"# The {template.name} template, copied from {module_name} (`kawa templates` lists the others).\n"
        "# It is this project's own code now: edit its SQL and parameters freely.\n"
    )
    return header + body


@dataclass(frozen=True)
class Installed:
    """A template added to a project: the file written, and whether it replaced one / was added to code."""

    template: Template
    path: Path
    replaced: bool
    listed: bool


def install(name: str, config_path: Path, *, force: bool = False) -> Installed:
    """Copy template `name` into the project of `config_path` (kawa.yaml) as `<name>.py` and list it in
    kawa.yaml's `code`. An existing file is replaced only with `force`. The project's code is then
    loaded; if it no longer loads (two pipelines of one name, a missing extra), both files are put back
    as they were and TemplateError says why."""
    from kawa.config import load_config
    from kawa.project_code import load

    template, module_name = find(name)
    target = config_path.parent / f"{template.name}.py"
    before = target.read_text() if target.exists() else None
    if before is not None and not force:
        raise TemplateError(
            f"{target} exists already; pass --force to replace it with the {name} template (its edits are "
            "lost), or rename that file first"
        )
    config_text = config_path.read_text()
    target.write_text(project_source(name))
    listed = False
    try:
        updated = with_code_file(config_text, target.name, load_config(config_path).code, config_path.parent)
        if updated != config_text:
            config_path.write_text(updated)
            listed = True
        load(load_config(config_path))
    except Exception as exc:  # whatever the project's code raised on import: put both files back first
        config_path.write_text(config_text)
        if before is None:
            target.unlink()
        else:
            target.write_text(before)
        hint = f" (it needs {template.needs})" if template.needs else ""
        if re.search(r"two \w+s are named", str(exc)):
            hint = f"; to use the copy instead, drop the import of {module_name} from the other file"
        raise TemplateError(
            f"the {name} template does not fit this project, so nothing was changed: {exc}{hint}"
        ) from exc
    return Installed(template, target, replaced=before is not None, listed=listed)


_CODE_BLOCK = re.compile(r"^code:[ \t]*\n((?:[ \t]*-[ \t]+.*\n)+)", re.MULTILINE)


def with_code_file(text: str, filename: str, code: list[str], root: Path) -> str:
    r"""kawa.yaml `text` with `filename` added to its `code` list (`code`: the list now in effect, with
    defaults); the text as it is when the list names that file already. Comments and layout are kept
    where the list is missing or a plain block list.

    >>> print(with_code_file("project: shop\n", "rfm.py", ["features.py", "pipelines.py"], Path(".")))
    project: shop
    code:
    - features.py
    - pipelines.py
    - rfm.py
    <BLANKLINE>
    """
    if any((root / c).resolve() == (root / filename).resolve() for c in code):
        return text
    wanted = [*code, filename]
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raise TemplateError("kawa.yaml does not hold a mapping at the top level; fix it first")
    text = text if not text or text.endswith("\n") else text + "\n"
    block = _CODE_BLOCK.search(text)
    if "code" not in raw:
        updated = text + yaml.safe_dump({"code": wanted}, sort_keys=False)
    elif block is not None:
        last = block.group(1).splitlines()[-1]
        indent = last[: len(last) - len(last.lstrip())]
        updated = text[: block.end()] + f"{indent}- {filename}\n" + text[block.end() :]
    else:
        updated = yaml.safe_dump({**raw, "code": wanted}, sort_keys=False)
    if (yaml.safe_load(updated) or {}).get("code") != wanted:  # a layout the edit did not foresee
        updated = yaml.safe_dump({**raw, "code": wanted}, sort_keys=False)
    return updated
