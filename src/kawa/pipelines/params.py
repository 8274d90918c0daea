"""Pipeline parameters: defaults declared once, overrides given as text and parsed by the default's type."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


class ParamError(ValueError):
    """A run's parameters are unknown or malformed; the message lists what is accepted."""


def parse_value(name: str, text: str, default: Any) -> Any:
    """`text` as a value of the type of `default` (bool, int, float, date, datetime or str).

    >>> parse_value("cutoff", "2026-10-01", date(2026, 1, 1))
    datetime.date(2026, 10, 1)
    >>> parse_value("trees", "300", 100)
    300
    """
    kind = type(default)
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError("expected true or false")
        if kind is int:
            return int(text.strip())
        if kind is float:
            return float(text.strip())
        if kind is datetime:
            return _aware(datetime.fromisoformat(text.strip()))
        if kind is date:
            return date.fromisoformat(text.strip())
        if kind in (list, dict):
            value = json.loads(text)
            if not isinstance(value, kind):
                raise ValueError(f"expected a JSON {kind.__name__}")
            return value
    except ValueError as exc:
        raise ParamError(
            f"parameter {name!r} takes a {_type_name(default)} (default {show(default)}); "
            f"cannot read {text!r}: {exc}"
        ) from None
    return text


def resolve(
    pipeline: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The defaults with `overrides` applied; unknown names and ill-typed values are refused."""
    values = dict(defaults)
    unknown = sorted(set(overrides or {}) - set(defaults))
    if unknown:
        known = ", ".join(f"{k}={show(v)}" for k, v in defaults.items()) or "none"
        raise ParamError(
            f"pipeline {pipeline!r} has no parameter {', '.join(map(repr, unknown))}; known parameters "
            f"(with defaults): {known}"
        )
    for name, value in (overrides or {}).items():
        default = defaults[name]
        if isinstance(value, str) and not isinstance(default, str):
            values[name] = parse_value(name, value, default)
        elif default is None or _fits(value, default):
            values[name] = _aware(value) if isinstance(value, datetime) else value
            if type(default) is float:  # 4 for a number parameter is 4.0, as `-p name=4` reads it
                values[name] = float(value)
        else:
            raise ParamError(
                f"parameter {name!r} takes a {_type_name(default)} (default {show(default)}), "
                f"got {type(value).__name__} {value!r}"
            )
    return values


def parse_assignments(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`["cutoff=2026-10-01", "trees=300"]` as a dict of texts; each must read `name=value`.

    >>> parse_assignments(["cutoff=2026-10-01", "note=a=b"])
    {'cutoff': '2026-10-01', 'note': 'a=b'}
    """
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ParamError(f"parameter {item!r} must read name=value, e.g. -p cutoff=2026-10-01")
        if name.strip() in values:
            raise ParamError(f"parameter {name.strip()!r} is given twice")
        values[name.strip()] = value
    return values


def to_json(value: Any) -> Any:
    """A parameter value as JSON data (dates as ISO text)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def show(value: Any) -> str:
    """A parameter value as a user would type it after `-p name=`."""
    data = to_json(value)
    return data if isinstance(data, str) else json.dumps(data)


def _fits(value: Any, default: Any) -> bool:
    kind = type(default)
    if kind is bool or isinstance(value, bool):
        return type(value) is kind
    if kind is float:
        return isinstance(value, int | float)
    if kind is date:
        return type(value) is date
    return isinstance(value, kind)


def _aware(value: datetime) -> datetime:
    # A time without a zone means UTC: runs are recorded in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _type_name(default: Any) -> str:
    names = {bool: "boolean (true/false)", int: "whole number", float: "number", date: "date (YYYY-MM-DD)"}
    names[datetime] = "date-time (ISO 8601)"
    return names.get(type(default), type(default).__name__)
