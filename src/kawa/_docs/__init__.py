"""The generated reference pages of kawa's documentation site: HTTP API, CLI and kawa.yaml.

`python -m kawa._docs docs/reference` (run by `make docs` before `mkdocs build --strict`) writes them
from the live application, so they list every route, command and setting of this version of kawa.
"""

from __future__ import annotations

from pathlib import Path

from kawa._docs.cli import cli_markdown
from kawa._docs.config import config_markdown
from kawa._docs.http import http_markdown

__all__ = ["PAGES", "write_reference"]

PAGES = {"http.md": http_markdown, "cli.md": cli_markdown, "config.md": config_markdown}


def write_reference(folder: Path, changelog: Path | None = None) -> list[Path]:
    """Write every generated page into `folder` (created if missing), and `changelog` as changelog.md
    when given, and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in PAGES.items():
        path = folder / name
        path.write_text(render())
        written.append(path)
    if changelog is not None:
        path = folder / "changelog.md"
        path.write_text(changelog.read_text())
        written.append(path)
    return written
