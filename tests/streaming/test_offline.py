"""stream_features_at: the definition computed in DuckDB over the lake, for any points, in their order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from kawa.streaming import StreamEngine, StreamError, StreamView, event_points, stream, stream_features_at
from kawa.warehouse import Warehouse

from ._lake import Logged, in_time_order, ingest, logged
from ._oracle import view_at
from .test_engine import _stream, _view

S = 1_000_000
UTC_US = pa.timestamp("us", tz="UTC")
T0 = 1_756_684_800 * S  # 2025-09-01


def iso(t_us: int) -> str:
    """An RFC 3339 time with every microsecond, as a client would send it."""
    return datetime.fromtimestamp(t_us // S, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{t_us % S:06d}Z"


def _lake(root: Path, seed: int, *, late: float = 0.0) -> tuple[Warehouse, list[Logged]]:
    events = [
        dict(e, sync_date=iso(t), event_id=f"e{i:05d}")
        for i, (e, t) in enumerate(_stream(seed, 300, late=late))
    ]
    warehouse = ingest(root, events)
    return warehouse, in_time_order(logged(root))


@pytest.mark.parametrize(("seed", "late"), [(1, 0.0), (2, 0.3)])
def test_values_equal_the_definition_at_event_times_and_between(
    tmp_path: Path, seed: int, late: float
) -> None:
    warehouse, rows = _lake(tmp_path, seed, late=late)
    view = _view()
    seen = [(r.event, r.t_us, i) for i, r in enumerate(rows)]
    keys: list[str | None] = []
    times: list[int] = []
    for r in rows:
        # At the event, just before it, and when windows of every length have moved on.
        for dt in (0, -1, 299 * S, 300 * S, 3599 * S, 25 * 3600 * S):
            keys.append(view.key_of(r.event))
            times.append(r.t_us + dt)
    points = pa.table({"session_id": keys, "ts": pa.array(times, UTC_US)})
    out = stream_features_at(warehouse, view, points)
    assert out.column_names == ["session_id", "ts", *view.features]
    assert out.column("session_id").to_pylist() == keys  # every point, in order
    for i, row in enumerate(out.to_pylist()):
        got = {name: row[name] for name in view.features}
        want = view_at(view, seen, row["session_id"], times[i])
        assert got == want, (i, {k: (got[k], want[k]) for k in got if got[k] != want[k]})


def test_window_edges_and_ties(tmp_path: Path) -> None:
    t0 = 1_756_684_800 * S
    sent = [
        ("a", t0, "view", "home"),
        ("b", t0, "view", "item"),  # same microsecond: both count at t0, b is the later one
        ("c", t0 + 300 * S - 1, "view", "cart"),
        ("d", t0 + 300 * S, "view", "item"),  # exactly one 5m window after a and b
    ]
    warehouse = ingest(
        tmp_path,
        [
            {
                "event_id": i,
                "event_name": n,
                "sync_date": iso(t),
                "keys": {"user_id": "u", "session_id": "s"},
                "page_type": p,
            }
            for i, t, n, p in sent
        ],
    )
    view = StreamView(
        "v",
        key="keys.session_id",
        features={
            "n_5m": stream.count(window="5m"),
            "pages": stream.last_n("page_type", 3),
            "last_page": stream.last("page_type"),
            "since": stream.seconds_since_previous(),
        },
    )
    at = [t0 - 1, t0, t0 + 300 * S - 1, t0 + 300 * S, t0 + 600 * S - 1, t0 + 600 * S]
    out = stream_features_at(warehouse, view, pa.table({"session_id": ["s"] * 6, "ts": pa.array(at, UTC_US)}))
    assert out.column("n_5m").to_pylist() == [0, 2, 3, 2, 1, 0]
    assert out.column("last_page").to_pylist() == [None, "item", "cart", "item", "item", "item"]
    assert out.column("pages").to_pylist()[:4] == [
        [],
        ["home", "item"],
        ["home", "item", "cart"],
        ["item", "cart", "item"],
    ]
    assert out.column("since").to_pylist()[:4] == [None, None, 299.999999, 1e-6]


def test_sums_of_huge_and_tiny_values_match_the_engine(tmp_path: Path) -> None:
    values = [9e12, 9e12, 9e12, 9.3e12, -0.5, 2.01, 4.07, 2.5e-6, 1e-7, 0.1, 0.2]
    events = [
        {"event_name": "buy", "sync_date": iso(T0 + i), "keys": {"user_id": "u"}, "revenue": v, "x": v}
        for i, v in enumerate(values)
    ]
    warehouse = ingest(tmp_path, events)
    view = StreamView(
        "v",
        key="keys.user_id",
        features={
            "revenue": stream.sum("revenue"),
            "revenue_1m": stream.sum("revenue", window="1m"),
            "x": stream.sum("x"),
            "avg_x": stream.avg("x", window="1h"),
        },
    )
    engine = StreamEngine([view])
    online = []
    for r in in_time_order(logged(tmp_path)):
        engine.apply(r.event, r.t_us)
        online.append(engine.values("v", "u", r.t_us))
    points = pa.table(
        {"user_id": ["u"] * len(values), "ts": pa.array([T0 + i for i in range(len(values))], UTC_US)}
    )
    offline = stream_features_at(warehouse, view, points).to_pylist()
    assert [{k: row[k] for k in view.features} for row in offline] == online


def test_every_point_row_is_kept_with_empty_values_where_nothing_is_known(tmp_path: Path) -> None:
    warehouse, rows = _lake(tmp_path, 3)
    view = _view()
    known = view.key_of(rows[-1].event)
    t = rows[-1].t_us
    points = pa.table(
        {
            "label": [1, 2, 3, 4, 5],
            "session_id": [known, None, "nobody", known, known],
            "ts": pa.array([t, t, t, None, rows[0].t_us - 1], UTC_US),
        }
    )
    out = stream_features_at(warehouse, view, points)
    assert out.column("label").to_pylist() == [1, 2, 3, 4, 5]
    got = out.to_pylist()
    assert got[0]["events"] > 0
    for row in got[1:]:
        assert row["events"] == 0 and row["revenue"] == 0.0 and row["last_pages"] == []
        assert row["avg_price"] is None and row["since_previous"] is None and row["categories_1h"] == 0
    assert out.schema.field("last_pages").type == pa.list_(pa.string())
    assert out.schema.field("revenue").type == pa.float64()
    assert out.schema.field("events").type == pa.int64()


def test_points_take_integer_keys_and_naive_or_coarser_times(tmp_path: Path) -> None:
    t0 = datetime(2025, 9, 1, 12, tzinfo=UTC)
    warehouse = ingest(
        tmp_path, [{"event_name": "view", "sync_date": "2025-09-01T12:00:00Z", "keys": {"user_id": 42}}]
    )
    view = StreamView("v", key="keys.user_id", features={"n": stream.count(window="1d")})
    naive = pa.table({"user_id": [42, 42], "ts": pa.array([t0.replace(tzinfo=None)] * 2, pa.timestamp("ms"))})
    assert stream_features_at(warehouse, view, naive).column("n").to_pylist() == [1, 1]
    dates = pa.table({"user_id": ["42"], "day": pa.array([t0.date()], pa.date32())})
    assert stream_features_at(warehouse, view, dates, time_column="day").column("n").to_pylist() == [0]


def test_event_points_are_the_views_events_in_time_order(tmp_path: Path) -> None:
    warehouse, rows = _lake(tmp_path, 4)
    view = _view()
    points = event_points(warehouse, view, {"event_name": "view"})
    want = [r for r in rows if r.event["event_name"] == "view"]
    assert points.column("event_id").to_pylist() == [r.event_id for r in want]
    assert points.column("session_id").to_pylist() == [view.key_of(r.event) for r in want]
    assert points.schema.field("ts").type == UTC_US
    out = stream_features_at(warehouse, view, points)
    assert out.num_rows == len(want) and all(n >= 1 for n in out.column("views_5m").to_pylist())


@pytest.mark.parametrize(
    ("points", "words"),
    [
        (pa.table({"user_id": ["u"], "ts": pa.array([0], UTC_US)}), ["'session_id'"]),
        (pa.table({"session_id": ["s"], "at": pa.array([0], UTC_US)}), ["'ts'"]),
        (pa.table({"session_id": ["s"], "ts": ["2025-09-01"]}), ["'ts'", "timestamps"]),
        (pa.table({"session_id": [1.5], "ts": pa.array([0], UTC_US)}), ["'session_id'", "text"]),
        (pa.table({"session_id": ["s"], "ts": pa.array([0], UTC_US), "events": [1]}), ["'events'", "rename"]),
    ],
)
def test_bad_points_are_refused(tmp_path: Path, points: pa.Table, words: list[str]) -> None:
    warehouse = ingest(tmp_path, [])
    with pytest.raises(StreamError) as err:
        stream_features_at(warehouse, _view(), points)
    for word in words:
        assert word in str(err.value)


def test_an_empty_lake_gives_empty_values(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "lake", "t")
    view = _view()
    out = stream_features_at(warehouse, view, pa.table({"session_id": ["s"], "ts": pa.array([S], UTC_US)}))
    row: dict[str, Any] = out.to_pylist()[0]
    assert row["events"] == 0 and row["last_pages"] == [] and row["max_price"] is None
