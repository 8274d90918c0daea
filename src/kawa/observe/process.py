"""Set up a `kawa serve` part's process: its log format and, when configured, tracing."""

from __future__ import annotations

import importlib.util
import logging

from kawa.config import Config
from kawa.observe import logs, tracing


def problem(config: Config) -> str | None:
    """What is wrong with the observability settings, if anything (for the supervisor to say)."""
    try:
        logs.check_format(config.server.log_format)
        tracing.check_mode(config.server.tracing)
    except ValueError as exc:
        return str(exc)
    if config.server.tracing != "off" and not _installed("opentelemetry.sdk.trace"):
        return f"server.tracing is {config.server.tracing!r}: install kawa[otel] (OpenTelemetry SDK)"
    return None


def setup(config: Config, part: str) -> None:
    """Logs in the configured format (text if it is not known) and tracing as configured."""
    log_format = config.server.log_format if config.server.log_format in logs.FORMATS else "text"
    logs.configure(log_format)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    tracing.setup(config.server.tracing, part)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False
