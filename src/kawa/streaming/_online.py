"""Online state of each aggregation: how one event updates it and how a value is read from it.

Each class holds a feature's settings only; the state is a separate plain value (an int, a tuple, a
deque, a dict) kept in the entity's state list, so one object serves every entity. `add` returns the
new state (the same object when it was changed in place). States are kept in time order; an event
older than the entity's latest one (a late event) is inserted where it belongs, so what is read
afterwards equals the offline value at any time from the entity's latest event on.

Windows hold what is needed for `now - window < t`, where `now` is the entity's latest event time;
`read(state, as_of)` with `as_of >= now` skips what has left the window by then without changing the
state (a later event may still be older than `as_of`). Sums are kept as integers of millionths, so
adding and removing values never drifts and equals the offline SQL to the bit.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from typing import Any

SCALE = 1_000_000  # sums are exact integers of millionths
LO, HI = -(2.0**127), 2.0**127  # what DuckDB's HUGEINT holds


def fixed(v: float) -> int | None:
    """`v` in millionths, rounded half up the same way the offline SQL does; None past HUGEINT."""
    y = v * 1e6 + 0.5
    return math.floor(y) if LO <= y < HI else None


def unfixed(total: int) -> float:
    """A sum of millionths as the float the offline SQL gives."""
    return float(total) / 1e6


def _insort(dq: deque[Any], item: tuple[int, Any]) -> None:
    """Insert (t, ...) after every entry at or before t: arrival order among equal times."""
    i = bisect_right([e[0] for e in dq], item[0])
    dq.insert(i, item)


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


class CountAll(Agg):
    __slots__ = ()

    def new(self) -> int:
        return 0

    def add(self, st: int, t: int, v: Any, now: int) -> int:
        return st + 1

    def inline(self, i: int, v: str) -> list[str]:
        return [f"st[{i}] += 1"]

    def read(self, st: int, as_of: int) -> int:
        return st


class CountWindow(Agg):
    """Times of the events in the window, oldest first."""

    __slots__ = ()

    def new(self) -> deque[int]:
        return deque()

    def add(self, st: deque[int], t: int, v: Any, now: int) -> deque[int]:
        if t >= now:  # the entity's newest event, so newer than anything kept: the usual case
            st.append(t)
        else:
            st.insert(bisect_right(st, t), t)
        bound = now - self.window  # type: ignore[operator]
        while st[0] <= bound:
            st.popleft()
            if not st:
                break
        return st

    def read(self, st: deque[int], as_of: int) -> int:
        bound = as_of - self.window  # type: ignore[operator]
        gone = 0
        for t in st:
            if t > bound:
                break
            gone += 1
        return len(st) - gone

    def prune(self, st: deque[int], now: int) -> deque[int]:
        bound = now - self.window  # type: ignore[operator]
        while st and st[0] <= bound:
            st.popleft()
        return st

    def inline(self, i: int, v: str) -> list[str]:
        # When t >= now, now == t, and t itself stays in the deque, so the loop stops before it.
        return [
            "if t >= now:",
            f"    s = st[{i}]",
            "    s.append(t)",
            f"    b = t - {self.window}",
            "    while s[0] <= b:",
            "        s.popleft()",
            "else:",
            f"    st[{i}] = add{i}(st[{i}], t, {v}, now)",
        ]

    def dump(self, st: deque[int]) -> list[int]:
        return list(st)

    def load(self, raw: list[int]) -> deque[int]:
        return deque(raw)


class SumAll(Agg):
    """The sum in millionths."""

    __slots__ = ()

    def new(self) -> int:
        return 0

    def add(self, st: int, t: int, v: float, now: int) -> int:
        x = fixed(v)
        return st if x is None else st + x

    def inline(self, i: int, v: str) -> list[str]:
        return [f"y = {v} * 1e6 + 0.5", "if LO <= y < HI:", f"    st[{i}] += floor(y)"]

    def read(self, st: int, as_of: int) -> float:
        return unfixed(st)


class SumWindow(Agg):
    """[sum in millionths, deque of (t, millionths)] of the events in the window."""

    __slots__ = ()

    def new(self) -> list[Any]:
        return [0, deque()]

    def add(self, st: list[Any], t: int, v: float, now: int) -> list[Any]:
        x = fixed(v)
        if x is None:
            return st
        dq = st[1]
        if t >= now:
            dq.append((t, x))
        else:
            _insort(dq, (t, x))
        st[0] += x
        self.prune(st, now)
        return st

    def inline(self, i: int, v: str) -> list[str]:
        return [
            f"y = {v} * 1e6 + 0.5",
            "if t >= now and LO <= y < HI:",
            f"    s = st[{i}]",
            "    x = floor(y)",
            "    d = s[1]",
            "    d.append((t, x))",
            "    s[0] += x",
            f"    b = t - {self.window}",
            "    while d[0][0] <= b:",
            "        s[0] -= d.popleft()[1]",
            "else:",
            f"    st[{i}] = add{i}(st[{i}], t, {v}, now)",
        ]

    def prune(self, st: list[Any], now: int) -> list[Any]:
        dq = st[1]
        bound = now - self.window  # type: ignore[operator]
        while dq and dq[0][0] <= bound:
            st[0] -= dq.popleft()[1]
        return st

    def _total(self, st: list[Any], as_of: int) -> tuple[int, int]:
        bound = as_of - self.window  # type: ignore[operator]
        total, n = st[0], len(st[1])
        for t, x in st[1]:
            if t > bound:
                break
            total -= x
            n -= 1
        return total, n

    def read(self, st: list[Any], as_of: int) -> float | None:
        return unfixed(self._total(st, as_of)[0])

    def dump(self, st: list[Any]) -> list[Any]:
        return [st[0], list(st[1])]

    def load(self, raw: list[Any]) -> list[Any]:
        return [raw[0], deque(tuple(e) for e in raw[1])]


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

    def inline(self, i: int, v: str) -> list[str]:
        return [
            f"y = {v} * 1e6 + 0.5",
            "if LO <= y < HI:",
            f"    s = st[{i}]",
            "    s[0] += floor(y)",
            "    s[1] += 1",
        ]


class AvgWindow(SumWindow):
    __slots__ = ()

    def read(self, st: list[Any], as_of: int) -> float | None:
        total, n = self._total(st, as_of)
        return unfixed(total) / n if n else None


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


class ExtremeWindow(Agg):
    """Min or max in a window: a deque of (t, v) in time order whose values only rise (min) or fall (max).

    Each entry is the best of every event from it on, so the first entry still in the window is the
    answer; an entry beaten by a later event can never be the answer again and is dropped.
    """

    __slots__ = ("less",)

    def __init__(self, window: int | None, *, smallest: bool) -> None:
        super().__init__(window)
        self.less = smallest

    def new(self) -> deque[tuple[int, float]]:
        return deque()

    def _beats(self, a: float, b: float) -> bool:
        """Whether `a` (later or equal in time) makes `b` useless: a <= b for min, a >= b for max."""
        return a <= b if self.less else a >= b

    def add(self, st: deque[tuple[int, float]], t: int, v: float, now: int) -> deque[tuple[int, float]]:
        beats = self._beats
        if t >= now:
            while st and beats(v, st[-1][1]):
                st.pop()
            st.append((t, v))
        else:
            i = bisect_right([e[0] for e in st], t)
            # A later entry at least as good makes this one useless; else it drops the earlier ones it beats.
            if i < len(st) and beats(st[i][1], v):
                return self.prune(st, now)
            j = i
            while j > 0 and beats(v, st[j - 1][1]):
                j -= 1
            for _ in range(i - j):
                del st[j]
            st.insert(j, (t, v))
        return self.prune(st, now)

    def prune(self, st: deque[tuple[int, float]], now: int) -> deque[tuple[int, float]]:
        bound = now - self.window  # type: ignore[operator]
        while st and st[0][0] <= bound:
            st.popleft()
        return st

    def read(self, st: deque[tuple[int, float]], as_of: int) -> float | None:
        bound = as_of - self.window  # type: ignore[operator]
        for t, v in st:
            if t > bound:
                return v
        return None

    def dump(self, st: deque[tuple[int, float]]) -> list[tuple[int, float]]:
        return list(st)

    def load(self, raw: list[Any]) -> deque[tuple[int, float]]:
        return deque(tuple(e) for e in raw)


class CountDistinct(Agg):
    """Each value's latest time in the window, a dict kept in order of those times (oldest first)."""

    __slots__ = ()

    def new(self) -> dict[Any, int]:
        return {}

    def add(self, st: dict[Any, int], t: int, v: Any, now: int) -> dict[Any, int]:
        seen = st.get(v)
        if seen is not None:
            if seen >= t:
                return st  # a late event of a value seen since
            del st[v]  # re-inserted at the end, where the newest times are
        st[v] = t
        if t < now:
            st = dict(sorted(st.items(), key=lambda kv: kv[1]))  # a late event: restore the time order
        if next(iter(st.values())) > now - self.window:  # type: ignore[operator]
            return st  # the oldest value is still in the window: nothing to drop
        return self.prune(st, now)

    def prune(self, st: dict[Any, int], now: int) -> dict[Any, int]:
        bound = now - self.window  # type: ignore[operator]
        while st:
            first = next(iter(st))
            if st[first] > bound:
                break
            del st[first]
        return st

    def read(self, st: dict[Any, int], as_of: int) -> int:
        bound = as_of - self.window  # type: ignore[operator]
        gone = 0
        for t in st.values():
            if t > bound:
                break
            gone += 1
        return len(st) - gone

    def dump(self, st: dict[Any, int]) -> list[Any]:
        return [[v, t] for v, t in st.items()]

    def load(self, raw: list[Any]) -> dict[Any, int]:
        return {v: t for v, t in raw}


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
        i = bisect_right([e[0] for e in st], t)
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
