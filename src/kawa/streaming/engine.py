"""The online engine: streaming features updated as events arrive, per (view, entity), in microseconds.

One engine serves one worker thread (it is not thread-safe). `apply(event, t_us)` updates every view
whose key the event carries; `values(view, key, as_of_us)` reads a view's features at a time. States
live in a bounded LRU per view; a state not in memory is fetched through `load` (the caller's store),
and `take_dirty()` hands over every state changed since the last call, as msgpack bytes, for the
caller to persist. Only states that were handed over (clean ones) are ever evicted, so nothing is
lost between persists.

Events should come in time order, as a log delivers them. A late event (older than the entity's
latest) is placed where it belongs, and a value read at the entity's latest time or after it equals
the offline value. A read at a time before the entity's latest event cannot rewind the state: it is
answered as of that latest event.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import msgspec

from kawa.streaming import _agg, _online
from kawa.streaming.errors import StreamError
from kawa.streaming.fields import Getter
from kawa.streaming.spec import StreamFeature
from kawa.streaming.view import StreamView

Loader = Callable[[str, str], bytes | None]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def _reader(feature: StreamFeature) -> Getter | None:
    """What an event contributes to `feature`: None means "the event itself" (counts, recency)."""
    field = feature.field
    if field is None:
        return None
    if feature.agg == "count":
        return field.raw  # present (not null) is enough
    return field.number if feature.reads_number else field.value


# `update(key, event, t_us)`: applies the event to the state of entity `key`.
Update = Callable[[str, dict[str, Any], int], None]


class _Plan:
    """A view compiled for the engine: one generated update function, and the view's states."""

    __slots__ = (
        "aggs", "dirty", "fingerprint", "key_of", "names", "new_state", "read", "states", "update", "view",
    )  # fmt: skip

    def __init__(self, view: StreamView, fetch: Callable[[_Plan, str], list[Any]]) -> None:
        self.view = view
        self.key_of: Getter = view.key_of
        self.fingerprint = view.fingerprint
        self.names = list(view.features)
        self.aggs = [_online.make(f.agg, f.window_us, f.n) for f in view.features.values()]
        self.read = _compile_read(self.names, self.aggs)
        self.new_state = _compile_new(self.aggs)  # [latest event time, one state per feature]
        self.states: OrderedDict[str, list[Any]] = OrderedDict()
        self.dirty: set[str] = set()
        self.update: Update = _compile_update(self, partial(fetch, self))

    def encode(self, st: list[Any]) -> bytes:
        now = st[0]
        aggs = self.aggs
        body = [a.dump(a.prune(st[i], now)) for i, a in enumerate(aggs, start=1)]
        return _encoder.encode([self.fingerprint, now, body])

    def decode(self, data: bytes) -> list[Any] | None:
        """The state in `data`, or None when it was saved by another definition of the view."""
        try:
            fingerprint, now, body = _decoder.decode(data)
            if fingerprint != self.fingerprint or len(body) != len(self.aggs):
                return None
            return [now, *(a.load(raw) for a, raw in zip(self.aggs, body, strict=True))]
        except (msgspec.DecodeError, TypeError, ValueError, IndexError, KeyError):
            return None  # not a state this engine wrote: start the entity afresh


