"""The soak's mixed load: ingest (batches, single events, bad events), triggering events, pipeline runs and
reads, each a paced asyncio task on keep-alive connections, counting what it sent and what came back."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from benchmarks._client import Connection, ServerClosed, request_head
from benchmarks._events import CLOCK, TAG, stamp_clock

HOST = "127.0.0.1"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any])


@dataclass
class Tally:
    """What the load sent and what the server answered, by kind."""

    acked_ids: set[str] = field(default_factory=set)  # every event id a 2xx answer accepted
    unsure_ids: set[str] = field(default_factory=set)  # sent, but the connection dropped before the answer
    sent_events: int = 0
    accepted: int = 0
    rejected: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # "kind status" -> count
    errors: Counter[str] = field(default_factory=Counter)  # "kind: what" -> count
    run_ids: list[str] = field(default_factory=list)
    trigger_sent: int = 0
    sessions: list[str] = field(default_factory=list)

    def error(self, kind: str, what: str) -> None:
        self.errors[f"{kind}: {what}"] += 1


class Client:
    """A few keep-alive connections to the server, reopened when it closes one."""

    def __init__(self, port: int, tally: Tally) -> None:
        self.port = port
        self.tally = tally
        self.conns: asyncio.Queue[Connection] = asyncio.Queue()

    async def open(self, n: int) -> None:
        for _ in range(n):
            self.conns.put_nowait(await Connection.open(HOST, self.port))

    async def call(
        self, kind: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes] | None:
        """One request; the status is tallied under `kind`; None when the connection dropped."""
        conn = await self.conns.get()
        if conn.transport is None:  # the server closed it after its last answer (e.g. a 500)
            conn = await Connection.open(HOST, self.port)
        try:
            status, answer = await conn.request([request_head(method, path, len(body), headers), body])
        except (ServerClosed, OSError) as exc:
            self.tally.error(kind, f"connection lost ({type(exc).__name__})")
            conn.close()
            self.conns.put_nowait(await Connection.open(HOST, self.port))
            return None
        self.conns.put_nowait(conn)
        self.tally.statuses[f"{kind} {status}"] += 1
        return status, answer

    def close(self) -> None:
        while not self.conns.empty():
            self.conns.get_nowait().close()


async def every(interval: float, stop: asyncio.Event, action: Callable[[int], Awaitable[None]]) -> None:
    """Call `action(i)` at fixed times `interval` apart (open loop) until `stop` is set."""
    started = time.perf_counter()
    i = 0
    while not stop.is_set():
        wait = started + i * interval - time.perf_counter()
        if wait > 0:
            try:
                await asyncio.wait_for(stop.wait(), wait)
                return
            except TimeoutError:
                pass
        await action(i)
        i += 1


def template_ids(bodies: list[bytes]) -> list[list[bytes]]:
    """The event ids of each template body, with `TAG` still in them."""
    return [[json.loads(line)["event_id"].encode() for line in body.split(b"\n")] for body in bodies]


class Load:
    """The soak's tasks over one server; `run(seconds)` drives them all and returns the tally."""

    def __init__(self, port: int, keys: dict[str, str], bodies: list[bytes], args: Any) -> None:
        self.port, self.args, self.bodies = port, args, bodies
        self.ids = template_ids(bodies)
        self.tally = Tally()
        self.client = Client(port, self.tally)
        self.rng = random.Random(5)
        self.write = {"Authorization": f"Bearer {keys['write_key']}", "Content-Type": "application/x-ndjson"}
        self.read = {"Authorization": f"Bearer {keys['read_key']}"}
        self.admin = {"Authorization": f"Bearer {keys['admin_key']}", "Content-Type": "application/json"}
        self.ui = {"Cookie": f"kawa_key={keys['admin_key']}"}  # the UI's login cookie
        self.users = [f"user_{int(self.rng.paretovariate(1.2) * 1000) % 500_000}" for _ in range(200)]

    async def _events(self, kind: str, body: bytes, ids: list[str], headers: dict[str, str]) -> None:
        t = self.tally
        t.sent_events += len(ids)
        got = await self.client.call(kind, "POST", "/v1/events", headers, body)
        if got is None:
            t.unsure_ids.update(ids)
            return
        status, answer = got
        if status >= 500 or status not in (200, 202, 400):
            t.error(kind, f"HTTP {status}: {answer[:200]!r}")
            t.unsure_ids.update(ids)
            return
        doc = _decode.decode(answer)
        accepted, rejected = int(doc.get("accepted", 0)), int(doc.get("rejected", 0))
        t.accepted += accepted
        t.rejected += rejected
        if accepted == len(ids):
            t.acked_ids.update(ids)
        elif kind == "bad" and accepted == len(ids) - 1:
            t.acked_ids.update(ids[:-1])  # the last event of a bad batch is the bad one
        elif accepted:
            t.error(kind, f"accepted {accepted} of {len(ids)}: {answer[:200]!r}")
            t.unsure_ids.update(ids)

    async def batch(self, i: int) -> None:
        n = i % len(self.bodies)
        tag = b"s%09d" % i
        body = self.bodies[n].replace(TAG, tag).replace(CLOCK, stamp_clock())
        ids = [x.replace(TAG, tag).decode() for x in self.ids[n]]
        await self._events("batch", body, ids, self.write)

    def _event(self, event_id: str, name: str, user: str, session: str) -> dict[str, Any]:
        return {
            "event_name": name,
            "event_id": event_id,
            "sync_date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "keys": {"user_id": user, "session_id": session},
            "page": "https://shop.example.com/checkout"
            if name == "checkout_view"
            else "https://shop.example.com/",
            "category": self.rng.choice(("shoes", "bags", "shirts", "hats", "toys", "books")),
            "price": round(self.rng.uniform(5, 300), 2),
        }

    async def single(self, i: int) -> None:
        user = self.rng.choice(self.users)
        event = self._event(f"soak-one-{i}", "view", user, f"s-{user}")
        await self._events("single", _encode(event), [event["event_id"]], self.write)

    async def trigger(self, i: int) -> None:
        session = f"soak-s-{i}"
        event = self._event(f"soak-trig-{i}", "checkout_view", self.rng.choice(self.users), session)
        before = len(self.tally.acked_ids)
        await self._events("trigger", _encode(event), [event["event_id"]], self.write)
        if len(self.tally.acked_ids) > before:
            self.tally.trigger_sent += 1
            self.tally.sessions.append(session)

    async def bad(self, i: int) -> None:
        """Four good events and one bad one (no event_name), then now and then a body that is no JSON."""
        user = self.rng.choice(self.users)
        events = [self._event(f"soak-bad-{i}-{k}", "view", user, f"s-{user}") for k in range(4)]
        broken = self._event(f"soak-bad-{i}-4", "view", user, f"s-{user}")
        del broken["event_name"]
        ids = [e["event_id"] for e in (*events, broken)]
        await self._events("bad", b"\n".join(_encode(e) for e in (*events, broken)), ids, self.write)
        if i % 6 == 0:
            got = await self.client.call("malformed", "POST", "/v1/events", self.write, b'{"event_name": ')
            if got is not None and got[0] != 400:
                self.tally.error("malformed", f"HTTP {got[0]} instead of 400")

    async def pipeline(self, i: int) -> None:
        got = await self.client.call("pipeline", "POST", "/v1/pipelines/loyalty/runs", self.admin, b"{}")
        if got is None:
            return
        status, answer = got
        if status == 202:
            self.tally.run_ids.append(str(_decode.decode(answer)["run_id"]))
        elif status != 409:  # 409: the previous run still runs (max_active_runs); not an error
            self.tally.error("pipeline", f"HTTP {status}: {answer[:200]!r}")

    async def reads(self, i: int) -> None:
        """One read of a rotating kind; a 404 is fine where no prediction exists yet."""
        t = self.tally
        sql = _encode({"sql": "SELECT event_name, count(*) AS n FROM events GROUP BY 1 ORDER BY n DESC"})
        reads: list[tuple[str, str, str, dict[str, str], bytes, tuple[int, ...]]] = [
            ("read:intent", "GET", f"/v1/predictions/intent/{t.sessions[-1] if t.sessions else 'none'}",
             self.read, b"", (200, 404)),
            ("read:loyalty", "GET", f"/v1/predictions/loyalty/u_{i % 200:06d}", self.read, b"", (200, 404)),
            ("read:sql", "POST", "/v1/sql", self.admin, sql, (200,)),
            ("read:runs", "GET", "/v1/runs?limit=20", self.read, b"", (200,)),
            ("read:metrics", "GET", "/metrics", {}, b"", (200,)),
            ("read:ui", "GET", "/", self.ui, b"", (200,)),
            ("read:triggers", "GET", "/v1/triggers", self.read, b"", (200,)),
            ("read:entity", "GET", f"/v1/entities/{self.rng.choice(self.users)}", self.read, b"", (200, 404)),
        ]  # fmt: skip
        kind, method, path, headers, body, fine = reads[i % len(reads)]
        got = await self.client.call(kind, method, path, headers, body)
        if got is not None and got[0] not in fine:
            t.error(kind, f"HTTP {got[0]}: {got[1][:200]!r}")

    async def run(self, seconds: float, extra: list[Callable[[asyncio.Event], Awaitable[None]]]) -> Tally:
        """Drive every task for `seconds`, with `extra` tasks (the sampler) beside them."""
        a = self.args
        await self.client.open(6)
        stop = asyncio.Event()
        tasks = [
            every(a.batch / a.rate, stop, self.batch),
            every(1 / a.singles, stop, self.single),
            every(1 / a.triggers, stop, self.trigger),
            every(a.bad_every, stop, self.bad),
            every(a.pipeline_every, stop, self.pipeline),
            every(1 / a.reads, stop, self.reads),
            *(task(stop) for task in extra),
        ]

        async def timer() -> None:
            await asyncio.sleep(seconds)
            stop.set()

        await asyncio.gather(timer(), *tasks)
        return self.tally
