"""What every command shares: loading the project's settings, and saying what went wrong."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from kawa.config import Config, ConfigError, find_config, load_config

console = Console(soft_wrap=True)
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def config_file() -> Path | None:
    import os

    if "KAWA_CONFIG" in os.environ:
        return Path(os.environ["KAWA_CONFIG"])
    return find_config()


def settings() -> Config:
    try:
        return load_config(config_file())
    except ConfigError as exc:
        raise fail(str(exc)) from None
