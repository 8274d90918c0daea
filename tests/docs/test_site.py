"""The documentation site: the generated references list every route, command and setting of the live
application, and `mkdocs build --strict` passes on the pages with no asset fetched from another host."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import typer.main
import yaml

from kawa._docs import write_reference
from kawa._docs.http import NO_KEY, key_rule, live_app, route_keys
from kawa.cli import app as cli_app
from kawa.config import Config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site's sources copied to a temporary folder, the references written there, and the site built."""
    work = tmp_path_factory.mktemp("site")
    shutil.copytree(ROOT / "docs", work / "docs", ignore=shutil.ignore_patterns("reference"))
    shutil.copy(ROOT / "mkdocs.yml", work / "mkdocs.yml")
    write_reference(work / "docs" / "reference", ROOT / "CHANGELOG.md")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(work / "mkdocs.yml"), "-d", "site"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return work


def _page(built: Path, name: str) -> str:
    return (built / "docs" / "reference" / name).read_text()


def test_the_site_builds_with_every_nav_page(built: Path) -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    for source in _nav_pages(nav):
        assert (built / "site" / source.replace(".md", ".html")).is_file(), source
    for name in ("index", "reference/http", "reference/cli", "reference/config", "operations/backup"):
        assert (built / "site" / f"{name}.html").is_file(), name


def test_no_page_loads_an_asset_from_another_host(built: Path) -> None:
    remote = re.compile(r"""<(?:script|link|img)\b[^>]*(?:src|href)=["'](?:https?:)?//""", re.IGNORECASE)
    pages = list((built / "site").rglob("*.html"))
    assert pages
    offenders = [str(p.relative_to(built)) for p in pages if remote.search(p.read_text())]
    assert offenders == []


def test_the_http_reference_lists_every_route_of_the_app(built: Path) -> None:
    text = _page(built, "http.md")
    schema = live_app().openapi()
    operations = [(m.upper(), p, op) for p, item in schema["paths"].items() for m, op in item.items()]
    assert len(operations) > 40
    for method, path, op in operations:
        assert f"\n### {method} {path}\n" in text, f"{method} {path} is not in the HTTP reference"
        assert op.get("summary"), f"{method} {path} has no summary: give the route summary=..."


def test_each_route_says_which_key_it_needs() -> None:
    keys = route_keys(live_app())
    assert keys["POST", "/v1/events"] == "write key (or admin key)"
    assert keys["POST", "/v1/sql"] == "admin key"
    assert keys["GET", "/v1/predictions/{model}/{entity_id}"] == "read key (or admin key)"
    assert keys["GET", "/v1/runs/{run_id}"] == "read key (or admin key)"  # checked inside a helper
    assert keys["GET", "/healthz"] == NO_KEY


def test_key_rules_follow_the_helpers_a_route_calls() -> None:
    def open_route() -> None:
        return None

    assert key_rule(open_route) == NO_KEY
    assert key_rule(open_route, [admin_access]) == "admin key"  # a Depends(admin_access)
    assert key_rule(_module_route) == "admin key"  # checked two helpers down


def admin_access(request: Any) -> None:
    """Stands in for kawa.api.auth.admin_access, by name."""


def _module_helper(request: Any) -> None:
    admin_access(request)


def _module_route(request: Any) -> None:
    _module_helper(request)


def _commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield from _commands(sub, (*path, name))


def test_the_cli_reference_lists_every_command_and_option(built: Path) -> None:
    text = _page(built, "cli.md")
    found = list(_commands(typer.main.get_command(cli_app), ("kawa",)))
    assert any(path == ("kawa", "pipeline", "run") for path, _ in found)
    for path, command in found:
        heading = re.search(rf"^#+ {re.escape(' '.join(path))}$", text, re.MULTILINE)
        assert heading, f"{' '.join(path)} is not in the CLI reference"
        assert (command.help or "").strip(), f"{' '.join(path)} has no help text: give it a docstring"
        section = text[heading.end() :].split("\n#", 1)[0]
        for param in command.params:
            name = param.opts[0] if param.opts[0].startswith("-") else param.name.upper()
            assert f"`{name}`" in section, f"{name} of {' '.join(path)} is not in the CLI reference"
    assert "`--version`" in text


def _settings(struct: type, prefix: str = "") -> Iterator[str]:
    for field in msgspec.structs.fields(struct):
        if field.name == "root":
            continue
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            yield from _settings(field.type, f"{prefix}{field.name}.")
        else:
            yield prefix + field.name


def test_the_config_reference_explains_every_setting(built: Path) -> None:
    text = _page(built, "config.md")
    settings = list(_settings(Config))
    assert "server.port" in settings
    for setting in settings:
        row = re.search(rf"^\| `{re.escape(setting)}` \|.*\|(.*)\|$", text, re.MULTILINE)
        assert row, f"{setting} is not in the configuration reference"
        assert row.group(1).strip(), f"{setting} has no meaning: comment the field in kawa.config"


def _nav_pages(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_pages(value)
