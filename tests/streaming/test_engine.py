"""StreamEngine: online values equal the definition at every event, through late events, saves, evictions."""

from __future__ import annotations

import random
from typing import Any

import pytest

from kawa.streaming import StreamEngine, StreamError, StreamView, stream

from ._oracle import Seen, view_at

S = 1_000_000
VIEW = "session_activity"


def _view(name: str = VIEW, key: str = "keys.session_id") -> StreamView:
    return StreamView(
        name,
        key=key,
        features={
            "events": stream.count(),
            "views_5m": stream.count(where={"event_name": "view"}, window="5m"),
            "priced_1h": stream.count(expr="price", window="1h"),
            "revenue_24h": stream.sum("revenue", where={"event_name": "purchase"}, window="24h"),
            "revenue": stream.sum("revenue"),
            "avg_price_1h": stream.avg("price", window="1h"),
            "avg_price": stream.avg("price"),
            "min_price_5m": stream.min("price", window="5m"),
            "max_price_5m": stream.max("price", window="5m"),
            "max_price": stream.max("price"),
            "min_results": stream.min("results"),
            "since_previous": stream.seconds_since_previous(),
            "since_previous_view": stream.seconds_since_previous(where={"event_name": "view"}),
            "last_pages": stream.last_n("page_type", 4, where={"event_name": "view"}),
            "last_items_10m": stream.last_n("item_id", 3, window="10m"),
            "last_category": stream.last("category"),
            "last_price_1m": stream.last("price", window="1m"),
            "categories_1h": stream.count_distinct("category", window="1h"),
            "sources_5m": stream.count_distinct("context.source", window="5m"),
        },
    )


def _event(rnd: random.Random, session: str) -> dict[str, Any]:
    name = rnd.choice(["view", "view", "view", "cart_add", "purchase", "search"])
    e: dict[str, Any] = {"event_name": name, "keys": {"session_id": session, "user_id": f"u{session[-1]}"}}
    if rnd.random() < 0.7:
        e["page_type"] = rnd.choice(["home", "item", "category", "search", "cart"])
    if rnd.random() < 0.6:
        e["item_id"] = rnd.choice(["i_1", "i_2", 3, 44])
        e["category"] = rnd.choice(["garden", "toys", "books"])
        e["price"] = rnd.choice([9.99, 10, 0.1, 0.2, 24.5, 1e-7, 2.5e-6, 123456.789, 2.01])
    if name == "purchase" and rnd.random() < 0.9:
        e["revenue"] = rnd.choice([9.99, 0.1, 4.07, 2.01, 1000.01, 2.5e-6])
    if rnd.random() < 0.5:
        e["results"] = rnd.choice([3, 2.5, "7", True, None, -1])
    if rnd.random() < 0.5:
        e["context"] = {"source": rnd.choice(["mail", "ads", 5, 2.5, False])}
    return e


def _stream(seed: int, n: int, *, late: float = 0.0, sessions: int = 3) -> list[tuple[dict[str, Any], int]]:
    """Events with gaps from 0 to 20 minutes, some at the same microsecond, some `late` (older)."""
    rnd = random.Random(seed)
    t = 1_756_684_800 * S
    out = []
    for _ in range(n):
        t += rnd.choice([0, 0, 1, 5 * S, 30 * S, 299 * S, 300 * S, 301 * S, 20 * 60 * S])
        at = t - rnd.choice([1, 60 * S, 300 * S, 3600 * S]) if rnd.random() < late else t
        out.append((_event(rnd, f"s{rnd.randrange(sessions)}"), at))
    return out


def _check(engine: StreamEngine, view: StreamView, seen: list[Seen], key: str, as_of: int) -> None:
    got = engine.values(view.name, key, as_of)
    want = view_at(view, seen, key, as_of)
    assert got == want, {k: (got[k], want[k]) for k in got if got[k] != want[k]}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_values_equal_the_definition_at_every_event(seed: int) -> None:
    view = _view()
    engine = StreamEngine([view])
    seen: list[Seen] = []
    for i, (event, t) in enumerate(_stream(seed, 400)):
        engine.apply(event, t)
        seen.append((event, t, i))
        key = view.key_of(event)
        assert key is not None
        _check(engine, view, seen, key, t)
        # And later, when windows have moved on without new events.
        if i % 7 == 0:
            _check(engine, view, seen, key, t + 299 * S)
            _check(engine, view, seen, key, t + 25 * 3600 * S)


