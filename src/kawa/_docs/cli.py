"""docs/reference/cli.md: every `kawa` command and subcommand with its arguments and options."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

from kawa._docs._md import GENERATED, code, table


def cli_root() -> Any:
    """The click command tree of the `kawa` typer app."""
    import typer.main

    from kawa.cli import app

    return typer.main.get_command(app)


def commands(root: Any, path: tuple[str, ...] = ("kawa",)) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(("kawa", "pipeline", "run"), command) for the root and every command under it, depth first."""
    yield path, root
    for name, command in getattr(root, "commands", {}).items():
        if not command.hidden:
            yield from commands(command, (*path, name))


def cli_markdown(root: Any = None) -> str:
    """The CLI reference page for the command tree `root` (kawa's own by default)."""
    root = root or cli_root()
    found = list(commands(root))
    lines = [
        GENERATED,
        "",
        "# CLI",
        "",
        "Every `kawa` command with its arguments and options, generated from the command itself "
        "(`kawa COMMAND --help` prints the same). Commands work in the project whose `kawa.yaml` is found "
        "from the working folder up, or the file `KAWA_CONFIG` names.",
        "",
        *table(["command", "what it does"], [(code(" ".join(p)), _summary(c)) for p, c in found[1:]]),
    ]
    for path, command in found:
        level = "#" * min(len(path) + 1, 4)
        lines += [f"{level} {' '.join(path)}", "", (command.help or "").strip(), ""]
        usage = " ".join([*path, *_usage(command)])
        lines += ["```", usage, "```", ""]
        lines += table(
            ["argument or option", "type", "default", "description"],
            [_param(p) for p in command.params if not getattr(p, "hidden", False)],
        )
    return "\n".join(lines).rstrip() + "\n"


def _summary(command: Any) -> str:
    text = (command.short_help or command.help or "").strip()
    return text.split("\n\n")[0]


def _usage(command: Any) -> list[str]:
    parts = ["[OPTIONS]"] if any(_is_option(p) for p in command.params) else []
    for param in command.params:
        if not _is_option(param):
            name = param.name.upper()
            parts.append(name if param.required else f"[{name}]")
    if getattr(command, "commands", None):
        parts.append("COMMAND [ARGS]...")
    return parts


def _is_option(param: Any) -> bool:
    return bool(param.opts) and param.opts[0].startswith("-")


def _param(param: Any) -> tuple[str, str, str, str]:
    if _is_option(param):
        names = " / ".join(code(o) for o in [*param.opts, *param.secondary_opts])
    else:
        names = code(param.name.upper())
    required = " (required)" if param.required else ""
    return names + required, _type_name(param), _default(param), getattr(param, "help", None) or ""


def _type_name(param: Any) -> str:
    if getattr(param, "is_bool_flag", False) or getattr(param, "is_flag", False):
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if annotation is None:
        kind = getattr(param, "type", None)
        return str(getattr(kind, "name", "text"))
    return _annotation_name(annotation) + (" (repeatable)" if param.multiple else "")


def _annotation_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [_annotation_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(names)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return _annotation_name(args[0]) if args else "text"
    name = getattr(annotation, "__name__", str(annotation))
    return {"str": "text", "int": "integer", "float": "number", "Path": "path", "bool": "flag"}.get(
        name, name
    )


def _default(param: Any) -> str:
    default = param.default
    if default is None or callable(default) or getattr(param, "required", False):
        return ""
    if type(default).__name__ == "DefaultPlaceholder":
        return ""
    if isinstance(default, bool) and (getattr(param, "is_flag", False)):
        names = param.opts if default else param.secondary_opts
        return code(names[0]) if names else ""
    if isinstance(default, list | tuple) and not default:
        return ""
    return code(default)
