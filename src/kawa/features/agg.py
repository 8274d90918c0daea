"""Shorthands that build features: `agg.sum("revenue", where="event_name = 'purchase'", window="30d")`.

The names follow SQL (count, sum, avg, min, max), so import the module, not the names.
"""

from __future__ import annotations

from kawa.features.spec import Feature


def count(*, where: str | None = None, window: str | None = None, expr: str | None = None) -> Feature:
    """How many events match (or how many have a non-NULL `expr`); 0 when none do."""
    return Feature(agg="count", expr=expr, where=where, window=window)


def sum(expr: str, *, where: str | None = None, window: str | None = None) -> Feature:
    """The sum of `expr` over matching events; 0 when none match."""
    return Feature(agg="sum", expr=expr, where=where, window=window)


def avg(expr: str, *, where: str | None = None, window: str | None = None) -> Feature:
    """The mean of the non-NULL values of `expr`; NULL when there are none."""
    return Feature(agg="avg", expr=expr, where=where, window=window)


def min(expr: str, *, where: str | None = None, window: str | None = None) -> Feature:
    """The smallest value of `expr`; NULL when there is none."""
    return Feature(agg="min", expr=expr, where=where, window=window)


def max(expr: str, *, where: str | None = None, window: str | None = None) -> Feature:
    """The largest value of `expr`; NULL when there is none."""
    return Feature(agg="max", expr=expr, where=where, window=window)


def count_distinct(expr: str, *, where: str | None = None, window: str | None = None) -> Feature:
    """How many different non-NULL values `expr` takes; 0 when none."""
    return Feature(agg="count_distinct", expr=expr, where=where, window=window)


def last(expr: str, *, where: str | None = None, window: str | None = None) -> Feature:
    """`expr` at the latest matching event where it is not NULL; NULL when there is none."""
    return Feature(agg="last", expr=expr, where=where, window=window)


def days_since_last(*, where: str | None = None, window: str | None = None) -> Feature:
    """Days (fractional) from the latest matching event to the cutoff; NULL when there is none."""
    return Feature(agg="days_since_last", where=where, window=window)


def days_since_first(*, where: str | None = None) -> Feature:
    """Days (fractional) from the first matching event to the cutoff; NULL when there is none."""
    return Feature(agg="days_since_first", where=where)
