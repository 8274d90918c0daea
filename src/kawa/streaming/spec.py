"""A streaming feature as data: an aggregation of a field over the events that match a filter, in a window.

The value AT time T for an entity is computed over the entity's events that match `where` with
`T - window < t <= T`: the event at T itself counts, one exactly `window` before T does not. Without a
window a feature looks at every earlier event (counts, sums, min/max, last) and needs no history kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kawa.streaming.errors import StreamError
from kawa.streaming.fields import ID, TEXT, Field
from kawa.streaming.match import Match

# aggregation -> (expression: "no" | "optional" | "value" | "number", window: "no" | "optional" | "required")
AGGREGATIONS: dict[str, tuple[str, str]] = {
    "count": ("optional", "optional"),
    "sum": ("number", "optional"),
    "avg": ("number", "optional"),
    "min": ("number", "optional"),
    "max": ("number", "optional"),
    "count_distinct": ("value", "required"),
    "last": ("value", "optional"),
    "last_n": ("value", "optional"),
    "seconds_since_previous": ("no", "no"),
}
UNITS_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
MAX_WINDOW_US = 30 * UNITS_US["d"]
MAX_N = 1000
_WINDOW = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_window(text: str) -> int:
    """Microseconds in a window written as `<n>s`, `<n>m`, `<n>h` or `<n>d` (1 second to 30 days).

    >>> parse_window("5m")
    300000000
    """
    match = _WINDOW.match(text) if isinstance(text, str) else None
    if match is None:
        raise StreamError(
            f"bad window {text!r}; write a whole number of s, m, h or d, e.g. '30s', '5m', '24h'"
        )
    us = int(match.group(1)) * UNITS_US[match.group(2)]
    if not UNITS_US["s"] <= us <= MAX_WINDOW_US:
        raise StreamError(f"window {text!r} must be between 1s and 30d")
    return us


class StreamFeature:
    """One streaming feature, checked when made; build it with `kawa.streaming.stream` (count, sum, ...).

    >>> f = StreamFeature("sum", "revenue", where={"event_name": "purchase"}, window="24h")
    >>> f.window_us, f.empty
    (86400000000, 0.0)
    """

    __slots__ = ("agg", "expr", "field", "match", "n", "where", "window", "window_us")

    def __init__(
        self,
        agg: str,
        expr: str | None = None,
        *,
        where: Mapping[str, Any] | Match | None = None,
        window: str | None = None,
        n: int | None = None,
    ) -> None:
        if agg not in AGGREGATIONS:
            raise StreamError(f"unknown aggregation {agg!r}; use one of: {', '.join(AGGREGATIONS)}")
        takes, windows = AGGREGATIONS[agg]
        self.agg = agg
        self.expr = expr
        self.n = n
        self.window = window
        self.field: Field | None = None
        if expr is not None:
            if takes == "no":
                raise StreamError(f"{agg} takes no field (it uses the event time); filter with where=")
            self.field = Field(expr, where=agg)
            if takes == "number" and self.field.kind in (TEXT, ID):
                raise StreamError(f"{agg} needs a number field; {expr!r} is a text column")
        elif takes in ("value", "number"):
            raise StreamError(f"{agg} needs a field, e.g. {agg}('revenue')")
        if window is None:
            if windows == "required":
                raise StreamError(f"{agg} keeps one entry per value, so it needs a window, e.g. window='1h'")
            self.window_us: int | None = None
        elif windows == "no":
            raise StreamError(f"{agg} takes no window; remove window=")
        else:
            self.window_us = parse_window(window)
        if agg == "last_n":
            if type(n) is not int or not 1 <= n <= MAX_N:
                raise StreamError(f"last_n needs n, a whole number from 1 to {MAX_N}, not {n!r}")
        elif n is not None:
            raise StreamError(f"{agg} takes no n; remove n=")
        self.match = Match.from_spec(where, where="where")
        self.where: dict[str, Any] | None = None if where is None else dict(self.match.spec)

    @property
    def empty(self) -> Any:
        """The value when no event matches: 0 for counts, 0.0 for sums, [] for last_n, else None."""
        if self.agg in ("count", "count_distinct"):
            return 0
        if self.agg == "sum":
            return 0.0
        return [] if self.agg == "last_n" else None

    @property
    def reads_number(self) -> bool:
        """Whether the field is read as a number (sum, avg, min, max) rather than as a value."""
        return AGGREGATIONS[self.agg][0] == "number"

    @property
    def sql_type(self) -> str:
        """The DuckDB type of the feature's column offline."""
        if self.agg in ("count", "count_distinct"):
            return "BIGINT"
        if self.agg in ("sum", "avg", "min", "max", "seconds_since_previous"):
            return "DOUBLE"
        assert self.field is not None
        base = self.field.value_type
        return f"{base}[]" if self.agg == "last_n" else base

    def to_dict(self) -> dict[str, Any]:
        """The feature as plain data (what `from_mapping` reads)."""
        out: dict[str, Any] = {"agg": self.agg}
        for key in ("expr", "where", "window", "n"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> StreamFeature:
        """A feature from plain data (parsed YAML or JSON): {agg, expr, where, window, n}."""
        if not isinstance(raw, Mapping):
            raise StreamError("a feature must be a mapping with agg and optionally expr, where, window, n")
        unknown = sorted(set(raw) - {"agg", "expr", "where", "window", "n"})
        if unknown:
            raise StreamError(f"unknown key {unknown[0]!r}; a feature takes agg, expr, where, window, n")
        if "agg" not in raw:
            raise StreamError(f"missing agg; use one of: {', '.join(AGGREGATIONS)}")
        return cls(
            str(raw["agg"]), raw.get("expr"), where=raw.get("where"), window=raw.get("window"), n=raw.get("n")
        )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"StreamFeature({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamFeature) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self))
