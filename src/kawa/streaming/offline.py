"""Streaming features offline: the value of every feature at given (entity, time) points, over the lake.

`stream_features_at` computes in DuckDB what the online engine holds after applying every event of the
entity up to and including each point's time, so training sets built with it see exactly what the
trigger sees when serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from kawa.streaming._sql import compile_points
from kawa.streaming.errors import StreamError
from kawa.streaming.match import Match
from kawa.streaming.view import StreamView
from kawa.warehouse import Warehouse

UTC_US = pa.timestamp("us", tz="UTC")


def stream_features_at(
    warehouse: Warehouse, view: StreamView, points: pa.Table, *, time_column: str = "ts"
) -> pa.Table:
    """Every row of `points`, in order, with one column per feature of `view` at the row's time.

    `points` holds the view's key column (`view.column`, text; other types are cast to text as the
    lake keeps keys) and `time_column` (timestamps; naive ones are UTC, dates are midnight). A feature
    at time T counts the entity's events with `T - window < t <= T`, the event at T included. Rows
    whose key or time is NULL, or whose entity has no events, get the empty values: 0 for counts,
    0.0 for sums, [] for last_n, NULL otherwise.
    """
    if not isinstance(view, StreamView):
        raise StreamError(f"view must be a StreamView, not {type(view).__name__}")
    if not isinstance(points, pa.Table):
        raise StreamError(f"points must be a pyarrow.Table, not {type(points).__name__}")
    for column, what in ((view.column, "the key column"), (time_column, "the time column")):
        if column not in points.column_names:
            have = points.column_names
            raise StreamError(
                f"points need {what} {column!r} for stream view {view.name!r}; they have {have}"
            )
    taken = [name for name in view.features if name in points.column_names]
    if taken:
        raise StreamError(
            f"feature {taken[0]!r} of stream view {view.name!r} is also a column of the points; rename one"
        )
    keys = _keys(points.column(view.column), view.column)
    times = _times(points.column(time_column), time_column)
    frame = pa.table(
        {"__rid": pa.array(np.arange(points.num_rows, dtype=np.int64)), "__k": keys, "__t": times}
    )
    with warehouse.connect() as db:
        db.register("__points", frame)
        first, last = db.execute(
            "SELECT min(__t), max(__t) FROM __points WHERE __k IS NOT NULL AND __t IS NOT NULL"
        ).fetchall()[0]
        # Only windowed features let older events go unread: the rest look at all history.
        bounded = all(f.window_us is not None for f in view.features.values())
        until = -(2**62) if last is None else int(last)
        since = (
            int(first) - int(view.horizon_us) if first is not None and bounded and view.horizon_us else None
        )
        try:
            found = db.sql(compile_points(view, until_us=until, since_us=since)).to_arrow_table()
        except duckdb.Error as exc:
            raise StreamError(f"stream view {view.name!r} failed over the lake: {exc}") from None
    if found.num_rows != points.num_rows:
        raise StreamError(
            f"stream view {view.name!r} returned {found.num_rows} rows for {points.num_rows} points"
        )
    out = points
    for name in view.features:
        out = out.append_column(name, found.column(name))
    return out


def event_points(
    warehouse: Warehouse,
    view: StreamView,
    where: Mapping[str, Any] | Match | None = None,
    *,
    time_column: str = "ts",
) -> pa.Table:
    """(key column, `time_column`, event_id) of every lake event that carries the view's key and matches
    `where`, in (time, event_id) order: the points where a trigger on those events reads the view.
    """
    match = Match.from_spec(where, where="where")
    key = view.key_field.sql_value()
    sql = (
        f'SELECT ({key}) AS "{view.column}", sync_date AS "{time_column}", event_id FROM events '
        f"WHERE ({key}) IS NOT NULL AND {match.sql()} ORDER BY sync_date, event_id"
    )
    with warehouse.connect() as db:
        table = db.sql(sql).to_arrow_table()
    return table.set_column(1, time_column, table.column(1).cast(UTC_US))


def _keys(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.cast(pa.string())
    if pa.types.is_integer(kind) or pa.types.is_null(kind):
        return column.cast(pa.string())  # the lake keeps ids sent as numbers as their text
    raise StreamError(f"key column {name!r} has type {kind}; give text (or integers)")


def _times(column: pa.ChunkedArray, name: str) -> pa.Array:
    """Epoch microseconds; naive timestamps are UTC, dates are midnight UTC; finer units are cut."""
    kind = column.type
    try:
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            us = column.cast(pa.timestamp("us", tz=getattr(kind, "tz", None)), safe=False)
            return us.cast(pa.int64()).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise StreamError(f"time column {name!r} cannot be read as times: {exc}") from None
    raise StreamError(f"time column {name!r} has type {kind}; give timestamps (TIMESTAMPTZ) or dates")
