"""Compile a stream view to one DuckDB query over `events` and `__points` with the engine's semantics.

The plan, per view:

1. `ev`: the events of the entities the points ask about, up to the last point's time, each with one
   input column per feature (`__f<i>`: the value the engine's `add` receives, NULL where the event
   does not match or lacks the field).
2. `u`: those events and the points in one relation; a point sorts after every event at its time.
3. `w`: window functions per entity. Windowed aggregates use `RANGE BETWEEN <w - 1> PRECEDING AND
   CURRENT ROW` over integer microseconds, which is exactly `T - w < t <= T` with every event at T
   included; `seconds_since_previous` uses `... AND 1 PRECEDING` (strictly before T); `last` and
   `last_n` order rows by (time, point after events, event_id), the engine's (time, arrival) order
   when events arrive in event_id order among equal times.
4. `last_n` joins each point to the events whose rank among the feature's values lies in the last n
   before it: the point is repeated n times, so the join is on (entity, rank), never a range.

Sums add integers of millionths (BIGINT each, HUGEINT totals) and turn into DOUBLE the way the engine
does, so online and offline sums are equal to the bit.
"""

from __future__ import annotations

from kawa.streaming.spec import StreamFeature
from kawa.streaming.view import StreamView

_MILLION = "CAST(1000000 AS DOUBLE)"
_RANGE_ALL = "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
_ORDERED = "(PARTITION BY __k ORDER BY __t, __p, __id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"


def _range(window: int | None) -> str:
    frame = _RANGE_ALL if window is None else f"RANGE BETWEEN {window - 1} PRECEDING AND CURRENT ROW"
    return f"(PARTITION BY __k ORDER BY __t {frame})"


def _double(millionths: str) -> str:
    """A HUGEINT sum of millionths as the engine's float: exact via BIGINT when it fits."""
    exact = f"CAST(TRY_CAST({millionths} AS BIGINT) AS DOUBLE)"
    return f"(coalesce({exact}, CAST({millionths} AS DOUBLE)) / {_MILLION})"


def _input(f: StreamFeature) -> str:
    """What one event contributes to `f` (NULL: nothing), over a row of `events` with `__t`."""
    match = f.match.sql()
    field = f.field
    if f.agg == "seconds_since_previous":
        value = "__t"
    elif field is None:
        value = "1"
    elif f.agg == "count":
        present = (
            f"coalesce({field.sql_json_type()} <> 'NULL', FALSE)"
            if field.kind == "JSON"
            else f"({field.sql_raw()}) IS NOT NULL"
        )
        value = f"CASE WHEN {present} THEN 1 END"
    elif f.agg in ("sum", "avg"):
        value = f"TRY_CAST(floor({field.sql_number()} * {_MILLION} + CAST(0.5 AS DOUBLE)) AS BIGINT)"
    elif f.reads_number:
        value = field.sql_number()
    else:
        value = field.sql_value()
    return value if match == "TRUE" else f"CASE WHEN {match} THEN {value} END"


def _windowed(i: int, f: StreamFeature) -> tuple[list[str], str]:
    """(window columns of `w`, the feature's final expression over `p` (a point row of `w`))."""
    x = f"__f{i}"
    over = _range(f.window_us)
    if f.agg == "count":
        return [f"count({x}) OVER {over} AS __a{i}"], f"coalesce(p.__a{i}, 0)"
    if f.agg == "count_distinct":
        return [f"count(DISTINCT {x}) OVER {over} AS __a{i}"], f"coalesce(p.__a{i}, 0)"
    if f.agg == "sum":
        return [f"sum({x}) OVER {over} AS __a{i}"], f"coalesce({_double(f'p.__a{i}')}, CAST(0 AS DOUBLE))"
    if f.agg == "avg":
        cols = [f"sum({x}) OVER {over} AS __a{i}", f"count({x}) OVER {over} AS __n{i}"]
        return cols, f"CASE WHEN p.__n{i} > 0 THEN {_double(f'p.__a{i}')} / p.__n{i} END"
    if f.agg in ("min", "max"):
        return [f"{f.agg}({x}) OVER {over} AS __a{i}"], f"p.__a{i}"
    if f.agg == "seconds_since_previous":
        before = "(PARTITION BY __k ORDER BY __t RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
        return [f"max({x}) OVER {before} AS __a{i}"], f"(p.__t - p.__a{i}) / {_MILLION}"
    if f.agg == "last":
        cols = [f"last_value({x} IGNORE NULLS) OVER {_ORDERED} AS __a{i}"]
        if f.window_us is None:
            return cols, f"p.__a{i}"
        cols.append(
            f"last_value(CASE WHEN {x} IS NOT NULL THEN __t END IGNORE NULLS) OVER {_ORDERED} AS __lt{i}"
        )
        return cols, f"CASE WHEN p.__lt{i} > p.__t - {f.window_us} THEN p.__a{i} END"
    if f.agg == "last_n":
        empty = f"CAST([] AS {f.sql_type})"
        return [f"count({x}) OVER {_ORDERED} AS __c{i}"], f"coalesce(ln{i}.v, {empty})"
    raise AssertionError(f"no offline aggregation for {f.agg!r}")