def _compile_update(plan: _Plan, fetch: Callable[[str], list[Any]]) -> Update:
    """A generated `update(key, e, t)` for `plan`'s view: each filter tested once, no loops per event.

    It finds the entity's state (`fetch` brings in one not in memory), moves the entity to the LRU's
    end, marks it dirty, and updates every feature. State slot i (from 1) is feature i's; features
    sharing a filter sit under one `if`.
    """
    view, aggs, states = plan.view, plan.aggs, plan.states
    namespace: dict[str, Any] = {
        "floor": math.floor, "LO": _agg.LO, "HI": _agg.HI, "after": _agg.after,
        "states": states, "fetch": fetch, "touch": states.move_to_end, "mark": plan.dirty.add,
    }  # fmt: skip
    groups: dict[Any, list[str]] = {}
    for slot, (f, agg) in enumerate(zip(view.features.values(), aggs, strict=True), start=1):
        namespace[f"add{slot}"] = agg.add
        read = _reader(f)
        if read is None:
            lines = agg.inline(slot, "True")
        else:
            namespace[f"read{slot}"] = read
            lines = [
                f"v = read{slot}(e)",
                "if v is not None:",
                *(f"    {line}" for line in agg.inline(slot, "v")),
            ]
        groups.setdefault(f.match, []).extend(lines)
    body = []
    for match, lines in groups.items():
        guarded, consts = match.guard(lines)  # the filter's test inline: no call per event
        namespace.update(consts)
        body += guarded
    prologue = [
        "st = states.get(key)",
        "if st is None:",
        "    st = fetch(key)",
        "else:",
        "    touch(key)",
        "now = st[0]",
        "if now is None or t > now:",
        "    now = t",
        "st[0] = now",
        "mark(key)",
    ]
    source = "def update(key, e, t):\n" + "".join(f"    {line}\n" for line in prologue + body)
    exec(source, namespace)  # built from slot numbers only; the parts are functions in `namespace`
    return namespace["update"]  # type: ignore[no-any-return]


def _compile_read(names: list[str], aggs: list[_agg.Agg]) -> Callable[[list[Any], int], dict[str, Any]]:
    """A generated `read(st, as_of)` returning {feature: value} as one dict display."""
    namespace: dict[str, Any] = {f"read{i}": agg.read for i, agg in enumerate(aggs, start=1)}
    items = ", ".join(f"{name!r}: read{i}(st[{i}], as_of)" for i, name in enumerate(names, start=1))
    exec(f"def read(st, as_of):\n    return {{{items}}}\n", namespace)  # names are checked identifiers
    return namespace["read"]  # type: ignore[no-any-return]


def _compile_new(aggs: list[_agg.Agg]) -> Callable[[], list[Any]]:
    """A generated `new()` returning a new entity's state: [None, one new state per feature]."""
    namespace: dict[str, Any] = {f"new{i}": agg.new for i, agg in enumerate(aggs, start=1)}
    items = "".join(f", new{i}()" for i in range(1, len(aggs) + 1))
    exec(f"def new():\n    return [None{items}]\n", namespace)  # slot numbers only
    return namespace["new"]  # type: ignore[no-any-return]


