"""Streaming features: update cost per event and the events/s one StreamEngine sustains, on demo-shop events.

    python -m benchmarks.streaming                 # 2,000 users x 14 days (about 85 k events), 5 runs
    python -m benchmarks.streaming --users 500 --days 7 --runs 3    # a quick small run

The events are the demo shop's, as the trigger worker sees them: each NDJSON line decoded with msgspec
into a dict, with its time in microseconds. Every run builds a fresh engine and applies every event in
time order (so the engine also creates every session's and user's state); the figure is the median of
the runs. Rows:

- `session (5 features)`: the issue's `session_activity` view (views in 5 minutes, revenue in 24 hours,
  seconds since the previous event, the last 10 page types, distinct categories in 1 hour).
- `session + user (15 features)`: that view and a user view with 10 more features (counts, sums,
  averages, min/max, distinct counts, last values over 1 hour to 7 days); each event updates both.
- `decode + apply`: the same two views, with the JSON decode of each event line counted too.
- `apply + read`: the two views, and a read of the session view after every event (what a trigger on
  every event costs).
- `save states`: `take_dirty()` after the run: microseconds per state encoded (msgpack).

Times are the thread's CPU time (`time.thread_time`), so other work on a shared machine does not count;
on an idle one they equal wall time. Events/s is 1e6 / (µs per event): the most one engine on one core
sustains; the trigger worker adds its log reads, model calls and store writes on top
(`python -m benchmarks.realtime --worker` measures the whole worker).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from benchmarks._peers_kawa import machine, median, save, table
from kawa.demo import ShopConfig, generate, iter_ndjson_batches
from kawa.streaming import StreamEngine, StreamView, stream

VIEW = {"event_name": "view"}
PURCHASE = {"event_name": "purchase"}

SESSION = StreamView(
    "session_activity",
    key="keys.session_id",
    features={
        "views_5m": stream.count(where=VIEW, window="5m"),
        "revenue_24h": stream.sum("revenue", where=PURCHASE, window="24h"),
        "seconds_since_previous": stream.seconds_since_previous(),
        "last_pages": stream.last_n("page_type", 10, where=VIEW),
        "categories_1h": stream.count_distinct("category", window="1h"),
    },
)
USER = StreamView(
    "user_activity",
    key="keys.user_id",
    features={
        "events_1h": stream.count(window="1h"),
        "events_24h": stream.count(window="24h"),
        "purchases_7d": stream.count(where=PURCHASE, window="7d"),
        "cart_adds_24h": stream.count(where={"event_name": "cart_add"}, window="24h"),
        "spend_7d": stream.sum("revenue", where=PURCHASE, window="7d"),
        "avg_price_24h": stream.avg("price", where=VIEW, window="24h"),
        "max_price_1h": stream.max("price", window="1h"),
        "sessions_24h": stream.count_distinct("keys.session_id", window="24h"),
        "last_category": stream.last("category"),
        "seconds_since_purchase": stream.seconds_since_previous(where=PURCHASE),
    },
)


def shop_lines(users: int, days: int) -> tuple[list[bytes], list[int]]:
    """The demo shop's events as NDJSON lines, with each event's time in microseconds."""
    shop = generate(ShopConfig(users=users, days=days))
    lines = [line for body in iter_ndjson_batches(shop, 5000) for line in body.splitlines()]
    times = [
        int(datetime.fromisoformat(e["sync_date"].replace("Z", "+00:00")).timestamp() * 1_000_000)
        for e in shop.events
    ]
    return lines, times


# A scenario runs once and returns (seconds it measured, units it did: events or states).
Scenario = Callable[[], tuple[float, int]]


def scenarios(lines: list[bytes], times: list[int]) -> dict[str, tuple[str, Scenario]]:
    """Each row of the table: (unit, scenario)."""
    decode = msgspec.json.Decoder().decode
    events: list[dict[str, Any]] = [decode(line) for line in lines]
    pairs = list(zip(events, times, strict=True))
    both = [SESSION, USER]

    def apply_only(views: list[StreamView]) -> Scenario:
        def run() -> tuple[float, int]:
            engine = StreamEngine(views)
            apply = engine.apply
            started = time.thread_time()
            for event, t in pairs:
                apply(event, t)
            return time.thread_time() - started, len(pairs)

        return run

    def decode_and_apply() -> tuple[float, int]:
        engine = StreamEngine(both)
        apply = engine.apply
        started = time.thread_time()
        for line, t in zip(lines, times, strict=True):
            apply(decode(line), t)
        return time.thread_time() - started, len(lines)

    def apply_and_read() -> tuple[float, int]:
        engine = StreamEngine(both)
        apply, values, key_of = engine.apply, engine.values, SESSION.key_of
        started = time.thread_time()
        for event, t in pairs:
            apply(event, t)
            key = key_of(event)
            if key is not None:
                values("session_activity", key, t)
        return time.thread_time() - started, len(pairs)

    def save_states() -> tuple[float, int]:
        engine = StreamEngine(both)
        for event, t in pairs:
            engine.apply(event, t)
        started = time.thread_time()
        saved = engine.take_dirty()
        return time.thread_time() - started, len(saved)

    return {
        "session (5 features)": ("event", apply_only([SESSION])),
        "session + user (15 features)": ("event", apply_only(both)),
        "decode + apply": ("event", decode_and_apply),
        "apply + read": ("event", apply_and_read),
        "save states": ("state", save_states),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    started = machine()
    lines, times = shop_lines(args.users, args.days)
    print(
        f"{len(lines):,} demo-shop events ({args.users} users, {args.days} days), median of {args.runs} runs"
    )
    results: dict[str, Any] = {}
    rows = []
    for name, (unit, run) in scenarios(lines, times).items():
        every = []
        for _ in range(args.runs):
            gc.collect()
            seconds, units = run()
            every.append(seconds / max(units, 1) * 1e6)
        us = median(every)
        results[name] = {f"us_per_{unit}": us, "per_second": 1e6 / us, "runs_us": every}
        rows.append(
            (name, [f"{us:.2f} µs/{unit}", f"{1e6 / us:,.0f}/s", f"{min(every):.2f}", f"{max(every):.2f}"])
        )
    print(table(rows, ["median", "throughput", "best µs", "worst µs"]))
    path = save(
        "streaming",
        {
            "machine": started,
            "events": len(lines),
            "users": args.users,
            "days": args.days,
            "results": results,
        },
    )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
