"""Events through the real collector and lake writer, and the same events read back from the log.

The online side sees each event exactly as the trigger worker will: decoded from a log line, with the
log's time and the event_id the lake gives it; the offline side reads the lake those lines became.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import numpy as np

from kawa.config import IngestConfig, LakeConfig
from kawa.events.collector import Collector
from kawa.events.schema import KIND_EVENTS, LogBatch
from kawa.lake.writer import LakeWriter
from kawa.stores.eventlog.files import FileEventLog
from kawa.warehouse import Warehouse

PROJECT = "t"
_batch = msgspec.msgpack.Decoder(LogBatch)
_encoder = msgspec.json.Encoder()


class Logged(NamedTuple):
    """One accepted event as the log holds it."""

    event: dict[str, Any]
    t_us: int
    event_id: str


def ingest(root: Path, events: Iterable[dict[str, Any]], *, per_request: int = 1000) -> Warehouse:
    """Send `events` through a collector into an event log under `root` and flush it into the lake."""
    log = FileEventLog(root / "eventlog", writer=True)
    try:
        collector = Collector(log, IngestConfig())
        chunk: list[dict[str, Any]] = []
        for event in [*events, None]:
            if event is not None:
                chunk.append(event)
            if chunk and (event is None or len(chunk) == per_request):
                result = collector.ingest(_encoder.encode_lines(chunk), project=PROJECT, ndjson=True)
                assert result.rejected == 0, result.errors
                chunk = []
        writer = LakeWriter(log, root / "lake", LakeConfig())
        writer.flush()
        writer.close()
    finally:
        log.close()
    return Warehouse(root / "lake", PROJECT)


def logged(root: Path) -> list[Logged]:
    """Every accepted event in the log under `root`, in log order."""
    log = FileEventLog(root / "eventlog")
    out: list[Logged] = []
    try:
        offset = 0
        while True:
            result = log.read(offset)
            if not result.records:
                return out
            for record in result.records:
                batch = _batch.decode(record.payload)
                if batch.kind != KIND_EVENTS:
                    continue
                times = np.frombuffer(batch.times, dtype="<i8").tolist()
                for i, line in enumerate(batch.body.split(b"\n")):
                    event = msgspec.json.decode(line)
                    given = event.get("event_id")
                    event_id = batch.id_prefix + str(i) if given is None else str(given)
                    out.append(Logged(event, times[i], event_id))
            offset = result.next_offset
    finally:
        log.close()


def in_time_order(rows: Sequence[Logged]) -> list[Logged]:
    """The order the offline side breaks ties in: time, then event_id."""
    return sorted(rows, key=lambda r: (r.t_us, r.event_id))
