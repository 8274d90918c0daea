"""HTML and text for the notebook views: small tables and field lists, every value from data escaped.

Values are shown, never interpreted: a string holding `<script>` reads as that text in the cell.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from html import escape
from typing import Any

MAX_TEXT = 200  # characters of one value shown in a cell; the rest is cut with an ellipsis
STATUS_COLOURS = {
    "succeeded": "#1a7f37",
    "failed": "#cf222e",
    "timeout": "#cf222e",
    "cancelled": "#cf222e",
    "running": "#9a6700",
    "queued": "#6e7781",
    "skipped": "#6e7781",
}
_TABLE = 'style="border-collapse: collapse; margin: 0.3em 0"'
_CELL = 'style="text-align: left; padding: 0.15em 0.6em; vertical-align: top"'


class Html(str):
    """Text that is already HTML (built here from escaped parts), placed in a cell as it is."""


def text(value: Any) -> str:
    """A value as a person reads it: floats to 6 significant digits, times in ISO form, JSON for the rest.

    >>> text(0.123456789), text(None), text({"a": [1, 2]}), text(3)
    ('0.123457', 'null', '{"a": [1, 2]}', '3')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    if isinstance(value, bytes):
        return repr(value)
    return str(value)


def short(value: Any) -> str:
    """`text(value)` cut to MAX_TEXT characters."""
    shown = text(value)
    return shown if len(shown) <= MAX_TEXT else shown[: MAX_TEXT - 1] + "…"


def cell(value: Any) -> str:
    """One value as escaped HTML (an `Html` value as it is)."""
    if isinstance(value, Html):
        return value
    if value is None:
        return '<span style="color: #6e7781">null</span>'
    return escape(short(value))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, types: Sequence[str] = ()) -> Html:
    """An HTML table with a header (and a row of column types, when given)."""
    head = "".join(f"<th {_CELL}>{escape(str(c))}</th>" for c in columns)
    kinds = ""
    if types:
        kinds = "<tr>" + "".join(
            f'<td {_CELL}><small style="color: #6e7781">{escape(t)}</small></td>' for t in types
        )
        kinds += "</tr>"
    body = "".join("<tr>" + "".join(f"<td {_CELL}>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return Html(f"<table {_TABLE}><thead><tr>{head}</tr>{kinds}</thead><tbody>{body}</tbody></table>")


def fields(pairs: Iterable[tuple[str, Any]]) -> Html:
    """A two-column table of names and values."""
    body = "".join(f"<tr><th {_CELL}>{escape(name)}</th><td {_CELL}>{cell(v)}</td></tr>" for name, v in pairs)
    return Html(f"<table {_TABLE}><tbody>{body}</tbody></table>")


def status(value: str | None) -> Html:
    """A run or step status in its colour (green for succeeded, red for failures)."""
    shown = value or "unknown"
    colour = STATUS_COLOURS.get(shown, "inherit")
    return Html(f'<span style="color: {colour}; font-weight: bold">{escape(shown)}</span>')


def block(title: Html | str, *parts: str) -> Html:
    """A view: a title line, then its parts."""
    heading = title if isinstance(title, Html) else escape(title)
    if heading:
        heading = f'<div style="margin-bottom: 0.3em">{heading}</div>'
    return Html(f'<div class="kawa">{heading}{"".join(parts)}</div>')


def code(value: str) -> Html:
    return Html(f"<code>{escape(value)}</code>")


def pre(value: str) -> Html:
    return Html(f'<pre style="white-space: pre-wrap">{escape(value)}</pre>')


def scalars(values: dict[str, Any]) -> list[tuple[str, Any]]:
    """The entries of `values` that are single values (numbers, text), for a metrics table."""
    return [(k, v) for k, v in values.items() if v is None or isinstance(v, int | float | str | bool)]


def seconds(value: float | None) -> str:
    """A duration as `1.2s`, `3m 04s` or `-` when unknown.

    >>> seconds(1.234), seconds(184.0), seconds(None)
    ('1.2s', '3m 04s', '-')
    """
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m {rest:02d}s"


def text_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table for `repr` outside a notebook."""
    shown = [[short(v) for v in row] for row in rows]
    widths = [max([len(str(c)), *(len(r[i]) for r in shown)]) for i, c in enumerate(columns)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in shown]
    return "\n".join(line.rstrip() for line in lines)
