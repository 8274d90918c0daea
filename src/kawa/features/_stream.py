"""Running totals for compiled feature views: one sorted stream of daily rows and cutoff probes.

`stream_sql` and `pit_sql` are the `stream`, `run` and `pit` steps of the query `_compile` builds;
they read its `daily`, `ids` and `cutx` and give `pit`: per cutoff row, every measure's total
before the cutoff's bucket (`a_*`) and within each window's whole buckets (`wN_*`).
"""

from __future__ import annotations

from kawa.features._plan import DEC, Measure, Plan

LOW = -(2**30)  # the lowest bucket a stream position holds (timestamps span about +-2**27 days)


def stream_sql(plan: Plan) -> str:
    """Every entity's daily aggregates and every cutoff's probes, in one order, with running totals.

    A row's position is (entity id << 32) + 2 ** 31 + 2 * bucket, plus 1 for a day of events; the
    low 32 bits never borrow from the id, so `__p >> 32` is the id. Sorted by position, a probe at
    (entity, bucket b) comes after all of the entity's days before b and before the day b itself.
    Running totals over all rows (one streaming pass, no per-entity frames) then give each probe
    every earlier entity's total plus this entity's before b; the difference of two probes of one
    entity is exactly the entity's total between them. Aggregates that do not subtract carry the
    entity id in their value (highest id first), so a probe reads only its own entity's value.
    """
    # The sort carries each day's plain values; ids and DECIMALs are made after it, as they stream.
    probes, days, runs = [], [], []
    kid = "(__p >> 32)"
    lanes = _lanes(plan)
    for m, name in plan.measures.items():
        if m.kind == "ft":
            continue  # a first time is the entity's own, kept with its id (ids_sql)
        cols = [name, f"{name}_t"] if m.kind == "last" else [name]
        probes += [f"NULL AS {c}" for c in cols]
        days += [f"d.{c}" for c in cols]
        if m.kind in ("cnt", "new", "sum"):
            value = _addend(m, name)
        elif m.kind == "lt":
            # Times are BIGINT: the id in the high 64 bits, the time below.
            value = (
                f"CASE WHEN {name} IS NOT NULL THEN ({kid}::HUGEINT << 64) + ({name}::HUGEINT + {2**63}) END"
            )
        elif m.kind == "last":
            # Ties on time go to the larger value, as in each day's arg_max.
            value = f"CASE WHEN {name}_t IS NOT NULL THEN {{'k': {kid}, 't': {name}_t, 'v': {name}}} END"
        else:  # min or max of any type: the highest id sorts first for both
            key = kid if m.kind == "max" else f"-{kid}"
            value = f"CASE WHEN {name} IS NOT NULL THEN {{'k': {key}, 'v': {name}}} END"
        if name in lanes:
            continue  # summed with its pair below
        running = "min" if m.kind == "min" else "max" if m.kind in ("lt", "last", "max") else "sum"
        runs.append(f"{running}({value}) OVER w AS {name}")
    for packed, (high, low) in _pairs(lanes).items():
        runs.append(f"sum(({high}::HUGEINT << 64) + {low}) OVER w AS {packed}")
    target = "CASE r.__role WHEN 0 THEN x.__bc ELSE x.__bc - r.__role + (x.__o > 0)::INTEGER END"
    roles = ", ".join(str(r) for r in _roles(plan))
    return (
        "stream AS (\n"
        f"  SELECT (x.__kid::BIGINT << 32) + {2**31} + greatest({target}, {LOW})::BIGINT * 2 AS __p,\n"
        f"    x.__rid, r.__role, {', '.join(probes)}\n"
        f"  FROM cutx x, (SELECT unnest([{roles}]) AS __role) r WHERE x.__kid IS NOT NULL\n"
        "  UNION ALL\n"
        f"  SELECT (i.__kid::BIGINT << 32) + {2**31} + d.__b::BIGINT * 2 + 1, NULL, NULL, {', '.join(days)}\n"
        "  FROM daily d JOIN ids i USING (__k)),\n"
        # Sorted once; the running totals stream in that order (DuckDB keeps a subquery's order
        # through a window with no ORDER BY). A row out of order fails the query, never a value.
        f"run AS (\n  SELECT __rid, __role, {kid} AS __kid, {', '.join(runs)}\n"
        "  FROM (SELECT * FROM stream ORDER BY __p)\n"
        "  WINDOW w AS (ROWS UNBOUNDED PRECEDING)\n"
        "  QUALIFY CASE WHEN max(__p) OVER w > __p\n"
        "    THEN error('feature query: running totals arrived out of order; please report this')\n"
        "    ELSE __role IS NOT NULL END)"
    )


def _roles(plan: Plan) -> list[int]:
    """Probes per cutoff: 0 at the cutoff and n at each window's start."""
    return [0, *plan.windows]


def _lanes(plan: Plan) -> dict[str, tuple[str, int]]:
    """Counts summed two to a HUGEINT: measure -> (packed column, 0 for the high half, 1 the low).

    A running count over all entities stays below 2**63 (there are fewer events than that), so
    neither half ever carries into the other, and a difference of two probes is exact in both
    halves, being a count. Counts read at the same windows go together, so a pivot serves both.
    """
    counts = [name for m, name in plan.measures.items() if m.kind in ("cnt", "new")]
    counts.sort(key=lambda name: (sorted(plan.starts.get(name, ())), name in plan.totals))
    out = {}
    for i in range(0, len(counts) - 1, 2):
        out[counts[i]], out[counts[i + 1]] = (f"k{i // 2}", 0), (f"k{i // 2}", 1)
    return out


