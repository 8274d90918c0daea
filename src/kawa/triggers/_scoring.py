"""Scoring for the trigger worker: the model's input row of a matched event, and predictions per model.

A row is the event's scalar fields (and its keys, as `user_id`, `session_id`, ...), then the entity's
batch features, then the streaming features as of the event; a later name replaces an earlier one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kawa.features.materialize import AS_OF
from kawa.features.materialize import namespace as features_ns
from kawa.models import Bundle, Registry
from kawa.observe.metrics import timed_predict
from kawa.stores.online import OnlineStore
from kawa.triggers.spec import Trigger

# From this many rows on, one `predict` call beats a `predict_one` per row (measured on scikit-learn).
BATCH_FROM = 3
# How long a resolved alias is used before the registry is asked again: promotions take effect
# within this (plus the registry's own change check), without a database query per batch.
RESOLVE_EVERY_S = 0.05
_SCALARS = (str, int, float, bool)
_features = msgspec.json.Decoder(dict[str, Any])


@dataclass(slots=True)
class Hit:
    """One event that matched one trigger, and what became of it."""

    trigger: Trigger
    event: dict[str, Any]
    event_id: str
    t_us: int
    received_at: int
    offset: int
    line: int
    entity: str | None
    stream: dict[str, Any] = field(default_factory=dict)
    score: Any = None
    version: int | None = None
    stage: str | None = None  # where it failed, if it did
    error: str | None = None

    def fail(self, stage: str, error: str) -> None:
        self.stage, self.error = stage, error


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    """The event's top-level scalar fields, and its keys under their own names (`user_id`, ...).

    >>> event_row({"event_name": "view", "price": 3.5, "keys": {"user_id": 7}, "tags": ["a"]})
    {'event_name': 'view', 'price': 3.5, 'user_id': 7}
    """
    row = {k: v for k, v in event.items() if isinstance(v, _SCALARS)}
    keys = event.get("keys")
    if type(keys) is dict:
        for k, v in keys.items():
            if k != "api_key" and k not in row and isinstance(v, _SCALARS):
                row[k] = v
    return row


class Scorer:
    """Builds rows and scores hits with the registry's bundles; every failure lands on its hit."""

    def __init__(self, registry: Registry, online: OnlineStore, project: str) -> None:
        self.registry = registry
        self.online = online
        self.project = project
        self._models: dict[tuple[str, str], tuple[float, int, Bundle]] = {}

    def model(self, model: str, alias: str) -> tuple[int, Bundle]:
        """The version `alias` points at and its bundle, loaded before it is used for the first time."""
        now = time.monotonic()
        found = self._models.get((model, alias))
        if found is not None and now - found[0] < RESOLVE_EVERY_S:
            return found[1], found[2]
        version = self.registry.resolve(self.project, model, alias)
        bundle = found[2] if found is not None and found[1] == version else None
        if bundle is None:
            # Loaded before any event is scored with it: a promotion switches once the new version
            # is in memory, so no event waits on a half-loaded model or fails for it.
            bundle = self.registry.load(self.project, model, version)
        self._models[model, alias] = (now, version, bundle)
        return version, bundle

    def score(self, hits: Sequence[Hit]) -> None:
        """Fill in each hit's score and version, or its error: per model, one version for the batch."""
        groups: dict[tuple[str, str], list[Hit]] = {}
        for hit in hits:
            if hit.error is None:
                groups.setdefault((hit.trigger.model, hit.trigger.alias), []).append(hit)
        for (model, alias), group in groups.items():
            try:
                version, bundle = self.model(model, alias)
            except Exception as exc:
                for hit in group:
                    hit.fail("model", _describe(exc))
                continue
            rows: list[dict[str, Any]] = []
            ready: list[Hit] = []
            for hit in group:
                row = self._row(hit)
                if row is not None:
                    rows.append(row)
                    ready.append(hit)
            if len(rows) >= BATCH_FROM:
                try:
                    with timed_predict(self.project, model, version, "trigger", len(rows)):
                        scores = bundle.predict(rows)
                except Exception:
                    pass  # one bad row fails the call: find it row by row below
                else:
                    for hit, score in zip(ready, scores, strict=True):
                        hit.score, hit.version = score, version
                    continue
            for hit, row in zip(ready, rows, strict=True):
                try:
                    with timed_predict(self.project, model, version, "trigger"):
                        hit.score, hit.version = bundle.predict_one(row), version
                except Exception as exc:
                    hit.fail("model", _describe(exc))
                    hit.version = version

    def _row(self, hit: Hit) -> dict[str, Any] | None:
        row = event_row(hit.event)
        trigger = hit.trigger
        for view, key_field in zip(trigger.batch_features, trigger.batch_keys, strict=True):
            key = key_field.value(hit.event)
            if not key:
                continue  # no entity of that kind: the model sees its features as missing
            try:
                raw = self.online.get(features_ns(self.project, view.name), key)
                if raw is not None:
                    values = _features.decode(raw)
                    values.pop(AS_OF, None)
                    row.update(values)
            except Exception as exc:
                hit.fail("features", f"batch features {view.name!r} of {key!r}: {_describe(exc)}")
                return None
        row.update(hit.stream)
        return row


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
