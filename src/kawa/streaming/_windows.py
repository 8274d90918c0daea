"""Windowed online aggregations: what is kept for `now - window < t`, in time order.

A window holds what is needed for `now - window < t`, where `now` is the entity's latest event time;
`read(state, as_of)` with `as_of >= now` skips what has left the window by then without changing the
state (a later event may still be older than `as_of`). A late event is inserted where it belongs.
"""

from __future__ import annotations

from collections import deque
from operator import itemgetter
from typing import Any

from kawa.streaming._agg import Agg, after, fixed, pack, unfixed

_time = itemgetter(0)


def _insort(dq: deque[Any], item: tuple[int, Any]) -> None:
    """Insert (t, ...) after every entry at or before t: arrival order among equal times."""
    dq.insert(after(dq, item[0], _time), item)


class CountWindow(Agg):
    """Times of the events in the window, oldest first."""

    __slots__ = ()

    def new(self) -> deque[int]:
        return deque()

    def add(self, st: deque[int], t: int, v: Any, now: int) -> deque[int]:
        if t >= now:  # the entity's newest event, so newer than anything kept: the usual case
            st.append(t)
        else:
            st.insert(after(st, t), t)
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
            "else:",  # a late event: `add` in full, without its call
            f"    s = st[{i}]",
            "    s.insert(after(s, t), t)",
            f"    b = now - {self.window}",
            "    while s[0] <= b:",
            "        s.popleft()",
            "        if not s:",
            "            break",
        ]

    def dump(self, st: deque[int]) -> list[int]:
        return list(st)

    def load(self, raw: list[int]) -> deque[int]:
        return deque(raw)


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
        return [pack(st[0]), list(st[1])]

    def load(self, raw: list[Any]) -> list[Any]:
        return [int(raw[0]), deque(tuple(e) for e in raw[1])]


class AvgWindow(SumWindow):
    """The mean in a window: the sum's state, whose deque length is the count."""

    __slots__ = ()

    def read(self, st: list[Any], as_of: int) -> float | None:
        total, n = self._total(st, as_of)
        return unfixed(total) / n if n else None


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
            i = after(st, t, _time)
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
        if t < next(reversed(st.values()), t):
            # A late event: it goes after every value seen at or before t, keeping the time order.
            items = list(st.items())
            i = len(items) - 1
            while i and items[i - 1][1] > t:
                i -= 1
            items.insert(i, (v, t))
            st = dict(items)
        else:
            st[v] = t
        if next(iter(st.values())) > now - self.window:  # type: ignore[operator]
            return st  # the oldest value is still in the window: nothing to drop
        return self.prune(st, now)

    def inline(self, i: int, v: str) -> list[str]:
        # The newest event (t >= now, so now == t) goes at the end, keeping the time order; the
        # values that left the window are a prefix, and the one just set ends the loop.
        return [
            f"s = st[{i}]",
            f"x = s.get({v})",
            "if x is None or x < t:",
            "    if t >= now:",
            "        if x is not None:",
            f"            del s[{v}]",
            f"        s[{v}] = t",
            f"        b = t - {self.window}",
            "        while True:",
            "            k = next(iter(s))",
            "            if s[k] > b:",
            "                break",
            "            del s[k]",
            "    else:",
            f"        st[{i}] = add{i}(s, t, {v}, now)",
        ]

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
