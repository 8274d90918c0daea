"""The examples in the docs and README name what exists: every `kawa ...` line in their shell blocks a
command and options of the CLI, every `/v1/...` path a route of the HTTP API, every `from kawa... import`
a name kawa has, so a renamed command, option, route or function cannot leave the pages behind."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from kawa._docs.http import live_app, operations
from kawa.cli import app

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL = {"", "sh", "bash", "console", "shell"}
# A path as the pages write it: `/v1/predictions/loyalty/u_000123`, `/v1/runs/{id}/logs?follow=true`.
IMPORT = re.compile(r"^\s*from (kawa[\w.]*) import \(?([\w, ]+)\)?", re.MULTILINE)
API_PATH = re.compile(r"/v1/[A-Za-z0-9_./{}<>\-\[\]|]*")


def _pages() -> list[Path]:
    pages = [
        p for p in (ROOT / "docs").rglob("*.md") if "reference" not in p.relative_to(ROOT / "docs").parts
    ]
    return [*sorted(pages), ROOT / "README.md"]


def kawa_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, command) for every `kawa ...` command in the page's shell code blocks."""
    lines = text.splitlines()
    language = None
    number = 0
    while number < len(lines):
        line = lines[number].strip()
        start = number
        fence = FENCE.match(line)
        if fence:
            language = None if language is not None else fence.group(1)
        elif language in SHELL:
            while line.endswith("\\") and number + 1 < len(lines):
                number += 1
                line = line[:-1].rstrip() + " " + lines[number].strip()
            for part in re.split(r"&&|;|\|", line.removeprefix("$ ")):
                if part.strip().startswith("kawa "):
                    yield start + 1, part.strip()
        number += 1


def problem(root: Any, command: str) -> str | None:
    """What is wrong with `command` against the CLI tree `root`, or None."""
    try:
        tokens = shlex.split(command, comments=True)
    except ValueError:
        tokens = command.split()
    node, path = root, ["kawa"]
    for token in tokens[1:]:
        if token not in getattr(node, "commands", {}):
            break
        node = node.commands[token]
        path.append(token)
    rest = tokens[len(path) :]
    if getattr(node, "commands", None) and rest and not rest[0].startswith("-"):
        return f"{' '.join(path)} has no command {rest[0]!r}"
    known = {"--help"}
    for param in node.params:
        known.update([*param.opts, *param.secondary_opts])
    for token in rest:
        name = token.split("=", 1)[0]
        if name.startswith("-") and name != "-" and name not in known:
            return f"{' '.join(path)} has no option {name}"
    return None


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_kawa_command_in_the_examples_exists(page: Path) -> None:
    root = typer.main.get_command(app)
    wrong = [
        f"{page.name}:{number}: {command}: {found}"
        for number, command in kawa_lines(page.read_text())
        if (found := problem(root, command))
    ]
    assert wrong == []


def test_commands_are_read_across_continuations_and_separators() -> None:
    page = "```sh\nkawa sql 'SELECT 1' \\\n  --project shop  # x\necho; kawa keys\n```\nkawa demo\n"
    assert list(kawa_lines(page)) == [(2, "kawa sql 'SELECT 1' --project shop  # x"), (4, "kawa keys")]


def test_a_renamed_option_is_caught() -> None:
    root = typer.main.get_command(app)
    assert problem(root, "kawa pipeline run loyalty -p a=1 --no-cache") is None
    assert problem(root, "kawa pipeline run loyalty --nocache") == "kawa pipeline run has no option --nocache"
    assert problem(root, "kawa pipeline start loyalty") == "kawa pipeline has no command 'start'"
    assert sum(1 for page in _pages() for _ in kawa_lines(page.read_text())) > 100


def test_every_api_path_in_the_pages_is_a_route() -> None:
    routes = [
        re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        for _, path, _ in operations(live_app().openapi())
    ]
    found, wrong = 0, []
    for page in _pages():
        for match in API_PATH.finditer(page.read_text()):
            path = match.group(0).rstrip(".,").rstrip("/")
            if any(c in path for c in "[|") or "..." in path:
                continue  # shorthand for several routes: /v1/bandits[/{name}], /v1/events/recent|rejected
            found += 1
            if not any(route.match(path) for route in routes):
                wrong.append(f"{page.name}: {path}")
    assert found > 50
    assert wrong == []


def test_every_import_from_kawa_in_the_pages_works() -> None:
    found, wrong = 0, []
    for page in _pages():
        for match in IMPORT.finditer(page.read_text()):
            try:
                module = importlib.import_module(match.group(1))
            except ImportError as exc:
                wrong.append(f"{page.name}: {exc}")
                continue
            for name in filter(None, (n.strip() for n in match.group(2).split(","))):
                found += 1
                if not (hasattr(module, name) or _submodule(module, name)):
                    wrong.append(f"{page.name}: from {module.__name__} import {name}")
    assert found > 20
    assert wrong == []


def _submodule(package: Any, name: str) -> bool:
    return hasattr(package, "__path__") and importlib.util.find_spec(f"{package.__name__}.{name}") is not None
