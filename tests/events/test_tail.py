"""The events tail: the newest events received first, filters, a widening window, and rejected events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kawa.events import tail
from kawa.events.schema import EVENTS_SCHEMA, REJECTED_SCHEMA
from kawa.lake.table import DataFile
from kawa.warehouse import Warehouse

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def publish(
    warehouse: Warehouse, table: str, schema: pa.Schema, rows: list[dict[str, Any]], name: str
) -> None:
    """One Parquet file of `rows` in `table`, as the lake writer publishes a flush."""
    data = pa.Table.from_pylist([{"_date": r["received_at"].date(), **r} for r in rows], schema=schema)
    lake = warehouse.table(table)
    path = lake.new_file({}, name)
    pq.write_table(data, path)
    lake.commit([DataFile(path.name, data.num_rows, path.stat().st_size)])


def event(i: int, name: str, user: str | None, ago: timedelta) -> dict[str, Any]:
    when = NOW - ago
    return {
        "event_id": f"e{i:03d}",
        "event_name": name,
        "sync_date": when,
        "received_at": when,
        "keys": {"user_id": user, "visitor_id": f"v{i}", "session_id": "s1"},
        "page": f"https://shop.example/{i}",
    }


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    found = Warehouse(tmp_path / "lake", "shop")
    # An old file (two days ago) and a recent one, published in that order; ids grow with time.
    old = [
        event(i, "purchase" if i % 10 == 0 else "view", "u_old", timedelta(days=2, minutes=i))
        for i in range(30)
    ]
    recent = [
        event(100 + i, "view" if i % 2 else "cart_add", f"u_{i % 3}", timedelta(seconds=60 - i))
        for i in range(20)
    ]
    publish(found, "events", EVENTS_SCHEMA, old, "old.parquet")
    publish(found, "events", EVENTS_SCHEMA, recent, "recent.parquet")
    return found


def test_the_newest_events_come_first(warehouse: Warehouse) -> None:
    found = tail.recent_events(warehouse, limit=5, now=NOW)
    assert [e["event_id"] for e in found] == ["e119", "e118", "e117", "e116", "e115"]
    first = found[0]
    assert first["user_id"] == "u_1" and first["session_id"] == "s1" and first["visitor_id"] == "v119"
    assert first["received_at"].startswith("2026-03-01T11:59:")


def test_filters_by_event_name_and_user(warehouse: Warehouse) -> None:
    carts = tail.recent_events(warehouse, event_name="cart_add", limit=50, now=NOW)
    assert len(carts) == 10 and {e["event_name"] for e in carts} == {"cart_add"}
    mine = tail.recent_events(warehouse, user_id="u_2", limit=50, now=NOW)
    assert {e["user_id"] for e in mine} == {"u_2"} and len(mine) == 6
    both = tail.recent_events(warehouse, event_name="view", user_id="u_2", limit=50, now=NOW)
    assert [e["event_id"] for e in both] == ["e117", "e111", "e105"]
    assert tail.recent_events(warehouse, user_id="nobody", limit=5, now=NOW) == []


def test_the_window_widens_until_it_has_enough(warehouse: Warehouse) -> None:
    # Only old events match: the last window (the whole table) finds them, newest first.
    old = tail.recent_events(warehouse, event_name="purchase", limit=2, now=NOW)
    assert [e["event_id"] for e in old] == ["e000", "e010"]
    # 25 of 50 come from the 10-minute window's 20 plus the older ones.
    assert len(tail.recent_events(warehouse, limit=25, now=NOW)) == 25
    assert tail.event_names(warehouse) == ["cart_add", "purchase", "view"]


def test_an_empty_project_has_no_events(tmp_path: Path) -> None:
    empty = Warehouse(tmp_path / "lake", "shop")
    assert tail.recent_events(empty, now=NOW) == []
    assert tail.event_names(empty) == []
    assert tail.rejected_events(empty).total == 0


def test_rejected_events_page_newest_first_with_reasons(warehouse: Warehouse) -> None:
    rows = [
        {
            "received_at": NOW - timedelta(seconds=i),
            "reason": f"event_name is missing ({i})",
            "index": i,
            "event_id": None,
            "payload": '{"keys": {}}',
        }
        for i in range(12)
    ]
    publish(warehouse, "rejected_events", REJECTED_SCHEMA, rows, "rejected.parquet")
    first = tail.rejected_events(warehouse, limit=5)
    assert first.total == 12
    assert [r["index"] for r in first.rows] == [0, 1, 2, 3, 4]
    assert first.rows[0]["reason"] == "event_name is missing (0)"
    last = tail.rejected_events(warehouse, offset=10, limit=5)
    assert [r["index"] for r in last.rows] == [10, 11]
    with pytest.raises(ValueError, match="limit"):
        tail.rejected_events(warehouse, limit=0)
