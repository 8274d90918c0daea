"""What the trigger worker keeps in the online store, and how the API, metrics and CLI read it.

Everything the worker writes for one batch of the log (predictions, stream states, counters, error
records, queued webhook and emit deliveries, and the log offset it got to) goes in one atomic write,
so after a crash the counters, the results and the offset always agree.

Namespaces (`<p>` is the project):
- `triggers/<p>`: one `TriggerStats` per trigger (its declaration and counters);
- `triggers-worker`: `position`, the worker's `Position` in the event log;
- `trigger-errors/<p>/<trigger>`: the newest `ERROR_RING` error records, a ring keyed by sequence;
- `trigger-outbox/<p>/<trigger>/<webhook|emit>`: results waiting for delivery, in log order;
- `trigger-delivery/<p>`: one `DeliveryStats` per trigger and channel;
- `stream/<p>/<view>`: streaming feature state per entity key.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from kawa.stores.online import OnlineStore

WORKER_NS = "triggers-worker"
POSITION = "position"
ERROR_RING = 1000
# Upper bounds (ms) of the latency histogram: event received by the API -> prediction readable.
LATENCY_BUCKETS_MS = (0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 10_000.0)


def stats_ns(project: str) -> str:
    return f"triggers/{project}"


def errors_ns(project: str, trigger: str) -> str:
    return f"trigger-errors/{project}/{trigger}"


def outbox_ns(project: str, trigger: str, channel: str) -> str:
    return f"trigger-outbox/{project}/{trigger}/{channel}"


def delivery_ns(project: str) -> str:
    return f"trigger-delivery/{project}"


def stream_ns(project: str, view: str) -> str:
    return f"stream/{project}/{view}"


class TriggerStats(msgspec.Struct, omit_defaults=True):
    """A trigger's declaration and what it has done, exact (written with the results they count)."""

    definition: dict[str, Any]
    matched: int = 0  # events that matched `on` (each once, duplicates dropped)
    scored: int = 0  # predictions stored
    errors: int = 0  # matched events that got an error record instead
    queued: int = 0  # results queued for the webhook or emit
    last_version: int | None = None
    last_scored_at: str | None = None
    last_latency_ms: float | None = None
    # Counts per LATENCY_BUCKETS_MS bound (the last one is +Inf), and their sum in ms.
    latency_counts: list[int] = msgspec.field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    latency_sum_ms: float = 0.0


class DeliveryStats(msgspec.Struct, omit_defaults=True):
    """What the delivery of one trigger's results to its webhook or as events has done."""

    delivered: int = 0
    failed: int = 0  # results given up on (refused for good); each has an error record
    errors: int = 0  # failed attempts, retried or not
    last_error: str | None = None


class Position(msgspec.Struct, omit_defaults=True):
    """Where the worker is in the event log: everything before `offset` is done."""

    offset: int
    project: str
    # Where the log records whose event ids the duplicate check remembers begin.
    dedupe_from: int = 0
    received_at: int = 0  # µs; when the API received the last record done
    duplicates: int = 0  # events dropped because their event_id was seen before
    events: int = 0  # events of the project read
    triggers: list[str] = msgspec.field(default_factory=list)  # the triggers it runs
    updated_at: float = 0.0


class ErrorRecord(msgspec.Struct, omit_defaults=True):
    """Why one event got no prediction (or one result was not delivered)."""

    seq: int
    at: str
    stage: str  # key | features | model | webhook | emit
    error: str
    event_id: str | None = None
    entity: str | None = None
    offset: int | None = None
    model_version: int | None = None


_stats = msgspec.json.Decoder(TriggerStats)
_delivery = msgspec.json.Decoder(DeliveryStats)
_position = msgspec.json.Decoder(Position)
_errors = msgspec.json.Decoder(ErrorRecord)
_encoder = msgspec.json.Encoder()
encode = _encoder.encode


def error_key(stage_prefix: str, seq: int) -> str:
    """The ring slot of error number `seq`: the newest `ERROR_RING` are kept, older ones overwritten."""
    return f"{stage_prefix}{seq % ERROR_RING:06d}"


def read_position(online: OnlineStore) -> Position | None:
    raw = online.get(WORKER_NS, POSITION)
    return None if raw is None else _position.decode(raw)


def read_stats(online: OnlineStore, project: str) -> dict[str, TriggerStats]:
    return {name: _stats.decode(raw) for name, raw in online.scan(stats_ns(project))}


def read_delivery(online: OnlineStore, project: str) -> dict[str, DeliveryStats]:
    """Delivery stats by "<trigger>/<channel>"."""
    return {key: _delivery.decode(raw) for key, raw in online.scan(delivery_ns(project))}


def status(online: OnlineStore, project: str, log_end: int | None, *, running: bool = True) -> dict[str, Any]:
    """Every trigger the worker has run for `project` with its counters, and the worker's lag.

    `log_end` is the event log's end offset (None if unknown): lag is what lies between it and the
    worker's offset, in bytes and in seconds since the last record the worker finished was received.
    `running` says whether the worker is alive now; a stopped worker's triggers are not active.
    """
    position = read_position(online)
    delivery = read_delivery(online, project)
    mine = running and position is not None and position.project == project
    active = set(position.triggers) if mine and position is not None else set()
    triggers = []
    for name, stats in sorted(read_stats(online, project).items()):
        pending = {
            channel: online_count(online, outbox_ns(project, name, channel))
            for channel in ("webhook", "emit")
            if stats.definition.get(channel)
        }
        triggers.append(
            {
                **stats.definition,
                "active": name in active,
                "matched": stats.matched,
                "scored": stats.scored,
                "errors": stats.errors,
                "last_version": stats.last_version,
                "last_scored_at": stats.last_scored_at,
                "last_latency_ms": stats.last_latency_ms,
                "delivery": {
                    channel: {**msgspec.to_builtins(delivery.get(f"{name}/{channel}", DeliveryStats())),
                              "pending": count}
                    for channel, count in pending.items()
                },
            }
        )  # fmt: skip
    worker: dict[str, Any] | None = None
    if position is not None:
        lag = None if log_end is None else max(log_end - position.offset, 0)
        behind = lag is not None and lag > 0 and position.received_at > 0
        worker = {
            "offset": position.offset,
            "lag_bytes": lag,
            "lag_s": round(max(time.time() - position.received_at / 1e6, 0.0), 3) if behind else 0.0,
            "duplicates": position.duplicates if position.project == project else 0,
            "updated_at": position.updated_at,
            "running": running,
        }
    return {"triggers": triggers, "worker": worker}


def online_count(online: OnlineStore, namespace: str, limit: int = 100_000) -> int:
    """How many keys `namespace` holds, counting at most `limit`."""
    return sum(1 for _ in online.scan(namespace, limit=limit))


def errors(online: OnlineStore, project: str, trigger: str, limit: int = 100) -> list[dict[str, Any]]:
    """The newest error records of a trigger, newest first."""
    found = [_errors.decode(raw) for _, raw in online.scan(errors_ns(project, trigger))]
    found.sort(key=lambda r: (r.at, r.seq), reverse=True)
    return [msgspec.to_builtins(r) for r in found[:limit]]
