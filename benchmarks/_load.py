"""Drive load at a server with keep-alive connections, and probe how soon events become queryable."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from benchmarks._client import Connection, ServerClosed, request_head
from benchmarks._events import CLOCK, MARKER_PREFIX, TAG, marker_body, stamp_clock

_answer = msgspec.json.Decoder(dict[str, object])


@dataclass
class LoadResult:
    """What one load phase achieved, from the client's side."""

    seconds: float = 0.0
    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0  # connections the server dropped
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class Requests:
    """Prepared requests: the templates' heads built once; each call swaps in a fresh event-id tag."""

    def __init__(self, bodies: list[bytes], headers: dict[str, str], path: str = "/v1/events") -> None:
        self.bodies = bodies
        self.heads = [request_head("POST", path, len(b), headers) for b in bodies]
        self.serial = 0
        self.tag_prefix = b""

    def next(self) -> list[bytes]:
        n = self.serial
        self.serial += 1
        i = n % len(self.bodies)
        tag = b"%s%0*d" % (self.tag_prefix, len(TAG) - len(self.tag_prefix), n)
        return [self.heads[i], self.bodies[i].replace(TAG, tag).replace(CLOCK, stamp_clock())]


async def drive(
    host: str,
    port: int,
    requests: Requests,
    *,
    concurrency: int,
    seconds: float,
    events_per_request: int,
    rate: float = 0.0,
) -> LoadResult:
    """Closed-loop load from `concurrency` connections for `seconds`; with `rate` (events/s), paced.

    Paced load measures latency from each request's scheduled start, so a stalled server cannot hide
    its queueing delay (no coordinated omission).
    """
    result = LoadResult()
    conns = [await Connection.open(host, port) for _ in range(concurrency)]
    clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
    started = clock()
    deadline = started + seconds
    interval = events_per_request / rate if rate > 0 else 0.0
    slot = 0

    async def worker(conn: Connection) -> None:
        nonlocal slot
        while True:
            if interval:
                due = started + slot * interval
                slot += 1
                if due >= deadline:
                    return
                if due > clock():
                    await asyncio.sleep(due - clock())
                t0 = due
            else:
                t0 = clock()
                if t0 >= deadline:
                    return
            try:
                status, body = await conn.request(requests.next())
            except ServerClosed:
                result.failures += 1
                conn = await Connection.open(host, port)
                continue
            result.latencies_ms.append((clock() - t0) * 1000)
            result.requests += 1
            result.statuses[status] += 1
            if status < 300 or status == 400:
                answer = _answer.decode(body)
                result.accepted += int(answer.get("accepted", 0))  # type: ignore[call-overload]
                result.rejected += int(answer.get("rejected", 0))  # type: ignore[call-overload]

    await asyncio.gather(*(worker(c) for c in conns))
    result.seconds = clock() - started
    for c in conns:
        c.close()
    return result


@dataclass
class Freshness:
    """Seconds from a marker event's acknowledgement until SQL over the warehouse returned it."""

    lags_s: list[float] = field(default_factory=list)
    sent: int = 0
    missing: int = 0


async def probe_freshness(
    host: str,
    port: int,
    headers: dict[str, str],
    query: Callable[[str], list[str]],
    stop: asyncio.Event,
    *,
    run: int,
    poll_s: float = 0.5,
    grace_s: float = 15.0,
) -> Freshness:
    """Every second send one marker event; poll SQL until each is visible (up to `grace_s` after `stop`).

    Each poll opens the project's warehouse afresh, as a reader would, and costs the load generator
    tens of milliseconds of CPU: `poll_s` trades the resolution of the measure for that cost.
    """
    loop = asyncio.get_running_loop()
    conn = await Connection.open(host, port)
    out = Freshness()
    waiting: dict[str, float] = {}
    next_marker = time.perf_counter()
    give_up = float("inf")
    sql = f"SELECT event_id FROM events WHERE event_id >= '{MARKER_PREFIX}{run:02d}-'"
    while True:
        now = time.perf_counter()
        if stop.is_set() and give_up == float("inf"):
            give_up = now + grace_s
        if not stop.is_set() and now >= next_marker:
            body = marker_body(run, out.sent)
            head = request_head("POST", "/v1/events", len(body), headers)
            status, _ = await conn.request([head, body])
            if status == 200:
                waiting[f"{MARKER_PREFIX}{run:02d}-{out.sent:06d}"] = time.perf_counter()
            out.sent += 1
            next_marker += 1.0
        if waiting:
            asked = time.perf_counter()
            seen = await loop.run_in_executor(None, query, sql)
            for event_id in seen:
                acked = waiting.pop(event_id, None)
                if acked is not None:
                    out.lags_s.append(max(asked - acked, 0.0))
        if (stop.is_set() and not waiting) or time.perf_counter() > give_up:
            break
        await asyncio.sleep(poll_s)
    out.missing = len(waiting)
    conn.close()
    return out


async def wait_until(check: Callable[[], bool], timeout: float, poll_s: float = 0.1) -> float | None:
    """Seconds until `check()` (run in a thread) is true, or None after `timeout`."""
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await loop.run_in_executor(None, check):
            return time.monotonic() - started
        await asyncio.sleep(poll_s)
    return None
