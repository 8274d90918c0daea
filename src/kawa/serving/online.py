"""Online prediction: human-readable rows in, predictions of the model at an alias (or a version) out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from kawa.events.validate import pseudo_depth
from kawa.models import Registry, RowError
from kawa.observe.metrics import timed_predict

_decoder = msgspec.json.Decoder()


class PredictRequestError(ValueError):
    """The request body is not one JSON object or a list of them; the message says why."""


def parse_rows(body: bytes, *, max_depth: int = 32, max_rows: int = 10_000) -> Any:
    """The JSON body of a predict request: one object or a list of objects, within kawa's limits."""
    # A body nests no deeper than it has opening brackets: counting them costs ~0.5 µs, measuring the
    # depth ~25 µs, which a single-row body (one bracket) need not pay.
    if body.count(b"{") + body.count(b"[") > max_depth and pseudo_depth(body) > max_depth:
        raise PredictRequestError(f"the body is nested deeper than {max_depth} levels")
    try:
        rows = _decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise PredictRequestError(f"the body is not valid JSON: {exc}") from None
    if isinstance(rows, list):
        if len(rows) > max_rows:
            raise PredictRequestError(f"{len(rows)} rows in one request; the limit is {max_rows}")
        return rows
    if isinstance(rows, Mapping):
        return rows
    raise PredictRequestError("send one JSON object (a row) or a JSON array of rows")


def predict(
    registry: Registry,
    project: str,
    model: str,
    rows: Any,
    *,
    version: int | None = None,
    alias: str = "production",
) -> dict[str, Any]:
    """Predictions for one row or a list of rows; RowError names the row and field that are wrong."""
    if version is None:
        version = registry.resolve(project, model, alias)
    bundle = registry.load(project, model, version)
    if isinstance(rows, Mapping):
        with timed_predict(project, model, version, "request"):
            return {"model": model, "version": version, "prediction": bundle.predict_one(rows)}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RowError(None, "is not a JSON object", row=i)
    with timed_predict(project, model, version, "request", len(rows)):
        return {"model": model, "version": version, "predictions": bundle.predict(rows)}
