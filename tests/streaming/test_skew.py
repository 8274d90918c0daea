"""No train/serve skew: the online engine and the offline SQL agree on every feature at every event.

A slice of the demo shop goes through the real collector and lake writer. The engine replays the
event log in (time, event_id) order, the order the offline side breaks ties in, and reads each event's
entities after every event at that microsecond is applied (a value at T includes every event at T).
Twin events at one microsecond (ties) and copies exactly one window later (window edges) are added,
and every entity is also read after its last event, when each window has just expired or not yet.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

import pyarrow as pa
import pytest

from kawa.demo import ShopConfig, generate
from kawa.streaming import StreamEngine, StreamView, stream, stream_features_at

from ._lake import in_time_order, ingest, logged

S = 1_000_000
VIEW = {"event_name": "view"}
CART = {"event_name": "cart_add"}
PURCHASE = {"event_name": "purchase"}

SESSION = StreamView(
    "session_activity",
    key="keys.session_id",
    features={
        "views_30s": stream.count(where=VIEW, window="30s"),
        "views_5m": stream.count(where=VIEW, window="5m"),
        "events_1h": stream.count(window="1h"),
        "item_pages_5m": stream.count(where={"page": {"glob": "https://shop.example/items/*"}}, window="5m"),
        "cart_value_1h": stream.sum("price", where=CART, window="1h"),
        "revenue_24h": stream.sum("revenue", where=PURCHASE, window="24h"),
        "avg_price_1h": stream.avg("price", window="1h"),
        "max_price_5m": stream.max("price", window="5m"),
        "min_position": stream.min("position"),
        "seconds_since_previous": stream.seconds_since_previous(),
        "seconds_since_cart": stream.seconds_since_previous(where=CART),
        "last_pages": stream.last_n("page_type", 10, where=VIEW),
        "last_items_5m": stream.last_n("item_id", 5, window="5m"),
        "last_query": stream.last("query"),
        "categories_1h": stream.count_distinct("category", window="1h"),
    },
)
USER = StreamView(
    "user_activity",
    key="keys.user_id",
    features={
        "events_24h": stream.count(window="24h"),
        "purchases_7d": stream.count(where=PURCHASE, window="7d"),
        "spend_7d": stream.sum("revenue", window="7d"),
        "spend": stream.sum("revenue"),
        "avg_order": stream.avg("revenue", where=PURCHASE),
        "max_price": stream.max("price"),
        "min_price_24h": stream.min("price", window="24h"),
        "sessions_24h": stream.count_distinct("keys.session_id", window="24h"),
        "sources_7d": stream.count_distinct("utm_source", window="7d"),
        "last_category_24h": stream.last("category", window="24h"),
        "quantity": stream.sum("quantity", where=CART),
    },
)
VIEWS = [SESSION, USER]
# After an entity's last event: each window's edge, a microsecond before it, and far later.
AFTER = [0, 30 * S - 1, 30 * S, 300 * S - 1, 300 * S, 3600 * S, 86_400 * S - 1, 86_400 * S, 8 * 86_400 * S]


def _shifted(event: dict[str, Any], by: timedelta, event_id: str, **changes: Any) -> dict[str, Any]:
    at = datetime.fromisoformat(event["sync_date"].replace("Z", "+00:00")) + by
    return {**event, **changes, "event_id": event_id, "sync_date": at.isoformat(timespec="milliseconds")}


def _shop_events() -> list[dict[str, Any]]:
    """The demo shop's events, plus twins at the same millisecond and copies exactly a window later."""
    events = list(generate(ShopConfig(users=150, days=7, items=80, visitors=30)).events)
    extra = []
    for i, e in enumerate(events):
        if e["event_name"] != "view":
            continue
        if i % 40 == 0:  # a twin at the same time, sorting before the original
            extra.append(_shifted(e, timedelta(0), "d" + e["event_id"], page_type="twin", category="twin"))
        elif i % 40 == 20:  # a twin sorting after it
            extra.append(
                _shifted(
                    e, timedelta(0), e["event_id"] + "-twin", page_type="twin", category="twin", price=1.01
                )
            )
        elif i % 60 == 30:  # exactly one window after: in at its own time, out of the earlier one's window
            extra.append(_shifted(e, timedelta(minutes=5), e["event_id"] + "-5m"))
            extra.append(_shifted(e, timedelta(seconds=30), e["event_id"] + "-30s", event_name="cart_add"))
    return events + extra


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, dict[tuple[str, int], Any]]]:
    root = tmp_path_factory.mktemp("skew")
    warehouse = ingest(root, _shop_events())
    rows = in_time_order(logged(root))
    saved: dict[tuple[str, str], bytes] = {}
    # A small cache: states are evicted and loaded back from their saved bytes during the replay.
    engine = StreamEngine(VIEWS, load=lambda name, key: saved.get((name, key)), capacity=50)
    online: dict[str, dict[tuple[str, int], Any]] = defaultdict(dict)
    latest: dict[tuple[str, str], int] = {}
    for t, group in groupby(rows, key=lambda r: r.t_us):
        tied = list(group)
        for r in tied:
            engine.apply(r.event, t)
        for r in tied:
            for view in VIEWS:
                key = view.key_of(r.event)
                if key is not None:
                    online[view.name][(key, t)] = engine.values(view.name, key, t)
                    latest[(view.name, key)] = t
        saved.update({(name, key): data for name, key, data in engine.take_dirty()})
    for (name, key), t in latest.items():
        for dt in AFTER:
            online[name][(key, t + dt)] = engine.values(name, key, t + dt)
    return warehouse, online


@pytest.mark.parametrize("view", VIEWS, ids=[v.name for v in VIEWS])
def test_online_equals_offline_for_every_feature_at_every_point(
    replay: tuple[Any, dict[str, dict[tuple[str, int], Any]]], view: StreamView
) -> None:
    warehouse, online = replay
    points = list(online[view.name])
    table = pa.table(
        {
            view.column: [k for k, _ in points],
            "ts": pa.array([t for _, t in points], pa.timestamp("us", tz="UTC")),
        }
    )
    offline = stream_features_at(warehouse, view, table).to_pylist()
    mismatches = []
    for (key, t), row in zip(points, offline, strict=True):
        want = online[view.name][(key, t)]
        got = {name: row[name] for name in view.features}
        if got != want:
            mismatches.append((key, t, {n: (want[n], got[n]) for n in got if got[n] != want[n]}))
    assert not mismatches, f"{len(mismatches)} of {len(points)} points differ, e.g. {mismatches[:3]}"
    # The comparison means something: every feature takes several values over the replay.
    for name in view.features:
        assert len({repr(row[name]) for row in offline}) >= 3, name
    assert len(points) > 1000