def _pairs(lanes: dict[str, tuple[str, int]]) -> dict[str, tuple[str, str]]:
    """Packed column -> (its high measure, its low measure)."""
    out: dict[str, list[str]] = {}
    for name, (packed, lane) in lanes.items():
        out.setdefault(packed, ["", ""])[lane] = name
    return {packed: (high, low) for packed, (high, low) in out.items()}


def _addend(m: Measure, name: str) -> str:
    """What a day adds to a running count or sum."""
    return f"TRY_CAST({name} AS {DEC})" if m.kind == "sum" else name


def ids_sql(plan: Plan, bucket_of: str) -> str:
    """Integer ids of the entities with events, with what is the entity's own over all history.

    `base_*`, for totals over all history: the sum over every entity with a lower id, which a
    probe's running total includes (a prefix sum over entities costs much less than a probe per
    cutoff row). `first_*`/`fb_*`, for first times: the entity's first time and its bucket, which
    a cutoff sees when that bucket is before its own. `bucket_of` formats a time's bucket from the
    time (a format string of `{0}`): daily rows are segments, whose `__b` may be earlier.
    """
    totals = [(m, name) for m, name in plan.measures.items() if name in plan.totals]
    firsts = [name for m, name in plan.measures.items() if m.kind == "ft"]
    if not totals and not firsts:
        return (
            "ids AS MATERIALIZED (\n  SELECT __k, (row_number() OVER ())::INTEGER AS __kid "
            "FROM (SELECT DISTINCT __k FROM daily))"
        )
    aggs = [f"sum({_addend(m, name)}) AS t_{name}" for m, name in totals]
    aggs += [f"min({n}) AS first_{n}, {bucket_of.format(n)} AS fb_{n}" for n in firsts]
    keep = [f"sum(t_{name}) OVER before AS base_{name}" for _, name in totals]
    keep += [f"first_{name}, fb_{name}" for name in firsts]
    before = "\n  WINDOW before AS (ORDER BY __kid ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    return (
        f"ids AS MATERIALIZED (\n  SELECT __k, __kid, {', '.join(keep)} FROM (\n"
        "    SELECT *, (row_number() OVER ())::INTEGER AS __kid\n"
        f"    FROM (SELECT __k, {', '.join(aggs)} FROM daily GROUP BY __k))"
        f"{before if totals else ''})"
    )


def carried_columns(plan: Plan) -> list[str]:
    """The columns of `ids` that `cutx` carries for `pit_sql`."""
    out = []
    for m, name in plan.measures.items():
        if name in plan.totals:
            out.append(f"i.base_{name}")
        if m.kind == "ft":
            out += [f"i.first_{name}", f"i.fb_{name}"]
    return out


def pit_sql(plan: Plan) -> str:
    """Per cutoff row: totals before its bucket (a_*) and within each window's whole buckets (wN_*)."""
    cols, outs = [], []
    lanes = _lanes(plan)
    for packed, members in _pairs(lanes).items():
        windows = sorted({n for name in members for n in plan.starts.get(name, ())})
        cols += [_window_sum(packed, n) for n in windows]
        if any(name in plan.totals for name in members):
            cols.append(f"sum({packed}) FILTER (WHERE __role = 0) AS a_{packed}")
        for lane, name in enumerate(members):
            outs += [f"{_half(f'q.w{n}_{packed}', lane)} AS w{n}_{name}" for n in _starts(plan, name)]
            if name in plan.totals:
                total = _half(f"q.a_{packed}", lane)
                outs.append(f"coalesce({total}, 0) - coalesce(x.base_{name}, 0) AS a_{name}")
    for m, name in plan.measures.items():
        if name in lanes:
            continue
        if m.kind in ("cnt", "sum", "new"):
            if name in plan.totals:
                cols.append(f"sum({name}) FILTER (WHERE __role = 0) AS a_{name}")
                outs.append(f"coalesce(q.a_{name}, 0) - coalesce(x.base_{name}, 0) AS a_{name}")
            for n in _starts(plan, name):
                cols.append(_window_sum(name, n))
                outs.append(f"q.w{n}_{name}")
            continue
        if m.kind == "ft":
            outs.append(f"CASE WHEN x.fb_{name} < x.__bc THEN x.first_{name} END AS a_{name}")
            continue
        if m.kind == "lt":
            value = f"(({name} & {2**64 - 1}) - {2**63})::BIGINT"
            own = f"{name} >> 64 = __kid"
        else:
            value = f"{name}.v"
            own = f"{name}.k = {'-' if m.kind == 'min' else ''}__kid"
        cols.append(f"max(CASE WHEN {own} THEN {value} END) FILTER (WHERE __role = 0) AS a_{name}")
        outs.append(f"q.a_{name}")
    select = ", ".join(["x.__rid", "x.__k", "x.__c", *outs])
    if not cols:  # nothing streamed
        return f"pit AS (SELECT {select} FROM cutx x)"
    return (
        f"pit AS (\n  SELECT {select}\n  FROM cutx x LEFT JOIN (\n"
        f"    SELECT __rid, {', '.join(cols)}\n    FROM run GROUP BY __rid) q USING (__rid))"
    )


def streams(plan: Plan) -> bool:
    """Whether any measure needs the running totals (a first time does not)."""
    return any(m.kind != "ft" for m in plan.measures)


def _starts(plan: Plan, name: str) -> list[int]:
    return sorted(plan.starts.get(name, ()))


def _window_sum(column: str, n: int) -> str:
    """A running total at the cutoff less the one at the window's start: the window's whole days."""
    return f"sum(CASE __role WHEN 0 THEN {column} WHEN {n} THEN -{column} END) AS w{n}_{column}"


def _half(packed: str, lane: int) -> str:
    """One count out of a packed pair: lane 0 is the high half, 1 the low."""
    return f"({packed} >> 64)::BIGINT" if lane == 0 else f"({packed} & {2**64 - 1})::BIGINT"
