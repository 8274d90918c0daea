"""Delivery of trigger results to webhooks and back into the event log, at least once, off the hot path.

The worker queues each result in an outbox namespace of the online store, in the same atomic write
as the prediction, so a crash can neither lose a queued result nor queue one twice. One `Deliverer`
thread per trigger and channel sends what is queued, in log order, and deletes what was delivered.
A slow or failing receiver only fills the outbox; when it holds `LIMIT` results the worker stops
reading the log until it drains (and catches up from the log afterwards), so ingest never waits.

A replay after a crash may send a result again: webhook receivers deduplicate by the `id` field (also
sent as the `Idempotency-Key` header), and emitted events carry a deterministic event_id, which the
lake deduplicates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import httpx
import msgspec

from kawa.serving.store import now_rfc3339
from kawa.stores.online import OnlineStore
from kawa.triggers.state import (
    DeliveryStats,
    ErrorRecord,
    delivery_ns,
    encode,
    error_key,
    errors_ns,
    outbox_ns,
)

log = logging.getLogger("kawa.triggers")

LIMIT = 10_000  # queued results per trigger and channel before the worker pauses
BATCH = 100  # results taken from the outbox at a time (the collector names up to 100 refused events)
WEBHOOK_CONCURRENCY = 4
TIMEOUT_S = 10.0
MAX_BACKOFF_S = 10.0

Channel = Literal["webhook", "emit"]
# What became of one result: delivered, refused for good (with why), or to be retried (with why).
Outcome = tuple[Literal["ok", "failed", "retry"], str]
Sender = Callable[[Sequence[bytes]], list[Outcome]]  # with an optional close()


class _Id(msgspec.Struct):
    id: str


_id = msgspec.json.Decoder(_Id)


class _Refused(msgspec.Struct):
    index: int
    reason: str


class _Answer(msgspec.Struct):
    errors: list[_Refused] = []


_emit_answer = msgspec.json.Decoder(_Answer)


class Deliverer:
    """Sends one trigger's queued results of one channel; `queued(n)` tells it about new ones."""

    def __init__(
        self,
        online: OnlineStore,
        project: str,
        trigger: str,
        channel: Channel,
        send: Sender,
        tag: str = "",
    ) -> None:
        self.online = online
        self.project = project
        self.trigger = trigger
        self.channel = channel
        self.send = send
        # A partition of several trigger workers sends its own outbox (`tag`: see `state`).
        self.tag = tag
        self.namespace = outbox_ns(project, trigger, channel) + tag
        self._stats_key = f"{trigger}/{channel}{tag}"
        raw = online.get(delivery_ns(project), self._stats_key)
        self.stats = DeliveryStats() if raw is None else msgspec.json.decode(raw, type=DeliveryStats)
        self._lock = threading.Lock()
        self.pending = sum(1 for _ in online.scan(self.namespace))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kawa-{channel}-{trigger}", daemon=True)

    @property
    def full(self) -> bool:
        return self.pending >= LIMIT

    def start(self) -> None:
        self._thread.start()

    def queued(self, count: int) -> None:
        """`count` more results are in the outbox (committed): send them soon."""
        with self._lock:
            self.pending += count
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending (what is queued stays queued for the next start) and release the connections."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        close = getattr(self.send, "close", None)
        if close is not None:
            close()

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            items = list(self.online.scan(self.namespace, limit=BATCH))
            if not items:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            try:
                outcomes = self.send([value for _, value in items])
            except Exception as exc:  # a bug in a sender must not end delivery for good
                log.exception("delivering %s results of trigger %s failed", self.channel, self.trigger)
                outcomes = [("retry", f"{type(exc).__name__}: {exc}")] * len(items)
            retry = self._settle(items, outcomes)
            if retry:
                backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF_S)
                self._stop.wait(backoff)
            else:
                backoff = 0.0

    def _settle(self, items: list[tuple[str, bytes]], outcomes: list[Outcome]) -> bool:
        """Delete what is done, record errors and counts in one write; True if some are to be retried."""
        done: list[str] = []
        errors: dict[str, bytes] = {}
        retry = False
        stage = "w" if self.channel == "webhook" else "m"
        last_retry = ""
        for (key, _), (what, why) in zip(items, outcomes, strict=True):
            if what == "retry":
                retry, last_retry = True, why
                continue  # stays queued; one error record per attempt (below) is enough
            done.append(key)
            if what == "ok":
                self.stats.delivered += 1
            else:
                self.stats.failed += 1
                self._error(errors, stage, why)
        if retry:
            self._error(errors, stage, last_retry)
        puts = {delivery_ns(self.project): {self._stats_key: encode(self.stats)}}
        if errors:
            puts[errors_ns(self.project, self.trigger)] = errors
        self.online.write(puts, {self.namespace: done})
        with self._lock:
            self.pending -= len(done)
        if retry:
            log.warning("trigger %s: %s delivery will be retried: %s", self.trigger, self.channel, last_retry)
        return retry

    def _error(self, errors: dict[str, bytes], stage: str, why: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = why
        record = ErrorRecord(seq=self.stats.errors, at=now_rfc3339(), stage=self.channel, error=why)
        errors[error_key(stage + self.tag, self.stats.errors)] = encode(record)


class WebhookSender:
    """POSTs each result to `url` as JSON with an Idempotency-Key header, a few at a time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = httpx.Client(timeout=TIMEOUT_S)
        self._pool = ThreadPoolExecutor(WEBHOOK_CONCURRENCY, thread_name_prefix="kawa-webhook")

    def __call__(self, bodies: Sequence[bytes]) -> list[Outcome]:
        return list(self._pool.map(self._post, bodies))

    def _post(self, body: bytes) -> Outcome:
        headers = {"Content-Type": "application/json", "Idempotency-Key": _id.decode(body).id}
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return "retry", f"POST {self.url}: {type(exc).__name__}: {exc}"
        code = response.status_code
        if code < 300:
            return "ok", ""
        why = f"POST {self.url} answered {code}: {response.text[:200]}"
        return ("retry" if code >= 500 or code in (408, 425, 429) else "failed"), why

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()


class EmitSender:
    """POSTs results as events to the server's own `/v1/events` (NDJSON), so they go through the collector."""

    def __init__(self, api_url: str, write_key: str | None, project: str) -> None:
        self.url = api_url.rstrip("/") + "/v1/events"
        self.write_key = write_key
        self.project = project
        self._client = httpx.Client(timeout=TIMEOUT_S)

    def __call__(self, bodies: Sequence[bytes]) -> list[Outcome]:
        if self.write_key is None:
            why = (
                f"kawa.yaml has no write key for project {self.project!r}; "
                f"emit needs one (projects.{self.project})"
            )
            return [("retry", why)] * len(bodies)
        headers = {"Authorization": f"Bearer {self.write_key}", "Content-Type": "application/x-ndjson"}
        try:
            response = self._client.post(self.url, content=b"\n".join(bodies), headers=headers)
        except httpx.HTTPError as exc:
            return [("retry", f"POST {self.url}: {type(exc).__name__}: {exc}")] * len(bodies)
        if response.status_code not in (200, 400):
            why = f"POST {self.url} answered {response.status_code}: {response.text[:200]}"
            return [("retry", why)] * len(bodies)
        outcomes: list[Outcome] = [("ok", "")] * len(bodies)
        for error in _emit_answer.decode(response.content).errors:
            outcomes[error.index] = ("failed", f"the collector refused it: {error.reason}")
        return outcomes

    def close(self) -> None:
        self._client.close()
