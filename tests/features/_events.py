"""Events written straight into a test warehouse's lake (no server), with the lake's own schema."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kawa.events.schema import COMMON_FIELDS, EVENTS_SCHEMA
from kawa.lake.table import DataFile, LakeTable
from kawa.warehouse import Warehouse

T0 = datetime(2025, 9, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def ev(
    name: str, at: datetime, user: str | None = None, *, session: str | None = None, **fields: Any
) -> dict[str, Any]:
    """One event as a plain dict (what `events_table` takes)."""
    return {"event_name": name, "sync_date": at, "keys": {"user_id": user, "session_id": session}, **fields}


def events_table(events: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Plain event dicts (sync_date a datetime or an ISO string) as an Arrow table of the lake's schema."""
    rows = []
    for i, e in enumerate(events):
        at = e["sync_date"]
        if isinstance(at, str):
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        keys = dict(e.get("keys") or {})
        extra = {
            k: v
            for k, v in e.items()
            if k not in {"event_id", "event_name", "sync_date", "keys", *COMMON_FIELDS}
        }
        rows.append(
            {
                "event_id": str(e.get("event_id") or f"e{i}"),
                "event_name": e["event_name"],
                "sync_date": at,
                "received_at": at,
                "keys": {
                    k: (None if keys.get(k) is None else str(keys[k]))
                    for k in ("user_id", "visitor_id", "session_id")
                },
                **{f: e.get(f) for f in COMMON_FIELDS},
                "properties": json.dumps(extra) if extra else None,
                "_date": at.date(),
            }
        )
    return pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA)


def write_events(warehouse: Warehouse, events: Iterable[Mapping[str, Any]] | pa.Table) -> int:
    """Replace the warehouse's events with `events`; returns how many there are."""
    table = events if isinstance(events, pa.Table) else events_table(events)
    lake = LakeTable(warehouse.lake_root, "events", warehouse.project)
    target = lake.new_file({}, f"test-{uuid.uuid4().hex[:8]}.parquet")
    pq.write_table(table, target)
    entry = DataFile(
        path=str(target.relative_to(lake.path)), rows=table.num_rows, bytes=target.stat().st_size
    )
    lake.commit([entry], replace_all=True, partition_by=[])
    return table.num_rows


def new_warehouse(root: Path, events: Iterable[Mapping[str, Any]] | pa.Table = ()) -> Warehouse:
    warehouse = Warehouse(root / "lake", "t")
    write_events(warehouse, events)
    return warehouse