class StreamEngine:
    """Streaming features of `views`, kept online; see the module docstring for the contract.

    >>> from kawa.streaming import stream
    >>> view = StreamView("s", key="keys.session_id", features={"views_5m": stream.count(window="5m")})
    >>> engine = StreamEngine([view])
    >>> for t in (0, 200_000_000, 400_000_000):
    ...     engine.apply({"event_name": "view", "keys": {"session_id": "a"}}, t)
    >>> engine.values("s", "a", 400_000_000)
    {'views_5m': 2}
    >>> [(name, key) for name, key, _ in engine.take_dirty()]
    [('s', 'a')]
    """

    def __init__(
        self, views: Iterable[StreamView], load: Loader | None = None, *, capacity: int = 100_000
    ) -> None:
        self._plans: list[_Plan] = []
        self._by_name: dict[str, _Plan] = {}
        for view in views:
            if not isinstance(view, StreamView):
                raise StreamError(f"StreamEngine takes StreamView objects, not {type(view).__name__}")
            if view.name in self._by_name:
                raise StreamError(f"two stream views are called {view.name!r}; rename one")
            plan = _Plan(view, self._fetch)
            self._plans.append(plan)
            self._by_name[view.name] = plan
        if capacity < 1:
            raise StreamError(f"capacity={capacity} must be at least 1 state per view")
        self._load = load
        self.capacity = capacity
        # Evict in batches, down to this many, so a full cache does not evict on every new key.
        self._low = max(capacity - max(capacity // 16, 1), 1)

    @property
    def views(self) -> list[StreamView]:
        return [p.view for p in self._plans]

    def apply(self, event: dict[str, Any], t_us: int) -> None:
        """Update every view whose key `event` carries with the event at time `t_us` (microseconds)."""
        for plan in self._plans:
            key = plan.key_of(event)
            if key is not None:
                plan.update(key, event, t_us)

    def updater(self, view_name: str) -> Update:
        """`update(key, event, t_us)`: `apply` to one view, for a caller that read the view's key already.

        >>> from kawa.streaming import stream
        >>> view = StreamView("s", key="keys.session_id", features={"n": stream.count()})
        >>> engine = StreamEngine([view])
        >>> engine.updater("s")("a", {"keys": {"session_id": "a"}}, 0)
        >>> engine.values("s", "a", 0)
        {'n': 1}
        """
        return self._plan(view_name).update

    def values(self, view_name: str, key: str, as_of_us: int) -> dict[str, Any]:
        """The features of `view_name` for entity `key` at `as_of_us` (the event at that time included)."""
        plan = self._plan(view_name)
        st = plan.states.get(key)
        if st is None:
            st = self._fetch(plan, key)
        latest = st[0]
        as_of = as_of_us if latest is None or as_of_us > latest else latest
        return plan.read(st, as_of)

    def values_of(self, view_name: str, event: dict[str, Any], as_of_us: int) -> dict[str, Any] | None:
        """`values` for the entity `event` belongs to; None when the event lacks the view's key."""
        key = self._plan(view_name).key_of(event)
        return None if key is None else self.values(view_name, key, as_of_us)

    def take_dirty(self) -> list[tuple[str, str, bytes]]:
        """(view name, key, state bytes) of every state changed since the last call; they become clean."""
        out: list[tuple[str, str, bytes]] = []
        for plan in self._plans:
            if not plan.dirty:
                continue
            states, name, encode = plan.states, plan.view.name, plan.encode
            out.extend((name, key, encode(states[key])) for key in plan.dirty)
            plan.dirty.clear()
            if len(states) > self.capacity:
                self._evict(plan)
        return out

    def load_states(self, items: Sequence[tuple[str, str, bytes]]) -> None:
        """Put saved states in memory ahead of use (e.g. a batch fetched at once); they are clean."""
        for view_name, key, data in items:
            plan = self._plan(view_name)
            if key not in plan.dirty:
                st = plan.decode(data)
                if st is not None:
                    plan.states[key] = st

    def __len__(self) -> int:
        """States held in memory, over all views."""
        return sum(len(p.states) for p in self._plans)

    def _plan(self, view_name: str) -> _Plan:
        try:
            return self._by_name[view_name]
        except KeyError:
            known = ", ".join(self._by_name) or "none"
            raise StreamError(f"no stream view {view_name!r} in this engine; it has: {known}") from None

    def _fetch(self, plan: _Plan, key: str) -> list[Any]:
        """The state of `key` from the loader, or a new one; kept in memory from now on."""
        st = None
        if self._load is not None:
            data = self._load(plan.view.name, key)
            if data is not None:
                st = plan.decode(data)
        if st is None:
            st = plan.new_state()
        plan.states[key] = st
        if len(plan.states) > self.capacity:
            self._evict(plan, keep=key)
        return st

    def _evict(self, plan: _Plan, keep: str | None = None) -> None:
        """Drop the least recently used clean states down to the low mark; dirty ones (and `keep`) stay."""
        states, dirty = plan.states, plan.dirty
        excess = len(states) - self._low
        victims = []
        for key in states:
            if excess <= 0:
                break
            if key not in dirty and key != keep:
                victims.append(key)
                excess -= 1
        for key in victims:
            del states[key]
