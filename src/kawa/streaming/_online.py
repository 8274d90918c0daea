"""Online state of each aggregation: how one event updates it and how a value is read from it.

Each class holds a feature's settings only; the state is a separate plain value (an int, a tuple, a
deque, a dict) kept in the entity's state list, so one object serves every entity. `add` returns the
new state (the same object when it was changed in place). States are kept in time order; an event
older than the entity's latest one (a late event) is inserted where it belongs, so what is read
afterwards equals the offline value at any time from the entity's latest event on.

Windowed aggregations live in `_windows`; sums are kept as integers of millionths (`_agg`), so adding
and removing values never drifts and equals the offline SQL to the bit.
"""

from __future__ import annotations

from collections import deque
from operator import itemgetter
from typing import Any

from kawa.streaming._agg import Agg, after, fixed, pack, unfixed
from kawa.streaming._windows import AvgWindow, CountDistinct, CountWindow, ExtremeWindow, SumWindow

_time = itemgetter(0)


class CountAll(Agg):
    """How many events: one integer."""

    __slots__ = ()

    def new(self) -> int:
        return 0

    def add(self, st: int, t: int, v: Any, now: int) -> int:
        return st + 1

    def inline(self, i: int, v: str) -> list[str]:
        return [f"st[{i}] += 1"]

    def read(self, st: int, as_of: int) -> int:
        return st


class SumAll(Agg):
    """The sum in millionths."""

    __slots__ = ()

    def new(self) -> int:
        return 0

    def add(self, st: int, t: int, v: float, now: int) -> int:
        x = fixed(v)
        return st if x is None else st + x

    def dump(self, st: int) -> int | str:
        return pack(st)

    def load(self, raw: int | str) -> int:
        return int(raw)

    def inline(self, i: int, v: str) -> list[str]:
        return [f"y = {v} * 1e6 + 0.5", "if LO <= y < HI:", f"    st[{i}] += floor(y)"]

    def read(self, st: int, as_of: int) -> float:
        return unfixed(st)


class AvgAll(Agg):
    """[sum in millionths, count]."""

    __slots__ = ()

    def new(self) -> list[int]:
        return [0, 0]

    def add(self, st: list[int], t: int, v: float, now: int) -> list[int]:
        x = fixed(v)
        if x is not None:
            st[0] += x
            st[1] += 1
        return st

    def read(self, st: list[int], as_of: int) -> float | None:
        return unfixed(st[0]) / st[1] if st[1] else None

    def dump(self, st: list[int]) -> list[int | str]:
        return [pack(st[0]), st[1]]

    def load(self, raw: list[Any]) -> list[int]:
        return [int(raw[0]), raw[1]]

    def inline(self, i: int, v: str) -> list[str]:
        return [
            f"y = {v} * 1e6 + 0.5",
            "if LO <= y < HI:",
            f"    s = st[{i}]",
            "    s[0] += floor(y)",
            "    s[1] += 1",
        ]


class Extreme(Agg):
    """Min or max over all events: the best value so far."""

    __slots__ = ("less",)

    def __init__(self, window: int | None, *, smallest: bool) -> None:
        super().__init__(window)
        self.less = smallest

    def add(self, st: float | None, t: int, v: float, now: int) -> float | None:
        if st is None or (v < st if self.less else v > st):
            return v
        return st

    def read(self, st: float | None, as_of: int) -> float | None:
        return st

    def inline(self, i: int, v: str) -> list[str]:
        return [f"s = st[{i}]", f"if s is None or {v} {'<' if self.less else '>'} s:", f"    st[{i}] = {v}"]


