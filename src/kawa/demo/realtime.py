"""`kawa demo --realtime`: visits of a fresh slice of the shop replayed live, and each prediction as it lands.

Sessions are taken from a newly generated shop (another seed than the demo's history, so the model has
not seen them), half that ended in a purchase and half that did not, and their events are sent one by
one through the HTTP collector at their own pace, sped up `speed` times and interleaved as real visits
overlap. Every `view` asks the purchase-intent trigger for a prediction; the replay reads it back through
`GET /v1/predictions/{model}/{session}` as soon as the event is acknowledged and reports how long it took.
"""

from __future__ import annotations

import heapq
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import zip_longest
from typing import Any

import httpx

from kawa.demo.shop import Shop, ShopConfig, generate


@dataclass
class Landed:
    """One real-time prediction as the product would read it."""

    session_id: str
    page_type: str
    score: float | None  # None when no prediction named this event in time
    version: int | None
    latency_ms: float  # acknowledgement -> readable through the API
    purchased: bool  # how the visit really ended (the shop's ground truth)
    step: int  # the view's number within its visit


@dataclass
class ReplayReport:
    """What the replay sent and read back."""

    sessions: int = 0
    events: int = 0
    landed: list[Landed] = field(default_factory=list)
    missing: int = 0
    seconds: float = 0.0

    def final_scores(self) -> dict[str, tuple[float, bool]]:
        """Each session's last score, and whether it bought."""
        out: dict[str, tuple[float, bool]] = {}
        for hit in self.landed:
            if hit.score is not None:
                out[hit.session_id] = (hit.score, hit.purchased)
        return out

    def latency(self, q: float) -> float:
        values = sorted(h.latency_ms for h in self.landed if h.score is not None)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q / 100 * len(values)))]

    def mean_score(self, purchased: bool) -> float:
        scores = [s for s, p in self.final_scores().values() if p is purchased]
        return statistics.fmean(scores) if scores else float("nan")


def pick_sessions(shop: Shop, count: int, min_views: int = 3) -> list[str]:
    """`count` human visits with at least `min_views` views, half of them ending in a purchase."""
    views: dict[str, int] = {}
    for event in shop.events:
        if event["event_name"] == "view":
            sid = event["keys"]["session_id"]
            views[sid] = views.get(sid, 0) + 1
    human = [
        s for s in shop.sessions if s.intent in ("buy", "browse") and views.get(s.session_id, 0) >= min_views
    ]
    bought = [s.session_id for s in human if s.purchased]
    not_bought = [s.session_id for s in human if not s.purchased]
    buyers = bought[: count // 2]
    others = not_bought[: count - len(buyers)]
    # Alternate the two kinds, so the replay shows both from the start.
    chosen = [s for pair in zip_longest(buyers, others) for s in pair if s is not None]
    return chosen[:count]


def schedule(
    shop: Shop, sessions: list[str], speed: float, gap_s: float
) -> Iterator[tuple[float, dict[str, Any]]]:
    """(seconds after the start, event) for the chosen visits, each starting `gap_s` after the one before."""
    chosen = set(sessions)
    by_session: dict[str, list[dict[str, Any]]] = {s: [] for s in sessions}
    for event in shop.events:
        sid = event["keys"].get("session_id")
        if sid in chosen:
            by_session[sid].append(event)
    heap: list[tuple[float, int, dict[str, Any]]] = []
    n = 0
    for k, sid in enumerate(sessions):
        events = by_session[sid]
        if not events:
            continue
        t0 = _seconds(events[0]["sync_date"])
        for event in events:
            heapq.heappush(heap, (k * gap_s + (_seconds(event["sync_date"]) - t0) / speed, n, event))
            n += 1
    while heap:
        at, _, event = heapq.heappop(heap)
        yield at, event


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def replay(
    url: str,
    write_key: str,
    read_key: str,
    *,
    model: str = "purchase_intent",
    sessions: int = 12,
    speed: float = 20.0,
    gap_s: float = 1.5,
    seed: int = 1234,
    on_landed: Callable[[Landed], None] | None = None,
    wait_s: float = 2.0,
) -> ReplayReport:
    """Replay visits of a fresh shop live through the collector and read each view's prediction back."""
    shop = generate(ShopConfig(users=300, days=7, visitors=150, seed=seed))
    chosen = pick_sessions(shop, sessions)
    truth = {s.session_id: s.purchased for s in shop.sessions}
    run = f"{int(time.time()) % 100_000:05d}"  # new ids on every replay, so none is taken for a duplicate
    report = ReplayReport(sessions=len(chosen))
    steps: dict[str, int] = {}
    started = time.perf_counter()
    with (
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {write_key}"}, timeout=10) as send,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {read_key}"}, timeout=10) as read,
    ):
        for at, original in schedule(shop, chosen, speed, gap_s):
            wait = started + at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            event = {k: v for k, v in original.items() if k not in ("sync_date", "timestamp")}
            sid = f"{original['keys']['session_id']}-{run}"
            event["keys"] = {**original["keys"], "session_id": sid}
            event["event_id"] = f"rt{run}-{original['event_id']}"
            answer = send.post("/v1/events", json=event)
            answer.raise_for_status()
            acked = time.perf_counter()
            report.events += 1
            if event["event_name"] != "view":
                continue
            steps[sid] = steps.get(sid, 0) + 1
            landed = _read_back(read, model, sid, event["event_id"], acked, wait_s)
            hit = Landed(
                session_id=sid,
                page_type=str(original.get("page_type", "")),
                score=None if landed is None else float(landed["score"]),
                version=None if landed is None else int(landed["model_version"]),
                latency_ms=(time.perf_counter() - acked) * 1000 if landed is None else landed["_ms"],
                purchased=truth.get(original["keys"]["session_id"], False),
                step=steps[sid],
            )
            if hit.score is None:
                report.missing += 1
            report.landed.append(hit)
            if on_landed is not None:
                on_landed(hit)
    report.seconds = time.perf_counter() - started
    return report


def _read_back(
    client: httpx.Client, model: str, session: str, event_id: str, acked: float, wait_s: float
) -> dict[str, Any] | None:
    """Poll the prediction of `session` until it names `event_id`; its JSON plus `_ms` after the ack."""
    deadline = acked + wait_s
    while time.perf_counter() < deadline:
        got = client.get(f"/v1/predictions/{model}/{session}")
        if got.status_code == 200:
            body = got.json()
            if body.get("event_id") == event_id:
                body["_ms"] = (time.perf_counter() - acked) * 1000
                return dict(body)
        time.sleep(0.0005)
    return None
