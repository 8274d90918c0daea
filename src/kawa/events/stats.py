"""How ingest is going: events received per minute and rejected events, read from the warehouse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kawa.warehouse import Warehouse

EVENTS = "events"
REJECTED = "rejected_events"


@dataclass(frozen=True)
class IngestActivity:
    """Events and rejected events received per minute over a recent window, oldest minute first."""

    minutes: list[datetime]
    events: list[int]
    rejected: list[int]
    # Events received in the 60 seconds before the query: the live rate, not a filling minute.
    last_60s: int

    @property
    def total(self) -> int:
        return sum(self.events)

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected)

    @property
    def per_second(self) -> float:
        """Events per second over the last 60 seconds."""
        return self.last_60s / 60.0


def ingest_activity(warehouse: Warehouse, minutes: int = 60, now: datetime | None = None) -> IngestActivity:
    """Per-minute counts by the time kawa received each event (not the event's own time)."""
    exact = now or datetime.now(UTC)
    first = exact.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    buckets = [first + timedelta(minutes=i) for i in range(minutes)]
    tables = set(warehouse.tables())
    counts = {
        name: _per_minute(warehouse, name, first) if name in tables else {} for name in (EVENTS, REJECTED)
    }
    return IngestActivity(
        minutes=buckets,
        events=[counts[EVENTS].get(b, 0) for b in buckets],
        rejected=[counts[REJECTED].get(b, 0) for b in buckets],
        last_60s=_since(warehouse, exact - timedelta(seconds=60)) if EVENTS in tables else 0,
    )


def _since(warehouse: Warehouse, since: datetime) -> int:
    rows = warehouse.query(f"SELECT count(*) AS n FROM {EVENTS} WHERE received_at >= ?", [since]).to_pylist()
    return int(rows[0]["n"])


def _per_minute(warehouse: Warehouse, table: str, since: datetime) -> dict[datetime, int]:
    rows = warehouse.query(
        f"SELECT date_trunc('minute', received_at) AS minute, count(*) AS n FROM {table} "
        "WHERE received_at >= ? GROUP BY 1",
        [since],
    ).to_pylist()
    return {r["minute"].astimezone(UTC): int(r["n"]) for r in rows}