class Last(Agg):
    """(t, value) of the latest event; a later arrival wins a tie."""

    __slots__ = ()

    def add(self, st: tuple[int, Any] | None, t: int, v: Any, now: int) -> tuple[int, Any] | None:
        return (t, v) if st is None or t >= st[0] else st

    def inline(self, i: int, v: str) -> list[str]:
        return [f"s = st[{i}]", "if s is None or t >= s[0]:", f"    st[{i}] = (t, {v})"]

    def read(self, st: tuple[int, Any] | None, as_of: int) -> Any:
        if st is None or (self.window is not None and st[0] <= as_of - self.window):
            return None
        return st[1]

    def load(self, raw: list[Any] | None) -> tuple[int, Any] | None:
        return None if raw is None else (raw[0], raw[1])


class LastN(Agg):
    """The last n (t, value) in (time, arrival) order, oldest first."""

    __slots__ = ("n",)

    def __init__(self, window: int | None, n: int) -> None:
        super().__init__(window)
        self.n = n

    def new(self) -> deque[tuple[int, Any]]:
        return deque(maxlen=self.n)

    def add(self, st: deque[tuple[int, Any]], t: int, v: Any, now: int) -> deque[tuple[int, Any]]:
        if t >= now:
            st.append((t, v))  # maxlen drops the oldest
            return st
        i = after(st, t, _time)
        if len(st) == self.n:
            if i == 0:
                return st  # older than every value kept
            st.popleft()
            i -= 1
        st.insert(i, (t, v))
        return st

    def inline(self, i: int, v: str) -> list[str]:
        return [
            "if t >= now:",
            f"    st[{i}].append((t, {v}))",
            "else:",
            f"    st[{i}] = add{i}(st[{i}], t, {v}, now)",
        ]

    def read(self, st: deque[tuple[int, Any]], as_of: int) -> list[Any]:
        if self.window is None:
            return [v for _, v in st]
        bound = as_of - self.window
        return [v for t, v in st if t > bound]

    def dump(self, st: deque[tuple[int, Any]]) -> list[tuple[int, Any]]:
        return list(st)

    def load(self, raw: list[Any]) -> deque[tuple[int, Any]]:
        return deque((tuple(e) for e in raw), maxlen=self.n)


class SecondsSince(Agg):
    """(latest time, latest time before it) of the matching events."""

    __slots__ = ()

    def add(self, st: tuple[int, int | None] | None, t: int, v: Any, now: int) -> tuple[int, int | None]:
        if st is None:
            return (t, None)
        last, before = st
        if t > last:
            return (t, last)
        if t == last or (before is not None and t <= before):
            return st
        return (last, t)

    def inline(self, i: int, v: str) -> list[str]:
        return [
            f"s = st[{i}]",
            "if s is None:",
            f"    st[{i}] = (t, None)",
            "elif t > s[0]:",
            f"    st[{i}] = (t, s[0])",
            "elif t != s[0]:",
            f"    st[{i}] = add{i}(s, t, {v}, now)",
        ]

    def read(self, st: tuple[int, int | None] | None, as_of: int) -> float | None:
        if st is None:
            return None
        last, before = st
        if last < as_of:
            return (as_of - last) / 1e6
        return None if before is None else (as_of - before) / 1e6

    def load(self, raw: list[Any] | None) -> tuple[int, int | None] | None:
        return None if raw is None else (raw[0], raw[1])


def make(agg: str, window: int | None, n: int | None) -> Agg:
    """The online aggregation of one feature."""
    if agg == "count":
        return CountAll(None) if window is None else CountWindow(window)
    if agg == "sum":
        return SumAll(None) if window is None else SumWindow(window)
    if agg == "avg":
        return AvgAll(None) if window is None else AvgWindow(window)
    if agg in ("min", "max"):
        cls = Extreme if window is None else ExtremeWindow
        return cls(window, smallest=agg == "min")
    if agg == "count_distinct":
        return CountDistinct(window)
    if agg == "last":
        return Last(window)
    if agg == "last_n":
        assert n is not None
        return LastN(window, n)
    if agg == "seconds_since_previous":
        return SecondsSince(None)
    raise AssertionError(f"no online aggregation for {agg!r}")
