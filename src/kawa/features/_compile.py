"""Compile a view's features to one DuckDB query that is point-in-time correct and fast at scale.

The query reads `cutoffs` (the entity column and a `cutoff` timestamp per row) and `events`, and
returns one row per distinct (entity, cutoff), or per row of `cutoffs` given a row id, with every
feature computed from events strictly before that cutoff. It never loops over rows; the plan is:

1. `daily`: events aggregated per (entity, bucket), a bucket being one day measured from `origin`
   (the time of day most cutoffs share, so that their windows start and end on bucket edges).
   Given the cutoffs' buckets, days between two consecutive probe buckets (below) are one segment,
   aggregated as one row: a probe only ever asks for the sum of everything before it, so days no
   probe separates need not be apart. Training sets cut at a few dates (weekly snapshots) then
   aggregate a few rows per entity instead of one per active day.
2. `stream`: the daily rows and, per cutoff row, probes at its bucket and at each window's first
   whole bucket, sorted once by (entity, bucket), a probe before the day it names. Running totals
   over that single order (a streaming window, no per-entity frames, no ASOF joins) give each
   probe the sum of everything before it.
3. `pit`: a count or sum within a window is the difference of two probes of the same cutoff row;
   over all history, the probe less the sum of every entity with a lower id (kept with the ids).
   Aggregates that do not subtract (last times, min, max, last) carry the entity id in their
   value, highest id first, so a probe reads its own entity's value or nothing; a first time is
   the entity's own, kept with its id. Entities get integer ids first, because sorting and
   comparing strings is slow.
4. `edge`: cutoffs that fall inside a bucket (not on its edge) add the events of the two partial
   buckets (the cutoff's own, and the one where the window starts) from the raw events.
5. A distinct count over all history is a count of first occurrences (`first_*`, `n_*`), which
   accumulates like any count.
6. `rng_*`: aggregates that do not subtract (count_distinct and min/max in a window) join each
   cutoff row to per-(entity, bucket, value) rows carrying each value's first and last time in the
   bucket, which decides exactly whether an occurrence lies inside [cutoff - window, cutoff). Their
   cost grows with each entity's history, so prefer them on small data or narrow filters.

Sums accumulate in DECIMAL(38, 9) (each day's sum is added up in DOUBLE, which is much faster over
every event, and rounded to 9 decimals): running totals then subtract exactly, and a value does not
depend on how the work was split between threads, so online and offline values match to the bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kawa.features._plan import DEC, Measure, Plan
from kawa.features._stream import LOW, carried_columns, ids_sql, pit_sql, stream_sql, streams
from kawa.features.entity import Entity
from kawa.features.spec import Feature

DAY_US = 86_400_000_000
# Segments are looked up in a list with one entry per bucket between the lowest and highest probe;
# past this many buckets (55 years of days) every day stays its own row.
MAX_SEGMENT_SPAN = 20_000


def compile_view(
    entity: Entity,
    features: Mapping[str, Feature],
    *,
    origin_us: int = 0,
    until_us: int | None = None,
    since_us: int | None = None,
    row_id: str | None = None,
    edges: bool = True,
    cutoff_buckets: Iterable[tuple[int, bool]] | None = None,
    shard: tuple[int, int] | None = None,
) -> str:
    """The SQL of a view over `cutoffs` and `events`; bounds only prune events no cutoff can see.

    `edges=False` promises that every cutoff lies on a bucket edge (its time of day is `origin_us`'s),
    which skips reading raw events for partial buckets.

    `cutoff_buckets` are the distinct (bucket, inside) pairs of every cutoff (`cutoff_buckets_sql`;
    inside: the cutoff is not on its bucket's edge); a superset is fine, a missing pair is not. With
    them, days that no probe separates are aggregated together (see the module's step 1).

    `shard=(j, k)` reads only the events of entities whose key hashes to j modulo k (`shard_sql`);
    `cutoffs` must then hold that shard's rows only.

    With `row_id` (a column of `cutoffs`), every row of `cutoffs` gets its own output row carrying
    that column, rows with a NULL entity or cutoff included; without it, one row per distinct
    (entity, cutoff).
    """
    plan = Plan()
    outputs = [f"{_q(name)}" for name in features]
    exprs = [_feature_sql(plan, name, f) for name, f in features.items()]
    origin = int(origin_us) % DAY_US
    bounds = [f"({entity.key}) IS NOT NULL"]
    if until_us is not None:
        bounds.append(f"epoch_us(sync_date) < {int(until_us)}")
    if since_us is not None:
        bounds.append(f"epoch_us(sync_date) >= {int(since_us)}")
    if shard is not None:
        bounds.append(shard_sql(entity.key, *shard))
    segment = _segment_sql(plan, cutoff_buckets)
    col = _q(entity.column)
    if row_id is None:
        rid = "row_number() OVER () AS __rid"
        rows = (
            f"SELECT DISTINCT {col} AS __k, epoch_us(cutoff) AS __c FROM cutoffs\n"
            f"        WHERE {col} IS NOT NULL AND cutoff IS NOT NULL"
        )
    else:
        rid = "c.__rid"
        rows = f"SELECT {_q(row_id)} AS __rid, {col} AS __k, epoch_us(cutoff) AS __c FROM cutoffs"
    carried = carried_columns(plan)
    # Read more than once (first occurrences, partial days, value tables), the events are scanned
    # once and kept; read once, they stream straight from the files.
    reads = 1 + sum(m.kind == "new" for m in plan.measures) + int(edges) + len(plan.values)
    kept = "MATERIALIZED" if reads > 1 else "NOT MATERIALIZED"
    ctes = [
        f"ev AS {kept} (\n  SELECT *, {_bucket('__t', origin)} AS __b FROM (\n"
        f"    SELECT *, ({entity.key}) AS __k, epoch_us(sync_date) AS __t FROM events\n"
        f"    WHERE {' AND '.join(bounds)}))",
        *_daily(plan, origin, segment),
        ids_sql(plan, _bucket("min({0})", origin)),
        f"cutx AS MATERIALIZED (\n  SELECT {', '.join([rid, 'c.__k', 'c.__c', 'i.__kid', *carried])},\n"
        f"    {_bucket('c.__c', origin)} AS __bc,\n"
        f"    (((c.__c - {origin}) % {DAY_US}) + {DAY_US}) % {DAY_US} AS __o\n"
        f"  FROM ({rows}) c\n"
        "  LEFT JOIN ids i USING (__k))",
        *([stream_sql(plan)] if streams(plan) else []),
        pit_sql(plan),
        _edge(plan, edges),
        *(_range(plan, name, expr, where) for (expr, where), name in plan.values.items()),
        *(_edge_new(name, edges) for m, name in plan.measures.items() if m.kind == "new"),
    ]
    joins = "".join(f"\nLEFT JOIN rng_{name} {name} USING (__rid)" for name in plan.values.values())
    joins += "".join(
        f"\nLEFT JOIN n_{name} USING (__rid)" for m, name in plan.measures.items() if m.kind == "new"
    )
    keys = [f"p.__k AS {col}", "make_timestamptz(p.__c) AS cutoff"]
    if row_id is not None:
        keys.append(f"p.__rid AS {_q(row_id)}")
    select = ",\n  ".join(keys + [f"{sql} AS {out}" for sql, out in zip(exprs, outputs, strict=True)])
    return (
        "WITH "
        + ",\n".join(ctes)
        + f"\nSELECT {select}\n"
        + "FROM pit p LEFT JOIN edge e USING (__rid)"
        + joins
    )


def cutoff_buckets_sql(column: str, origin_us: int) -> str:
    """The distinct (bucket, inside) pairs of the cutoffs in `cutoffs`, for `compile_view`."""
    origin = int(origin_us) % DAY_US
    return (
        f"SELECT DISTINCT {_bucket('__c', origin)} AS b, (((__c - {origin}) % {DAY_US}) <> 0) AS inside\n"
        f"FROM (SELECT epoch_us(cutoff) AS __c FROM cutoffs\n"
        f"      WHERE {_q(column)} IS NOT NULL AND cutoff IS NOT NULL)"
    )


def shard_of_sql(value: str, k: int) -> str:
    """The shard (0 to k - 1) of `value`, NULL in shard 0; the same for equal values of one type."""
    return f"coalesce(hash(({value})::VARCHAR) % {int(k)}, 0)"


def shard_sql(value: str, j: int, k: int) -> str:
    """True for the values in shard j of k (`shard_of_sql`)."""
    return f"{shard_of_sql(value, k)} = {int(j)}"


def _segment_sql(plan: Plan, cutoff_buckets: Iterable[tuple[int, bool]] | None) -> str:
    """An expression of `__b` giving the first bucket of its segment; `__b` itself when not segmented.

    Probe buckets (every cutoff's bucket and each window's first whole bucket, as `stream_sql` places
    them) cut the days into segments; a day's segment starts at the highest probe bucket at or before
    it, or one bucket below the lowest probe. A probe at q sees a day b exactly when b < q, and, q
    being a probe bucket, exactly when the start of b's segment is below q.
    """
    if cutoff_buckets is None:
        return "__b"
    roles = [0, *plan.windows]
    probes = {max(b if r == 0 else b - r + int(inside), LOW) for b, inside in cutoff_buckets for r in roles}
    if not probes:
        return "__b"
    lo, hi = min(probes) - 1, max(probes)
    if hi - lo + 1 > MAX_SEGMENT_SPAN:
        return "__b"
    starts, current = [], lo
    for b in range(lo, hi + 1):
        current = b if b in probes else current
        starts.append(current)
    listing = ", ".join(str(b) for b in starts)
    return f"[{listing}][greatest(least(__b, {hi}), {lo}) - {lo - 1}]"


def _bucket(t: str, origin: int) -> str:
    """The bucket of time `t`: floor((t - origin) / day); DuckDB's `//` rounds toward zero."""
    return f"(({t} - {origin}) // {DAY_US} - (({t} - {origin}) % {DAY_US} < 0)::BIGINT)::INTEGER"


def _feature_sql(plan: Plan, name: str, f: Feature) -> str:
    """The final expression of one feature, registering the measures it reads."""
    n = f.window_days
    expr, where = f.expr, f.where
    if f.agg in ("count", "sum"):
        kind = "cnt" if f.agg == "count" else "sum"
        total = _total(plan.measure(kind, expr, where, n), n)
        return f"({total})::BIGINT" if kind == "cnt" else f"({total})::DOUBLE"
    if f.agg == "avg":
        s = _total(plan.measure("sum", expr, where, n), n)
        c = _total(plan.measure("cnt", expr, where, n), n)
        return f"(({s})::DOUBLE / nullif({c}, 0))"
    if f.agg == "count_distinct" and n is None:
        # Distinct values seen so far = first occurrences so far, which add up like a count.
        m = plan.measure("new", expr, where)
        return f"(coalesce(p.a_{m}, 0) + coalesce(n_{m}.n, 0))::BIGINT"
    if f.agg == "count_distinct" or (f.agg in ("min", "max") and n is not None):
        assert expr is not None
        table = plan.value_table(expr, where, f.agg, n)
        column = _q(f"{table}.{f.agg}_{_window_tag(n)}", dotted=True)
        return f"coalesce({column}, 0)" if f.agg == "count_distinct" else column
    if f.agg in ("min", "max"):
        m = plan.measure(f.agg, expr, where)
        return f"{'least' if f.agg == 'min' else 'greatest'}(p.a_{m}, e.e_{m})"
    if f.agg in ("last", "days_since_last"):
        if f.agg == "last":
            assert expr is not None
            where = f"({where}) AND ({expr}) IS NOT NULL" if where else f"({expr}) IS NOT NULL"
        lt = plan.measure("lt", None, where)
        last_t = f"coalesce(e.e_{lt}, p.a_{lt})"
        if f.agg == "last":
            v = plan.measure("last", expr, where)
            value = f"(CASE WHEN e.e_{lt} IS NOT NULL THEN e.e_{v} ELSE p.a_{v} END)"
        else:
            value = f"((p.__c - {last_t})::DOUBLE / {DAY_US})"
        if n is None:
            return value
        return f"(CASE WHEN {last_t} >= p.__c - {n * DAY_US} THEN {value} END)"
    if f.agg == "days_since_first":
        ft = plan.measure("ft", None, where)
        return f"((p.__c - coalesce(p.a_{ft}, e.e_{ft}))::DOUBLE / {DAY_US})"
    raise AssertionError(f"unchecked aggregation {f.agg!r} in feature {name!r}")


def _total(m: str, n: int | None) -> str:
    """A count or sum before the cutoff (within `n` days when given): running totals plus the edges."""
    if n is None:
        return f"coalesce(p.a_{m}, 0) + coalesce(e.e_{m}, 0)"
    return f"coalesce(p.w{n}_{m}, 0) + coalesce(e.e_{m}, 0) + coalesce(e.s{n}_{m}, 0)"


def _window_tag(n: int | None) -> str:
    return "all" if n is None else f"{n}d"


def _filter(where: str | None, extra: str | None = None) -> str:
    conds = [c for c in (extra, f"({where})" if where else None) if c]
    return f" FILTER (WHERE {' AND '.join(conds)})" if conds else ""


def _agg(m: Measure, extra: str | None = None, *, exact: bool = True) -> str:
    """The aggregate of measure `m` over raw events (per bucket, or over the partial edge buckets).

    Sums are DECIMAL when `exact`; per-bucket sums run in DOUBLE (much faster over every event) and
    become DECIMAL before they are accumulated, which keeps every digit of money-like values.
    """
    flt = _filter(m.where, extra)
    if m.kind == "cnt":
        return f"count({f'({m.expr})' if m.expr else '*'}){flt}"
    if m.kind == "sum":
        value = f"({m.expr})::DOUBLE"
        return f"sum(TRY_CAST({value} AS {DEC})){flt}" if exact else f"sum({value}){flt}"
    if m.kind in ("min", "max"):
        return f"{m.kind}(({m.expr})){flt}"
    if m.kind == "last":
        # Ties on time go to the larger value, so the result never depends on the scan order.
        return f"arg_max(({m.expr}), (__t, ({m.expr}))){flt}"
    if m.kind == "lt":
        return f"max(__t){flt}"
    if m.kind == "ft":
        return f"min(__t){flt}"
    raise AssertionError(m.kind)


def _daily(plan: Plan, origin: int, segment: str) -> list[str]:
    """Events aggregated per entity and segment (one row per (entity, segment) with events).

    The row's `__b` is its segment's first bucket, which places it in the stream; a first time's
    bucket (`ids_sql`) is taken from the time itself, never from `__b`.
    """
    raw = {m: name for m, name in plan.measures.items() if m.kind != "new"}
    cols = [f"{_agg(m, exact=False)} AS {name}" for m, name in raw.items()]
    lasts = [f"max(__t){_filter(m.where)} AS {name}_t" for m, name in raw.items() if m.kind == "last"]
    body = ", ".join(["__k", "__s AS __b", *cols, *lasts])
    grouped = f"SELECT {body} FROM (SELECT *, {segment} AS __s FROM ev) GROUP BY __k, __s"
    ctes = []
    news = [(m, name) for m, name in plan.measures.items() if m.kind == "new"]
    for m, name in news:
        flt = f" AND ({m.where})" if m.where else ""
        ctes.append(
            f"first_{name} AS MATERIALIZED (\n"
            f"  SELECT __k, __tf, {_bucket('__tf', origin)} AS __b FROM (\n"
            f"    SELECT __k, ({m.expr}) AS __v, min(__t) AS __tf FROM ev\n"
            f"    WHERE ({m.expr}) IS NOT NULL{flt} GROUP BY __k, __v))"
        )
    if not news:
        return [*ctes, f"daily AS (\n  {grouped})"]
    # A first occurrence is an event, so its segment is one of the entity's segments in `base`.
    # Joined, not fed to the aggregate as extra rows: every aggregate of `base` would then run over
    # those rows too, which costs more CPU than this join.
    picks = ", ".join(f"coalesce({name}.n, 0) AS {name}" for _, name in news)
    joins = "".join(
        f"\n  LEFT JOIN (SELECT __k, {segment} AS __s, count(*) AS n FROM first_{name} GROUP BY __k, __s) "
        f"{name} ON {name}.__k = base.__k AND {name}.__s = base.__b"
        for _, name in news
    )
    return [
        *ctes,
        f"daily AS (\n  SELECT base.*, {picks}\n  FROM ({grouped}) base{joins})",
    ]


def _edge(plan: Plan, needed: bool) -> str:
    """Aggregates over the partial buckets of cutoffs that are not on a bucket edge."""
    cols = ["c.__rid"]
    for m, name in plan.measures.items():
        if m.kind == "new":
            continue
        cols.append(f"{_agg(m, 'c.__role = 0')} AS e_{name}")
        for n in sorted(plan.starts.get(name, ())):
            cols.append(f"{_agg(m, f'c.__role = {n}')} AS s{n}_{name}")
    if not needed:
        # Probing every event for no rows still costs a full scan: give the columns, no rows.
        nulls = ", ".join(["NULL::BIGINT AS __rid", *(f"NULL AS {c.split(' AS ')[-1]}" for c in cols[1:])])
        return f"edge AS (SELECT {nulls} WHERE false)"
    roles = ", ".join(str(r) for r in [0, *plan.windows])
    return (
        f"edge AS (\n  SELECT {', '.join(cols)}\n"
        f"  FROM (SELECT __rid, __k, __c, __bc, unnest([{roles}]) AS __role FROM cutx WHERE __o > 0) c\n"
        "  JOIN ev ON ev.__k = c.__k AND ev.__b = c.__bc - c.__role\n"
        "  WHERE (c.__role = 0 AND ev.__t < c.__c)\n"
        f"     OR (c.__role > 0 AND ev.__t >= c.__c - c.__role * {DAY_US})\n"
        "  GROUP BY c.__rid)"
    )


def _edge_new(name: str, needed: bool) -> str:
    """First occurrences in the cutoff's own bucket before the cutoff, for cutoffs inside a bucket."""
    if not needed:
        return f"n_{name} AS (SELECT NULL::BIGINT AS __rid, NULL::BIGINT AS n WHERE false)"
    return (
        f"n_{name} AS (\n  SELECT c.__rid, count(*) AS n FROM cutx c JOIN first_{name} f\n"
        "    ON f.__k = c.__k AND f.__b = c.__bc AND f.__tf < c.__c\n"
        "  WHERE c.__o > 0 GROUP BY c.__rid)"
    )


def _range(plan: Plan, name: str, expr: str, where: str | None) -> str:
    """count_distinct and windowed min/max: each value's first and last time per bucket, range-joined."""
    uses = plan.value_uses[name]
    windows = [n for _, n in uses]
    cols = ["x.__rid"]
    for agg, n in uses:
        # The cutoff's own bucket counts up to the cutoff; the window's first bucket from its start.
        cond = "(d.__b < x.__bc OR d.__tmin < x.__c)"
        if n is not None:
            cond += (
                f" AND d.__b >= x.__bc - {n} AND (d.__b > x.__bc - {n} OR d.__tmax >= x.__c - {n * DAY_US})"
            )
        call = "count(DISTINCT d.__v)" if agg == "count_distinct" else f"{agg}(d.__v)"
        cols.append(f"{call} FILTER (WHERE {cond}) AS {_q(f'{agg}_{_window_tag(n)}')}")
    lower = "" if None in windows else f" AND d.__b >= x.__bc - {max(n for n in windows if n is not None)}"
    flt = f" AND ({where})" if where else ""
    return (
        f"val_{name} AS (\n  SELECT i.__kid, ev.__b, ({expr}) AS __v, min(ev.__t) AS __tmin, "
        f"max(ev.__t) AS __tmax\n  FROM ev JOIN ids i USING (__k) WHERE ({expr}) IS NOT NULL{flt}\n"
        "  GROUP BY ALL),\n"
        f"rng_{name} AS (\n  SELECT {', '.join(cols)}\n  FROM cutx x JOIN val_{name} d\n"
        f"    ON d.__kid = x.__kid AND d.__b <= x.__bc{lower}\n  GROUP BY x.__rid)"
    )


def _q(name: str, *, dotted: bool = False) -> str:
    """A quoted identifier (or alias."column" when `dotted`)."""
    if dotted:
        alias, _, col = name.partition(".")
        return f'{alias}."{col}"'
    return '"' + name.replace('"', '""') + '"'
