"""The contract of an online aggregation, and the integer millionths that sums are kept in."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

LO, HI = -(2.0**63), 2.0**63  # one value's millionths fit a BIGINT (|v| < 9.2e12), as offline


def fixed(v: float) -> int | None:
    """`v` in millionths, rounded half up the same way the offline SQL does; None past a BIGINT."""
    y = v * 1e6 + 0.5
    return math.floor(y) if LO <= y < HI else None


# How far from the end `after` looks first: a late event is usually only a little late, and a deque
# is indexed quickly near its ends only.
_NEAR = 32


def after(entries: Sequence[Any], t: int, key: Callable[[Any], int] | None = None) -> int:
    """Where an entry at time `t` goes in time-ordered `entries`: after every entry at or before `t`.

    >>> after([1, 3, 3, 5], 3)
    3
    """
    lo = len(entries) - _NEAR
    if lo > 0:
        e = entries[lo]
        if (e if key is None else key(e)) <= t:
            return bisect_right(entries, t, lo, key=key)  # type: ignore[call-overload]
    return bisect_right(entries, t, key=key)  # type: ignore[call-overload]


def pack(total: int) -> int | str:
    """A total for msgpack, whose integers stop at 64 bits: as text beyond them."""
    return total if -(2**63) <= total < 2**64 else str(total)


def unfixed(total: int) -> float:
    """A sum of millionths as the float the offline SQL gives."""
    return float(total) / 1e6


class Agg:
    """One aggregation's settings; states are plain values passed in and returned."""

    __slots__ = ("window",)

    def __init__(self, window: int | None) -> None:
        self.window = window

    def new(self) -> Any:
        return None

    def add(self, st: Any, t: int, v: Any, now: int) -> Any:
        raise NotImplementedError

    def read(self, st: Any, as_of: int) -> Any:
        raise NotImplementedError

    def prune(self, st: Any, now: int) -> Any:
        """The state without what has left the window at `now` (before it is saved)."""
        return st

    def dump(self, st: Any) -> Any:
        return st

    def load(self, raw: Any) -> Any:
        return raw

    def inline(self, i: int, v: str) -> list[str]:
        """Source lines doing `st[i] = add{i}(st[i], t, v, now)` in the engine's generated update.

        Classes write their usual case (the entity's newest event) out in full, which saves a call per
        feature and event; anything else still calls `add{i}`. `v` is the value's expression.
        """
        return [f"st[{i}] = add{i}(st[{i}], t, {v}, now)"]
