"""The prediction store: the newest prediction per model and entity, kept in the online store.

Batch predictions (`kawa predict`, pipelines) and real-time ones (triggers) live in two namespaces of
the online store, so neither path overwrites the other; a read returns whichever is newer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec

from kawa.stores.online import OnlineStore


class Prediction(msgspec.Struct, omit_defaults=True):
    """What the product reads: a score (or any JSON value), which model version made it, and when."""

    score: Any
    model_version: int
    computed_at: str  # RFC 3339, UTC
    source: str = "batch"  # batch | realtime
    event_id: str | None = None  # realtime: the event that asked for it
    trigger: str | None = None  # realtime: the trigger that made it


class _Stamp(msgspec.Struct):
    """Just the time of a stored prediction, to pick the newer of two without decoding the rest."""

    computed_at: datetime


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Prediction)
_stamp = msgspec.json.Decoder(_Stamp)
encode = _encoder.encode


def namespace(project: str, model: str) -> str:
    """Where batch predictions of `model` are kept."""
    return f"predictions/{project}/{model}"


def realtime_namespace(project: str, model: str) -> str:
    """Where real-time predictions of `model` (written by triggers) are kept."""
    return f"predictions-realtime/{project}/{model}"


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PredictionStore:
    """Writes and reads predictions; `put_many` batches writes, `get` costs two online-store reads."""

    def __init__(self, online: OnlineStore) -> None:
        self.online = online

    def put_many(
        self, project: str, model: str, items: Iterable[tuple[str, Prediction]], chunk: int = 10_000
    ) -> int:
        written = 0
        batch: list[tuple[str, bytes]] = []
        for entity, prediction in items:
            batch.append((entity, _encoder.encode(prediction)))
            if len(batch) >= chunk:
                self.online.put_many(namespace(project, model), batch)
                written += len(batch)
                batch = []
        if batch:
            self.online.put_many(namespace(project, model), batch)
            written += len(batch)
        return written

    def get(self, project: str, model: str, entity: str) -> Prediction | None:
        """The newest prediction of `model` for `entity`, batch or real-time."""
        raw = self.get_raw(project, model, entity)
        return None if raw is None else _decoder.decode(raw)

    def get_raw(self, project: str, model: str, entity: str) -> bytes | None:
        """The newest stored JSON as is, for the HTTP API (no decode and re-encode on the hot path)."""
        batch = self.online.get(namespace(project, model), entity)
        realtime = self.online.get(realtime_namespace(project, model), entity)
        # A tie goes to the real-time prediction: it was made from newer data (the event itself).
        if batch is not None and (realtime is None or _time_of(batch) > _time_of(realtime)):
            # Batch predictions leave out their default source; say it, so every answer names its path.
            return batch if b'"source"' in batch else batch[:-1] + b',"source":"batch"}'
        return realtime


def _time_of(raw: bytes) -> datetime:
    """When a stored prediction was made (the oldest possible time if it does not say)."""
    try:
        stamp = _stamp.decode(raw).computed_at
    except msgspec.DecodeError:
        return datetime.min.replace(tzinfo=UTC)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
