"""Cutoff times: parsed from Python values or Arrow columns into UTC microsecond timestamps."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time

import pyarrow as pa

from kawa.features.errors import FeatureError

UTC_US = pa.timestamp("us", tz="UTC")

Instant = datetime | date | str


def to_datetime(value: Instant) -> datetime:
    """`value` as an aware UTC datetime; dates mean midnight UTC and naive times are taken as UTC.

    >>> to_datetime("2025-10-01").isoformat()
    '2025-10-01T00:00:00+00:00'
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise FeatureError(
                f"cutoff {value!r} is not an ISO date or time; write e.g. 2025-10-01 or 2025-10-01T06:00:00Z"
            ) from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    raise FeatureError(f"cutoff {value!r} must be a datetime, a date or an ISO string")


def cutoff_array(values: Iterable[Instant]) -> pa.Array:
    """Cutoffs as an Arrow array of UTC microsecond timestamps."""
    return pa.array([to_datetime(v) for v in values], UTC_US)


def utc_column(table: pa.Table, name: str) -> pa.Table:
    """`table` with column `name` cast to UTC microsecond timestamps (dates mean midnight UTC)."""
    if name not in table.column_names:
        raise FeatureError(f"label rows need a {name!r} column; they have {table.column_names}")
    col = table.column(name)
    kind = col.type
    try:
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            # Naive timestamps and dates are UTC; precision past microseconds is cut, which only moves
            # a cutoff earlier, never lets a later event in.
            col = col.cast(pa.timestamp("us", tz=getattr(kind, "tz", None)), safe=False).cast(UTC_US)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            parsed = [[None if v is None else to_datetime(v) for v in c.to_pylist()] for c in col.chunks]
            col = pa.chunked_array([pa.array(chunk, UTC_US) for chunk in parsed], UTC_US)
        else:
            raise FeatureError(f"column {name!r} has type {kind}; give timestamps, dates or ISO strings")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise FeatureError(f"column {name!r} cannot be read as times: {exc}") from None
    return table.set_column(table.column_names.index(name), name, col)
