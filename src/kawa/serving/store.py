"""The prediction store: the newest prediction per model and entity, kept in the online store."""

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


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Prediction)


def namespace(project: str, model: str) -> str:
    return f"predictions/{project}/{model}"


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PredictionStore:
    """Writes and reads predictions; `put_many` batches writes, `get` costs one online-store read."""

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
        raw = self.online.get(namespace(project, model), entity)
        return None if raw is None else _decoder.decode(raw)

    def get_raw(self, project: str, model: str, entity: str) -> bytes | None:
        """The stored JSON as is, for the HTTP API (no decode and re-encode on the hot path)."""
        return self.online.get(namespace(project, model), entity)
