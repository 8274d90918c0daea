"""The measures, value tables and windows a compiled feature view needs (see `_compile`)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Sums accumulate in DECIMAL: running totals then subtract exactly (see `_compile`).
DEC = "DECIMAL(38, 9)"


@dataclass(frozen=True)
class Measure:
    """A per-bucket aggregate that accumulates over buckets.

    kind: cnt, sum, min, max, last (value at the latest time), lt (latest time), ft (first time) or
    new (values of `expr` first seen in the bucket).
    """

    kind: str
    expr: str | None
    where: str | None


@dataclass
class Plan:
    """The measures, value tables and windows a view's features need, each with a stable name."""

    measures: dict[Measure, str] = field(default_factory=dict)
    # measure name -> window lengths whose start needs the measure's running total
    starts: dict[str, set[int]] = field(default_factory=dict)
    # counts and sums whose total over all history is read
    totals: set[str] = field(default_factory=set)
    values: dict[tuple[str, str | None], str] = field(default_factory=dict)
    # value table name -> (aggregation, window) pairs read from it
    value_uses: dict[str, dict[tuple[str, int | None], None]] = field(default_factory=dict)

    def measure(self, kind: str, expr: str | None, where: str | None, window: int | None = None) -> str:
        name = self.measures.setdefault(Measure(kind, expr, where), f"m{len(self.measures)}")
        if window is not None:
            self.starts.setdefault(name, set()).add(window)
        elif kind in ("cnt", "sum", "new"):
            self.totals.add(name)
        return name

    def value_table(self, expr: str, where: str | None, agg: str, window: int | None) -> str:
        name = self.values.setdefault((expr, where), f"v{len(self.values)}")
        self.value_uses.setdefault(name, {})[(agg, window)] = None
        return name

    @property
    def windows(self) -> list[int]:
        return sorted({n for ns in self.starts.values() for n in ns})
