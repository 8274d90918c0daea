"""The event envelope as clients send it, and the normalised record kawa keeps in its log and lake."""

from __future__ import annotations

import msgspec
import pyarrow as pa

# Typed top-level fields lifted into their own lake columns; any other field stays in `properties`.
COMMON_FIELDS = ("page", "item_id", "category", "price", "quantity", "revenue")

Id = str | int


class Keys(msgspec.Struct, omit_defaults=True):
    """Who the event is about: a user, a visitor (anonymous device), a session; and optionally a write key."""

    user_id: Id | None = None
    visitor_id: Id | None = None
    session_id: Id | None = None
    api_key: str | None = None


class IncomingEvent(msgspec.Struct):
    """The typed part of one event as sent; unknown fields are kept separately as raw JSON."""

    event_name: str
    keys: Keys | None = None
    event_id: Id | None = None
    sync_date: str | None = None
    timestamp: str | None = None
    page: str | None = None
    item_id: Id | None = None
    category: str | None = None
    price: float | None = None
    quantity: int | None = None
    revenue: float | None = None


class LogBatch(msgspec.Struct, array_like=True):
    """One event log record: the events of one request, or the events it refused.

    `body` holds one JSON object per line. For accepted events (`kind` "E") `times` holds each line's
    event time as little-endian int64 microseconds, and an event without an `event_id` gets
    `id_prefix` + its line number, so a replay of the log assigns the same ids again.
    """

    kind: str
    project: str
    received_at: int
    id_prefix: str
    times: bytes
    body: bytes


class RejectedEvent(msgspec.Struct):
    """One event kawa refused, with the reason; kept in `rejected_events` so nothing is silently dropped."""

    project: str
    received_at: int
    reason: str
    index: int
    event_id: str | None
    payload: str


_TS = pa.timestamp("us", tz="UTC")
KEYS_TYPE = pa.struct([("user_id", pa.string()), ("visitor_id", pa.string()), ("session_id", pa.string())])

# The columns of the `events` table in the lake.
EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_name", pa.string()),
        ("sync_date", _TS),
        ("received_at", _TS),
        ("keys", KEYS_TYPE),
        ("page", pa.string()),
        ("item_id", pa.string()),
        ("category", pa.string()),
        ("price", pa.float64()),
        ("quantity", pa.int64()),
        ("revenue", pa.float64()),
        ("properties", pa.string()),
        ("_date", pa.date32()),
    ]
)

REJECTED_SCHEMA = pa.schema(
    [
        ("received_at", _TS),
        ("reason", pa.string()),
        ("index", pa.int64()),
        ("event_id", pa.string()),
        ("payload", pa.string()),
        ("_date", pa.date32()),
    ]
)

KIND_EVENTS = "E"
KIND_REJECTED = "R"
