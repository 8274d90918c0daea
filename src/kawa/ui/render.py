"""Rendering the UI's pages: one Jinja2 environment, the navigation, and the filters templates use."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from kawa import __version__
from kawa.ui.session import Viewer

TEMPLATES = Path(__file__).parent / "templates"

# (path, label): the top navigation, in the order a user meets the platform.
NAV = [
    ("/", "Overview"),
    ("/events", "Events"),
    ("/warehouse", "Warehouse"),
    ("/pipelines", "Pipelines"),
    ("/models", "Models"),
    ("/predictions", "Predictions"),
    ("/bandits", "Bandits"),
    ("/lineage", "Lineage"),
]


# What a missing value shows as (an en dash).
NONE = "\u2013"


def _number(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NONE
    return f"{value:,.{digits}f}"


def _when(value: Any) -> str:
    """A timestamp as `2026-11-23 18:04:05 UTC` (templates show UTC, as the API does)."""
    if value is None:
        return NONE
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _duration(seconds: Any) -> str:
    if seconds is None:
        return NONE
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _tojson_attr(value: Any) -> str:
    """JSON for a data-* attribute (Jinja escapes it for HTML)."""
    return json.dumps(value, default=str, separators=(",", ":"))


templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters.update(number=_number, when=_when, duration=_duration, json_attr=_tojson_attr)
templates.env.globals.update(nav=NAV, version=__version__)


def page(
    request: Request, template: str, viewer: Viewer | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """`template` rendered with the viewer, the request and `context`."""
    context.update(request=request, viewer=viewer, path=request.url.path)
    return templates.TemplateResponse(request, template, context, status_code=status_code)