@pytest.mark.parametrize("seed", [4, 5])
def test_late_events_are_placed_in_time_order(seed: int) -> None:
    view = _view()
    engine = StreamEngine([view])
    seen: list[Seen] = []
    latest: dict[str, int] = {}
    for i, (event, t) in enumerate(_stream(seed, 400, late=0.3)):
        engine.apply(event, t)
        seen.append((event, t, i))
        key = view.key_of(event)
        assert key is not None
        latest[key] = max(latest.get(key, t), t)
        # A late event cannot rewind the state: values are read as of the entity's latest event.
        _check(engine, view, seen, key, latest[key])
        assert engine.values(view.name, key, t) == engine.values(view.name, key, latest[key])


def test_ties_at_one_time_count_every_event_and_keep_arrival_order() -> None:
    view = _view()
    engine = StreamEngine([view])
    t = 1_756_684_800 * S
    for page in ["home", "item", "cart"]:
        engine.apply({"event_name": "view", "keys": {"session_id": "a"}, "page_type": page}, t)
    got = engine.values(VIEW, "a", t)
    assert got["views_5m"] == 3 and got["events"] == 3
    assert got["last_pages"] == ["home", "item", "cart"]
    assert got["since_previous"] is None  # nothing strictly before t
    engine.apply({"event_name": "view", "keys": {"session_id": "a"}}, t + 2 * S)
    assert engine.values(VIEW, "a", t + 2 * S)["since_previous"] == 2.0


def test_window_boundaries_are_open_at_the_start_and_closed_at_the_end() -> None:
    view = StreamView("w", key="keys.user_id", features={"n": stream.count(window="5m")})
    engine = StreamEngine([view])
    engine.apply({"keys": {"user_id": "u"}}, 0)
    assert engine.values("w", "u", 0)["n"] == 1  # the event at T counts
    assert engine.values("w", "u", 300 * S - 1)["n"] == 1
    assert engine.values("w", "u", 300 * S)["n"] == 0  # exactly one window before T: out


def test_unknown_keys_and_events_without_the_key_give_empty_values() -> None:
    view = _view()
    engine = StreamEngine([view])
    engine.apply({"event_name": "view", "keys": {"user_id": "u"}}, 5)  # no session_id
    assert len(engine) == 0
    empty = engine.values(VIEW, "nobody", 10)
    assert empty["events"] == 0 and empty["revenue"] == 0.0 and empty["last_pages"] == []
    assert empty["avg_price"] is None and empty["since_previous"] is None and empty["categories_1h"] == 0
    assert engine.values_of(VIEW, {"keys": {}}, 10) is None


def test_several_views_each_keyed_by_their_own_field() -> None:
    by_session, by_user = _view("by_session"), _view("by_user", key="keys.user_id")
    engine = StreamEngine([by_session, by_user])
    seen: list[Seen] = []
    for i, (event, t) in enumerate(_stream(9, 200, sessions=6)):
        engine.apply(event, t)
        seen.append((event, t, i))
        for view in (by_session, by_user):
            key = view.key_of(event)
            assert key is not None
            _check(engine, view, seen, key, t)


def test_saved_states_restore_the_same_values() -> None:
    view = _view()
    store: dict[tuple[str, str], bytes] = {}
    first = StreamEngine([view], load=lambda name, key: store.get((name, key)))
    events = _stream(11, 300, late=0.1)
    for event, t in events[:150]:
        first.apply(event, t)
    for name, key, data in first.take_dirty():
        store[(name, key)] = data
    assert first.take_dirty() == []  # nothing changed since
    second = StreamEngine([view], load=lambda name, key: store.get((name, key)))
    for event, t in events[150:]:
        first.apply(event, t)
        second.apply(event, t)
        key = view.key_of(event)
        assert key is not None
        assert second.values(VIEW, key, t) == first.values(VIEW, key, t)


