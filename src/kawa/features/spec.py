"""A feature as data: an aggregation of an expression over the events that match a filter, in a window.

Windows are whole days (`7d`, `30d`) or weeks (`4w`) and end at the cutoff: a `30d` window at cutoff
`c` covers events with `c - 30 days <= sync_date < c`. An event exactly 30 days before the cutoff is
in; one exactly at the cutoff is out (it is not known yet at `c`). A feature without a window looks at
every event before the cutoff.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from kawa.features.errors import FeatureError

# aggregation -> (needs an expression, may take an expression, may take a window, empty value)
# The empty value is what the feature is when no event matches: 0 for counts and sums, else NULL.
AGGREGATIONS: dict[str, tuple[bool, bool, bool, int | None]] = {
    "count": (False, True, True, 0),
    "sum": (True, True, True, 0),
    "avg": (True, True, True, None),
    "min": (True, True, True, None),
    "max": (True, True, True, None),
    "count_distinct": (True, True, True, 0),
    "last": (True, True, True, None),
    "days_since_last": (False, False, True, None),
    "days_since_first": (False, False, False, None),
}

_WINDOW = re.compile(r"^\s*(\d+)\s*([dw])\s*$")
MAX_WINDOW_DAYS = 3660


class Feature(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One feature of a view: `agg` of `expr` over events matching `where`, within `window` of the cutoff.

    `expr` and `where` are SQL over the `events` table (e.g. `revenue`, `event_name = 'purchase'`).

    >>> Feature(agg="sum", expr="revenue", where="event_name = 'purchase'", window="30d").window_days
    30
    """

    agg: str
    expr: str | None = None
    where: str | None = None
    window: str | None = None

    @property
    def window_days(self) -> int | None:
        """The window in days, or None for all history before the cutoff."""
        return None if self.window is None else parse_window(self.window)

    @property
    def empty(self) -> int | None:
        """The value when no event matches: 0 for counts and sums, None (NULL) for the rest."""
        return AGGREGATIONS[self.agg][3]

    def check(self, name: str) -> Feature:
        """This feature if it is well formed, else a FeatureError naming `name` and what to change."""
        if self.agg not in AGGREGATIONS:
            known = ", ".join(AGGREGATIONS)
            raise FeatureError(f"feature {name!r}: unknown aggregation {self.agg!r}; use one of: {known}")
        needs_expr, takes_expr, takes_window, _ = AGGREGATIONS[self.agg]
        if needs_expr and not (self.expr and self.expr.strip()):
            raise FeatureError(
                f"feature {name!r}: {self.agg} needs an expression over events, e.g. expr='revenue'"
            )
        if self.expr is not None and not takes_expr:
            raise FeatureError(
                f"feature {name!r}: {self.agg} takes no expression (it uses the event time); "
                "remove expr and filter the events with where="
            )
        if self.where is not None and not self.where.strip():
            raise FeatureError(f"feature {name!r}: where is empty; leave it out to use every event")
        if self.window is not None:
            if not takes_window:
                raise FeatureError(
                    f"feature {name!r}: {self.agg} looks at all history before the cutoff and takes no "
                    "window; remove window="
                )
            parse_window(self.window, name)
        return self


def parse_window(text: str, feature: str | None = None) -> int:
    """Days in a window written as `<n>d` or `<n>w`.

    >>> parse_window("4w")
    28
    """
    where = f"feature {feature!r}: " if feature else ""
    match = _WINDOW.match(text) if isinstance(text, str) else None
    if match is None:
        raise FeatureError(
            f"{where}bad window {text!r}; write a whole number of days or weeks, e.g. '7d', '30d' or '4w'"
        )
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    if not 1 <= days <= MAX_WINDOW_DAYS:
        raise FeatureError(f"{where}window {text!r} must be between 1 day and {MAX_WINDOW_DAYS} days")
    return days


def features_from_mapping(raw: Mapping[str, Any]) -> dict[str, Feature]:
    """Features from plain data (parsed YAML or JSON): {name: {agg, expr, where, window}}."""
    out: dict[str, Feature] = {}
    for name, body in raw.items():
        if not isinstance(body, Mapping):
            raise FeatureError(f"feature {name!r}: expected a mapping with agg, expr, where, window")
        try:
            out[str(name)] = msgspec.convert(dict(body), Feature)
        except msgspec.ValidationError as exc:
            raise FeatureError(f"feature {name!r}: {exc}") from None
    return out
