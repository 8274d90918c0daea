"""What one batch of hits adds to the worker's atomic write: predictions, error records, deliveries."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from kawa.serving.store import Prediction, realtime_namespace
from kawa.serving.store import encode as encode_prediction
from kawa.triggers import state
from kawa.triggers._scoring import Hit
from kawa.triggers.state import LATENCY_BUCKETS_MS, ErrorRecord, TriggerStats

Puts = dict[str, dict[str, bytes]]

_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def now_rfc3339() -> str:
    """The time now as `kawa.serving.store.now_rfc3339` writes it; the date and time formatted once a second.

    >>> len(now_rfc3339()), now_rfc3339()[10], now_rfc3339()[-1]
    (24, 'T', 'Z')
    """
    global _second
    seconds, ms = divmod(time.time_ns() // 1_000_000, 1000)
    cached = _second
    if cached[0] != seconds:
        cached = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{ms:03d}Z"


def add_results(
    puts: Puts,
    project: str,
    hits: Sequence[Hit],
    stats: dict[str, TriggerStats],
    computed_at: str,
    tag: str = "",
) -> dict[tuple[str, str], int]:
    """Put each hit's prediction or error record, and its deliveries; count them in `stats`.

    `tag` is the worker's partition tag: its error records and outboxes are its own (see `state`).

    Returns how many results each (trigger, channel) outbox got.
    """
    queued: dict[tuple[str, str], int] = defaultdict(int)
    for hit in hits:
        trigger = hit.trigger
        counts = stats[trigger.name]
        counts.matched += 1
        if hit.error is not None:
            counts.errors += 1
            record = ErrorRecord(
                seq=counts.errors, at=computed_at, stage=hit.stage or "model", error=hit.error,
                event_id=hit.event_id, entity=hit.entity, offset=hit.offset, model_version=hit.version,
            )  # fmt: skip
            ns = state.errors_ns(project, trigger.name)
            puts.setdefault(ns, {})[state.error_key("e" + tag, counts.errors)] = state.encode(record)
            continue
        assert hit.entity is not None and hit.version is not None
        counts.scored += 1
        counts.last_version = hit.version
        counts.last_scored_at = computed_at
        prediction = Prediction(
            score=hit.score, model_version=hit.version, computed_at=computed_at, source="realtime",
            event_id=hit.event_id, trigger=trigger.name,
        )  # fmt: skip
        puts.setdefault(realtime_namespace(project, trigger.model), {})[hit.entity] = encode_prediction(
            prediction
        )
        if trigger.webhook or trigger.emit:
            key = f"{hit.offset:020d}-{hit.line:06d}"  # log order, and unique per event
            for channel, body in deliveries(hit, computed_at):
                puts.setdefault(state.outbox_ns(project, trigger.name, channel) + tag, {})[key] = body
                queued[trigger.name, channel] += 1
                counts.queued += 1
    return queued


def deliveries(hit: Hit, computed_at: str) -> list[tuple[str, bytes]]:
    """The outbox entries of a scored hit: its webhook body and its emitted event, as configured."""
    trigger = hit.trigger
    out: list[tuple[str, bytes]] = []
    result = {
        "trigger": trigger.name,
        "model": trigger.model,
        "model_version": hit.version,
        "entity": hit.entity,
        "score": hit.score,
    }
    if trigger.webhook:
        body = {
            "id": f"{trigger.name}:{hit.event_id}",
            **result,
            "event_id": hit.event_id,
            "event_name": hit.event.get("event_name"),
            "computed_at": computed_at,
        }
        out.append(("webhook", state.encode(body)))
    if trigger.emit:
        keys = hit.event.get("keys")
        emitted: dict[str, Any] = {
            "event_id": f"{trigger.name}:{hit.event_id}",  # the same after a replay: the lake drops repeats
            "event_name": trigger.emit,
            "keys": {k: v for k, v in keys.items() if k != "api_key"} if isinstance(keys, dict) else {},
            "sync_date": computed_at,
            **result,
            "source_event_id": hit.event_id,
        }
        out.append(("emit", state.encode(emitted)))
    return out


def fold_latencies(stats: TriggerStats, found: list[float]) -> None:
    """Add latencies (ms) to a trigger's histogram."""
    for ms in found:
        stats.latency_counts[bisect_left(LATENCY_BUCKETS_MS, ms)] += 1
        stats.latency_sum_ms += ms
    if found:
        stats.last_latency_ms = round(found[-1], 3)
