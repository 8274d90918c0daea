"""The semantics of streaming features written the plain way: filter the entity's events, then aggregate.

Slow and obvious on purpose, so the engine's incremental states and the offline SQL are checked against
a definition rather than against each other only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kawa.streaming import StreamView
from kawa.streaming.spec import StreamFeature

# (event, t_us, arrival number)
Seen = tuple[dict[str, Any], int, int]


def _millionths(v: float) -> int | None:
    y = v * 1e6 + 0.5
    return math.floor(y) if -(2.0**63) <= y < 2.0**63 else None  # one value fits a BIGINT


def feature_at(f: StreamFeature, events: Sequence[Seen], as_of: int) -> Any:
    """`f` at `as_of` over `events` (already only the entity's), by its definition."""
    rows = sorted((e for e in events if e[1] <= as_of), key=lambda e: (e[1], e[2]))
    rows = [e for e in rows if f.match.test(e[0])]
    if f.window_us is not None:
        rows = [e for e in rows if e[1] > as_of - f.window_us]
    if f.agg == "seconds_since_previous":
        before = [t for _, t, _ in rows if t < as_of]
        return (as_of - max(before)) / 1e6 if before else None
    if f.field is None:
        return len(rows)
    if f.agg == "count":
        return sum(f.field.raw(e) is not None for e, _, _ in rows)
    if f.reads_number:
        values = [x for e, _, _ in rows if (x := f.field.number(e)) is not None]
        if f.agg in ("sum", "avg"):
            fixed = [m for v in values if (m := _millionths(v)) is not None]
            if f.agg == "sum":
                return float(sum(fixed)) / 1e6
            return float(sum(fixed)) / 1e6 / len(fixed) if fixed else None
        pick = min if f.agg == "min" else max
        return pick(values) if values else None
    values = [x for e, _, _ in rows if (x := f.field.value(e)) is not None]
    if f.agg == "count_distinct":
        return len(set(values))
    if f.agg == "last":
        return values[-1] if values else None
    assert f.agg == "last_n" and f.n is not None
    return values[-f.n :]


def view_at(view: StreamView, events: Sequence[Seen], key: str, as_of: int) -> dict[str, Any]:
    """Every feature of `view` for entity `key` at `as_of`."""
    mine = [e for e in events if view.key_of(e[0]) == key]
    return {name: feature_at(f, mine, as_of) for name, f in view.features.items()}
