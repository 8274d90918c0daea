"""Shorthands that build streaming features: `stream.sum("revenue", window="24h")`.

The names follow SQL (count, sum, avg, min, max), so import the module, not the names. `where` is a
Match spec; `expr` a field path (`page`, `price`, `keys.user_id`, `page_type`, `context.campaign.source`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kawa.streaming.match import Match
from kawa.streaming.spec import StreamFeature

Where = Mapping[str, Any] | Match | None


def count(*, where: Where = None, window: str | None = None, expr: str | None = None) -> StreamFeature:
    """How many events match (with `expr`: that carry the field); 0 when none do."""
    return StreamFeature("count", expr, where=where, window=window)


def sum(expr: str, *, where: Where = None, window: str | None = None) -> StreamFeature:
    """The sum of a number field over matching events (exact to 1e-6); 0.0 when none match."""
    return StreamFeature("sum", expr, where=where, window=window)


def avg(expr: str, *, where: Where = None, window: str | None = None) -> StreamFeature:
    """The mean of a number field over matching events that carry it; None when there are none."""
    return StreamFeature("avg", expr, where=where, window=window)


def min(expr: str, *, where: Where = None, window: str | None = None) -> StreamFeature:
    """The smallest value of a number field; None when there is none."""
    return StreamFeature("min", expr, where=where, window=window)


def max(expr: str, *, where: Where = None, window: str | None = None) -> StreamFeature:
    """The largest value of a number field; None when there is none."""
    return StreamFeature("max", expr, where=where, window=window)


def count_distinct(expr: str, *, window: str, where: Where = None) -> StreamFeature:
    """How many different values a field takes in the window; 0 when none."""
    return StreamFeature("count_distinct", expr, where=where, window=window)


def last(expr: str, *, where: Where = None, window: str | None = None) -> StreamFeature:
    """The field at the latest matching event that carries it; None when there is none."""
    return StreamFeature("last", expr, where=where, window=window)


def last_n(expr: str, n: int, *, where: Where = None, window: str | None = None) -> StreamFeature:
    """The field at the last `n` matching events that carry it, oldest first; [] when none."""
    return StreamFeature("last_n", expr, where=where, window=window, n=n)


def seconds_since_previous(*, where: Where = None) -> StreamFeature:
    """Seconds from the latest matching event strictly before T to T; None when there is none."""
    return StreamFeature("seconds_since_previous", where=where)
