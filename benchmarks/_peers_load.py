"""Open-loop load at a fixed request rate over keep-alive HTTP/1.1, for latency percentiles.

Requests are due at fixed times (start + i / rate) whether or not earlier ones have been answered,
so a stall of the server shows up in the percentiles instead of slowing the client down (no
coordinated omission). A latency runs from the moment the client woke up to send the request (its due
time plus the event loop's timer slack, up to a millisecond, which is the client's and not the
server's) to its answer; a request that waits for a free connection of the pool, because the server
has not answered the earlier ones, counts that wait. `late_sends` counts wake-ups more than 1 ms late.
The connections are benchmarks/_client.py's (one `transport.write` per request, a two-`find` parser).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks._client import Connection, ServerClosed


@dataclass
class Paced:
    """What one paced phase saw from the client's side."""

    rate: float
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    client_cpu_s: float = 0.0
    late_sends: int = 0  # requests the client itself sent more than 1 ms after their due time
    bodies: list[bytes] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        n = len(self.latencies_ms)
        return {
            "requests": n,
            "achieved_rps": round(n / self.seconds, 1) if self.seconds else 0.0,
            "non_2xx": sum(v for k, v in self.statuses.items() if not 200 <= k < 300),
            "dropped_connections": self.failures,
            "late_sends": self.late_sends,
            "p50_ms": round(self.percentile(50), 3),
            "p90_ms": round(self.percentile(90), 3),
            "p99_ms": round(self.percentile(99), 3),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 3),
            "client_cpu_us_per_request": round(self.client_cpu_s / max(n, 1) * 1e6, 1),
        }


async def paced(
    host: str,
    port: int,
    request: Callable[[int], list[bytes]],
    *,
    rate: float,
    seconds: float,
    connections: int = 8,
    keep_bodies: int = 3,
) -> Paced:
    """Send `request(i)` at `rate` per second for `seconds` from a pool of keep-alive connections."""
    out = Paced(rate=rate)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(host, port))
    clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, woke: float) -> None:
        conn = await pool.get()
        try:
            status, body = await conn.request(request(i))
        except ServerClosed:
            out.failures += 1
            pool.put_nowait(await Connection.open(host, port))
            return
        out.latencies_ms.append((clock() - woke) * 1000)
        out.statuses[status] += 1
        if len(out.bodies) < keep_bodies:
            out.bodies.append(body)
        pool.put_nowait(conn)

    cpu = time.process_time()
    started = clock()
    total = int(rate * seconds)
    for i in range(total):
        due = started + i / rate
        wait = due - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        woke = clock()
        if woke - due > 1e-3:
            out.late_sends += 1
        task = asyncio.create_task(one(i, woke))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    out.seconds = clock() - started
    out.client_cpu_s = time.process_time() - cpu
    while not pool.empty():
        pool.get_nowait().close()
    return out