def test_only_clean_states_are_evicted_and_evicted_ones_come_back_through_load() -> None:
    view = _view()
    store: dict[tuple[str, str], bytes] = {}
    loads: list[str] = []

    def load(name: str, key: str) -> bytes | None:
        loads.append(key)
        return store.get((name, key))

    engine = StreamEngine([view], load=load, capacity=4)
    reference = StreamEngine([view])
    events = _stream(12, 600, sessions=12)
    for i, (event, t) in enumerate(events):
        engine.apply(event, t)
        reference.apply(event, t)
        # Between persists every touched state is dirty and stays in memory, beyond the capacity.
        if i % 25 == 24:
            dirty = engine.take_dirty()
            store.update({(name, key): data for name, key, data in dirty})
            assert len(engine) <= 4
        key = view.key_of(event)
        assert key is not None
        assert engine.values(VIEW, key, t) == reference.values(VIEW, key, t)
    assert len(set(loads)) == 12 and len(loads) > 12  # states were evicted and loaded again


def test_sums_of_huge_values_are_exact_and_survive_saving() -> None:
    view = StreamView(
        "v",
        key="keys.user_id",
        features={"total": stream.sum("revenue"), "day": stream.sum("revenue", window="1d")},
    )
    store: dict[tuple[str, str], bytes] = {}
    engine = StreamEngine([view], load=lambda name, key: store.get((name, key)), capacity=1)
    # 9.2e12 is past what one value's millionths may hold (a BIGINT): skipped, online as offline.
    for i, revenue in enumerate([9e12, 9e12, 9e12, 9.3e12, -0.5, 2.01]):
        engine.apply({"keys": {"user_id": "u"}, "revenue": revenue}, i)
        engine.apply({"keys": {"user_id": "other"}}, i)  # evicts "u" once it is saved
        store.update({(n, k): d for n, k, d in engine.take_dirty()})
    want = float(3 * 9_000_000_000_000_000_000 - 500_000 + 2_010_000) / 1e6
    assert engine.values("v", "u", 10) == {"total": want, "day": want}


def test_a_state_saved_by_another_definition_is_not_used() -> None:
    old = StreamView("v", key="keys.user_id", features={"n": stream.count()})
    new = StreamView("v", key="keys.user_id", features={"n": stream.count(where={"event_name": "view"})})
    engine = StreamEngine([old])
    engine.apply({"event_name": "buy", "keys": {"user_id": "u"}}, 1)
    saved = {(name, key): data for name, key, data in engine.take_dirty()}
    fresh = StreamEngine([new], load=lambda name, key: saved.get((name, key)))
    assert fresh.values("v", "u", 2) == {"n": 0}
    again = StreamEngine([old], load=lambda name, key: saved.get((name, key)))
    assert again.values("v", "u", 2) == {"n": 1}
    broken = StreamEngine([old], load=lambda name, key: b"\xc1 not msgpack")
    assert broken.values("v", "u", 2) == {"n": 0}


def test_saved_states_drop_what_left_the_windows() -> None:
    view = StreamView("v", key="keys.user_id", features={"n": stream.count(window="1m")})
    engine = StreamEngine([view])
    for i in range(100):
        engine.apply({"keys": {"user_id": "u"}}, i * S)
    small = engine.take_dirty()[0][2]
    for i in range(100, 10_000):
        engine.apply({"keys": {"user_id": "u"}}, i * S)
    assert len(engine.take_dirty()[0][2]) < 2 * len(small)


def test_engine_errors_name_the_problem() -> None:
    view = _view()
    with pytest.raises(StreamError, match="two stream views are called"):
        StreamEngine([view, view])
    with pytest.raises(StreamError, match="StreamView objects"):
        StreamEngine(["session_activity"])  # type: ignore[list-item]
    with pytest.raises(StreamError, match=r"no stream view 'other'.*session_activity"):
        StreamEngine([view]).values("other", "k", 0)
