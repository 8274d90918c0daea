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

With several trigger workers (`triggers.workers`), each partition keeps its own position, counters,
error records and outboxes: their keys (and outbox namespaces) end in the partition's tag, such as
`@1of2`. The readers here add the partitions up, so the API, metrics and CLI see one worker.
"""

from __future__ import annotations

import re
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


_TAG = re.compile(r"@\d+of\d+$")


def untag(key: str) -> tuple[str, str]:
    """A key's name and its partition tag ("" for the sole partition).

    >>> untag("buy@1of2"), untag("buy")
    (('buy', '@1of2'), ('buy', ''))
    """
    found = _TAG.search(key)
    return (key, "") if found is None else (key[: found.start()], found.group())


def error_key(stage_prefix: str, seq: int) -> str:
    """The ring slot of error number `seq`: the newest `ERROR_RING` are kept, older ones overwritten."""
    return f"{stage_prefix}{seq % ERROR_RING:06d}"


def read_position(online: OnlineStore, tag: str | None = None) -> Position | None:
    """The position of the partition tagged `tag`; with `tag=None`, of all the partitions as one.

    All as one: the offset the slowest partition of the newest layout got to (every partition of a
    layout starts with it), the counts summed, the triggers of any.
    """
    if tag is not None:
        raw = online.get(WORKER_NS, POSITION + tag)
        return None if raw is None else _position.decode(raw)
    found = [(untag(key)[1], _position.decode(raw)) for key, raw in online.scan(WORKER_NS, prefix=POSITION)]
    if not found:
        return None
    newest = max(found, key=lambda f: f[1].updated_at)[0]
    layout = newest[newest.index("of") :] if newest else ""
    current = [p for t, p in found if (t[t.index("of") :] if t else "") == layout]
    merged = min(current, key=lambda p: p.offset)
    return Position(
        offset=merged.offset, project=merged.project, dedupe_from=min(p.dedupe_from for p in current),
        received_at=min(p.received_at for p in current), duplicates=sum(p.duplicates for _, p in found),
        events=sum(p.events for _, p in found), triggers=merged.triggers,
        updated_at=max(p.updated_at for p in current),
    )  # fmt: skip


def partition_tags(online: OnlineStore) -> list[str]:
    """The tags of every partition that stored a position ([""] for one worker)."""
    return sorted({untag(key)[1] for key, _ in online.scan(WORKER_NS, prefix=POSITION)}) or [""]


def read_stats(online: OnlineStore, project: str, tag: str | None = None) -> dict[str, TriggerStats]:
    """Each trigger's stats: of the partition tagged `tag`, or (None) summed over every partition."""
    out: dict[str, TriggerStats] = {}
    for key, raw in online.scan(stats_ns(project)):
        name, found = untag(key)
        if tag is not None and found != tag:
            continue
        stats = _stats.decode(raw)
        if name in out:
            _add_stats(out[name], stats)
        else:
            out[name] = stats
    return out


def _add_stats(into: TriggerStats, more: TriggerStats) -> None:
    into.matched += more.matched
    into.scored += more.scored
    into.errors += more.errors
    into.queued += more.queued
    into.latency_counts = [a + b for a, b in zip(into.latency_counts, more.latency_counts, strict=True)]
    into.latency_sum_ms += more.latency_sum_ms
    if more.last_scored_at is not None and (into.last_scored_at or "") < more.last_scored_at:
        into.last_version, into.last_scored_at = more.last_version, more.last_scored_at
        into.last_latency_ms = more.last_latency_ms


def read_delivery(online: OnlineStore, project: str) -> dict[str, DeliveryStats]:
    """Delivery stats by "<trigger>/<channel>", summed over the partitions."""
    out: dict[str, DeliveryStats] = {}
    for key, raw in online.scan(delivery_ns(project)):
        name = untag(key)[0]
        stats = _delivery.decode(raw)
        if name not in out:
            out[name] = stats
            continue
        total = out[name]
        total.delivered += stats.delivered
        total.failed += stats.failed
        total.errors += stats.errors
        total.last_error = stats.last_error or total.last_error
    return out


def status(online: OnlineStore, project: str, log_end: int | None, *, running: bool = True) -> dict[str, Any]:
    """Every trigger the worker has run for `project` with its counters, and the worker's lag.

    `log_end` is the event log's end offset (None if unknown): lag is what lies between it and the
    worker's offset, in bytes and in seconds since the last record the worker finished was received.
    `running` says whether the worker is alive now; a stopped worker's triggers are not active.
    """
    position = read_position(online, None)
    delivery = read_delivery(online, project)
    tags = partition_tags(online)
    mine = running and position is not None and position.project == project
    active = set(position.triggers) if mine and position is not None else set()
    triggers = []
    for name, stats in sorted(read_stats(online, project).items()):
        pending = {
            channel: sum(online_count(online, outbox_ns(project, name, channel) + tag) for tag in tags)
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