def _last_n(i: int, f: StreamFeature) -> str:
    """The last n values before each point: points repeated n times, joined on (entity, rank)."""
    assert f.n is not None
    window = "" if f.window_us is None else f" AND e.__t > q.__t - {f.window_us}"
    return (
        f"ln{i} AS (\n"
        f"  SELECT q.__rid, list(e.__f{i} ORDER BY e.__c{i}) AS v\n"
        f"  FROM (SELECT __rid, __k, __t, __c{i} - unnest(range({f.n})) AS __r FROM w\n"
        f"        WHERE __p = 1 AND __c{i} > 0) q\n"
        f"  JOIN w e ON e.__p = 0 AND e.__k = q.__k AND e.__c{i} = q.__r AND e.__f{i} IS NOT NULL{window}\n"
        "  GROUP BY q.__rid)"
    )


def compile_points(view: StreamView, *, until_us: int, since_us: int | None) -> str:
    """The query giving (`__rid`, one column per feature) for every row of `__points`, in `__rid` order.

    `__points` has `__rid`, `__k` (text) and `__t` (epoch microseconds). Events after `until_us` or at or
    before `since_us` cannot reach any point and are not read.
    """
    feats = list(view.features.values())
    names = list(view.features)
    inputs = [f"{_input(f)} AS __f{i}" for i, f in enumerate(feats)]
    nulls = [f"NULL AS __f{i}" for i in range(len(feats))]
    bounds = [f"__t <= {int(until_us)}"]
    if since_us is not None:
        bounds.append(f"__t > {int(since_us)}")
    cols: list[str] = []
    finals: list[str] = []
    for i, f in enumerate(feats):
        c, final = _windowed(i, f)
        cols += c
        finals.append(f'{final} AS "{names[i]}"')
    extra = [_last_n(i, f) for i, f in enumerate(feats) if f.agg == "last_n"]
    joins = "".join(f"\nLEFT JOIN ln{i} USING (__rid)" for i, f in enumerate(feats) if f.agg == "last_n")
    key = view.key_field.sql_value()
    columns = ", ".join(f"__f{i}" for i in range(len(feats)))
    kept = "".join(f", __f{i}" for i, f in enumerate(feats) if f.agg == "last_n")
    ctes = [
        "want AS (SELECT DISTINCT __k FROM __points WHERE __k IS NOT NULL AND __t IS NOT NULL)",
        "ev AS (\n"
        f"  SELECT __k, __t, event_id AS __id, {', '.join(inputs)}\n"
        f"  FROM (SELECT *, ({key}) AS __k, epoch_us(sync_date) AS __t FROM events) e\n"
        f"  WHERE {' AND '.join(bounds)} AND __k IN (SELECT __k FROM want))",
        "u AS (\n"
        f"  SELECT __k, __t, 0 AS __p, __id, CAST(NULL AS BIGINT) AS __rid, {columns} FROM ev\n"
        "  UNION ALL BY NAME\n"
        f"  SELECT __k, __t, 1 AS __p, NULL AS __id, __rid, {', '.join(nulls)} FROM __points\n"
        "  WHERE __k IS NOT NULL AND __t IS NOT NULL)",
        f"w AS MATERIALIZED (\n  SELECT __rid, __p, __k, __t{kept}, {', '.join(cols)}\n  FROM u)",
        *extra,
    ]
    select = ",\n  ".join(["x.__rid", *finals])
    return (
        "WITH "
        + ",\n".join(ctes)
        + f"\nSELECT {select}\nFROM __points x LEFT JOIN (SELECT * FROM w WHERE __p = 1) p USING (__rid)"
        + joins
        + "\nORDER BY x.__rid"
    )
