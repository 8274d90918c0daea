"""The collector: checks a request body, makes its events durable in the event log, says what it kept."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from kawa.config import IngestConfig
from kawa.events import metrics
from kawa.events.schema import KIND_EVENTS, KIND_REJECTED, LogBatch, RejectedEvent
from kawa.events.validate import Batch, BodyError, decode_batch
from kawa.observe import tracing
from kawa.stores.eventlog import EventLog

_log_encoder = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()


class PayloadTooLarge(BodyError):
    """The body (or its gzip expansion) is over the configured limit. Maps to a 413."""


class Overloaded(RuntimeError):
    """Too many requests are waiting on the event log. Maps to a 503 with Retry-After."""


@dataclass
class IngestResult:
    accepted: int
    rejected: int
    errors: list[dict[str, object]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"accepted": self.accepted, "rejected": self.rejected, "errors": self.errors}


def now_us() -> int:
    return time.time_ns() // 1000


_MAX_MEMBERS = 64


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding; gzip bombs stop at `limit` bytes of output."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding")
    parts: list[bytes] = []
    size = 0
    rest = body
    # gzip allows several members one after another (zero padding may follow); a few are plenty.
    for _ in range(_MAX_MEMBERS):
        inflater = zlib.decompressobj(wbits=47 if encoding != "deflate" else 15)
        try:
            parts.append(inflater.decompress(rest, limit + 1 - size))
        except zlib.error as exc:
            raise BodyError(f"the body is not valid {encoding}: {exc}") from None
        size += len(parts[-1])
        if size > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"the decompressed body is over {limit} bytes; send smaller batches")
        if not inflater.eof:
            raise BodyError(f"the body is not valid {encoding}: it ends before the compressed data does")
        rest = inflater.unused_data
        if not rest or rest[0] == 0:
            return b"".join(parts)
    raise BodyError(f"the body has more than {_MAX_MEMBERS} {encoding} members; compress it as one")


class Collector:
    """Turns request bodies into durable log records; one instance serves the whole process."""

    def __init__(self, log: EventLog, config: IngestConfig) -> None:
        self.log = log
        self.config = config
        self._pending = 0
        self._lock = threading.Lock()
        self._writer = _GroupWriter(log)

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place among the requests in flight; refuse with Overloaded when there are too many."""
        with self._lock:
            if self._pending >= self.config.max_pending_requests:
                metrics.INGEST_OVERLOADED.inc()
                raise Overloaded("too many requests are waiting for the event log; retry after a second")
            self._pending += 1
        try:
            yield
        finally:
            with self._lock:
                self._pending -= 1

    def validate(
        self,
        body: bytes,
        *,
        project: str,
        ndjson: bool,
        key_project: Callable[[str], str | None] | None = None,
    ) -> tuple[Batch, int]:
        """Decode and check `body` (no I/O): the batch to append, and when it was received."""
        received_at = now_us()
        batch = decode_batch(
            body,
            ndjson=ndjson,
            project=project,
            received_at=received_at,
            max_depth=self.config.max_depth,
            max_event_bytes=self.config.max_event_bytes,
            key_project=key_project,
        )
        total = len(batch.lines) + len(batch.rejected)
        if total > self.config.max_events_per_request:
            raise PayloadTooLarge(
                f"{total} events in one request; the limit is {self.config.max_events_per_request}"
            )
        return batch, received_at

    def ingest(
        self,
        body: bytes,
        *,
        project: str,
        ndjson: bool,
        key_project: Callable[[str], str | None] | None = None,
    ) -> IngestResult:
        """Validate `body` and append it to the log; returns only once the events are durable."""
        batch, received_at = self.validate(body, project=project, ndjson=ndjson, key_project=key_project)
        return self.append(batch, project=project, received_at=received_at)

    def ingest_envelopes(
        self, envelopes: list[dict[str, Any]], rejects: list[tuple[int, str, Any]], *, project: str
    ) -> IngestResult:
        """Validate events already shaped as envelopes (from Segment calls), keeping earlier rejects too."""
        received_at = now_us()
        batch = Batch()
        if envelopes:
            batch = decode_batch(
                _json.encode_lines(envelopes),
                ndjson=True,
                project=project,
                received_at=received_at,
                max_depth=self.config.max_depth,
                max_event_bytes=self.config.max_event_bytes,
            )
        for index, reason, raw in rejects:
            text = _json.encode(raw).decode("utf-8", "replace") if raw is not None else ""
            batch.rejected.append(
                RejectedEvent(project, received_at, f"message {index}: {reason}", index, None, text[:65_536])
            )
        return self.append(batch, project=project, received_at=received_at)

    def append(self, batch: Batch, *, project: str, received_at: int) -> IngestResult:
        """Write a validated batch (accepted and rejected events) to the log durably."""
        records = _records(batch, project=project, received_at=received_at)
        if records:
            self.log.append(records)
        return _result(batch, project=project, received_at=received_at)

    async def append_async(self, batch: Batch, *, project: str, received_at: int) -> IngestResult:
        """`append` for the event loop: returns once durable, without a thread of its own per request."""
        records = _records(batch, project=project, received_at=received_at)
        if records:
            await self._writer.append(records)
        return _result(batch, project=project, received_at=received_at)


