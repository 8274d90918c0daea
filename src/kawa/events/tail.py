"""The newest events a project received, filtered by event name and user, and the events kawa refused.

Reads the warehouse, newest `received_at` first. The events table is partitioned by the events' own
day, not by when they arrived, so the tail looks at a short recent window first (Parquet statistics
let DuckDB skip every row group received before it) and widens the window only when that holds too
few events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kawa.warehouse import Warehouse
from kawa.warehouse.browse import plain

EVENTS = "events"
REJECTED = "rejected_events"
MAX_ROWS = 500
# Windows the tail tries in turn; None is the whole table.
WINDOWS: tuple[timedelta | None, ...] = (timedelta(minutes=10), timedelta(days=1), None)

# `keys` is read whole: DuckDB 1.x fails (an internal error) on a query that filters on keys.user_id
# and also selects keys.user_id from Parquet, so the ids are taken out of the struct in Python.
_COLUMNS = "event_id, event_name, sync_date, received_at, keys, page, item_id, price, properties"
_KEYS = ("user_id", "visitor_id", "session_id")


@dataclass(frozen=True)
class RejectedPage:
    """Refused events, newest first, with the reason each was refused."""

    rows: list[dict[str, Any]]
    offset: int
    total: int  # from the table's manifest

    def to_json(self) -> dict[str, Any]:
        return {"rejected": self.rows, "offset": self.offset, "total": self.total}


def recent_events(
    warehouse: Warehouse,
    *,
    event_name: str | None = None,
    user_id: str | None = None,
    limit: int = 50,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The newest `limit` events received (newest first), only those named `event_name` and about
    `user_id` when given; each as JSON-ready columns with the user, visitor and session ids."""
    if not 1 <= limit <= MAX_ROWS:
        raise ValueError(f"limit must be 1 to {MAX_ROWS}; got {limit}")
    if EVENTS not in warehouse.tables():
        return []
    where, params = [], []
    if event_name:
        where.append("event_name = ?")
        params.append(event_name)
    if user_id:
        where.append("keys.user_id = ?")
        params.append(user_id)
    moment = now or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    with warehouse.connect() as db:
        for window in WINDOWS:
            since = [] if window is None else ["received_at >= ?"]
            since_params = [] if window is None else [moment - window]
            clause = " AND ".join(since + where)
            sql = (
                f"SELECT {_COLUMNS} FROM {EVENTS} {'WHERE ' + clause if clause else ''} "
                "ORDER BY received_at DESC, event_id DESC LIMIT ?"
            )
            rows = db.sql(sql, params=[*since_params, *params, limit]).to_arrow_table().to_pylist()
            if len(rows) >= limit:
                break
    return [_flat(row) for row in rows]


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    keys = row.pop("keys", None) or {}
    out = {k: plain(v) for k, v in row.items()}
    out.update({k: keys.get(k) for k in _KEYS})
    return out


def event_names(warehouse: Warehouse) -> list[str]:
    """Every event name the project has received, for a filter's choices."""
    if EVENTS not in warehouse.tables():
        return []
    table = warehouse.query(
        f"SELECT DISTINCT event_name FROM {EVENTS} WHERE event_name IS NOT NULL ORDER BY 1"
    )
    return [str(v) for v in table.column("event_name").to_pylist()]


def rejected_events(warehouse: Warehouse, *, offset: int = 0, limit: int = 50) -> RejectedPage:
    """A page of refused events, newest first: when, why, the event's position in its request, its id
    and what was sent."""
    if offset < 0 or not 1 <= limit <= MAX_ROWS:
        raise ValueError(f"offset must be 0 or more and limit 1 to {MAX_ROWS}; got {offset} and {limit}")
    total = sum(f.rows for f in warehouse.table(REJECTED).manifest().files)
    if total == 0:
        return RejectedPage([], offset, 0)
    table = warehouse.query(
        f'SELECT received_at, reason, "index", event_id, payload FROM {REJECTED} '
        'ORDER BY received_at DESC, "index" LIMIT ? OFFSET ?',
        [limit, offset],
    )
    rows = [{k: plain(v) for k, v in row.items()} for row in table.to_pylist()]
    return RejectedPage(rows, offset, total)