class _GroupWriter:
    """One thread that appends what every waiting request queued in a single log append (one fsync).

    A request hands its records over and awaits a future; the thread takes everything queued, appends
    it, and settles the futures. So the event loop does no thread hand-off per request, and however
    many requests arrive together, they share one write and one fsync.
    """

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._cond = threading.Condition()
        self._queue: list[tuple[list[bytes], asyncio.Future[None]]] = []
        self._thread: threading.Thread | None = None

    async def append(self, records: list[bytes]) -> None:
        future = asyncio.get_running_loop().create_future()
        with self._cond:
            self._queue.append((records, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kawa-log-writer", daemon=True)
                self._thread.start()
            self._cond.notify()
        await future

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                group, self._queue = self._queue, []
            error: BaseException | None = None
            try:
                self.log.append([record for records, _ in group for record in records])
            except BaseException as exc:  # every waiting request fails with it, as its own append would
                error = exc
            for _, future in group:
                future.get_loop().call_soon_threadsafe(_settle, future, error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client gone); its events are durable all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _records(batch: Batch, *, project: str, received_at: int) -> list[bytes]:
    """The event log records of a validated batch: its accepted events, then its refused ones."""
    records = []
    if batch.lines:
        records.append(
            _log_encoder.encode(
                LogBatch(
                    kind=KIND_EVENTS,
                    project=project,
                    received_at=received_at,
                    id_prefix=f"{received_at:x}{os.urandom(3).hex()}-",
                    times=np.asarray(batch.times, dtype="<i8").tobytes(),
                    body=b"\n".join(batch.lines),
                )
            )
        )
    if batch.rejected:
        records.append(rejected_record(batch.rejected, project=project, received_at=received_at))
    return records


def _result(batch: Batch, *, project: str, received_at: int) -> IngestResult:
    """What the client is told about a batch now durable, counted in the metrics."""
    if batch.lines:
        metrics.EVENTS_ACCEPTED.labels(project).inc(len(batch.lines))
    if batch.rejected:
        metrics.count_rejected(project, [r.reason for r in batch.rejected])
    metrics.INGEST_SECONDS.observe(max(now_us() - received_at, 0) / 1e6)
    tracing.note_ingest(project, len(batch.lines), len(batch.rejected), batch.lines)
    errors: list[dict[str, object]] = [
        {"index": r.index, "event_id": r.event_id, "reason": r.reason} for r in batch.rejected[:100]
    ]
    return IngestResult(accepted=len(batch.lines), rejected=len(batch.rejected), errors=errors)


def rejected_record(rejected: list[RejectedEvent], *, project: str, received_at: int) -> bytes:
    """An event log record holding refused events, for the `rejected_events` table."""
    return _log_encoder.encode(
        LogBatch(
            kind=KIND_REJECTED,
            project=project,
            received_at=received_at,
            id_prefix="",
            times=b"",
            body=_json.encode_lines(rejected).rstrip(b"\n"),
        )
    )
