"""Prediction routes: read stored predictions, and everything served about one entity (read key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from kawa.api.auth import read_access
from kawa.serving.lookup import lookup

router = APIRouter(tags=["predictions"])


@router.get(
    "/v1/predictions/{model}/{entity_id}",
    summary="The newest stored prediction of a model for one entity (read key)",
    responses={
        200: {"description": "{score, model_version, computed_at, source}"},
        404: {"description": "none"},
    },
)
async def get_prediction(model: str, entity_id: str, request: Request) -> Response:
    return stored_prediction(request, model, entity_id)


def stored_prediction(request: Request, model: str, entity_id: str) -> Response:
    """The answer of `GET /v1/predictions/{model}/{entity_id}`, for this route and kawa.api._fast."""
    # On the event loop, not in FastAPI's thread pool: the key check is a cache hit and the read a
    # memory-mapped LMDB lookup, both microseconds, while each hop to a worker thread costs ~0.1-1 ms
    # (more on a busy machine) and was most of this route's time.
    key = read_access(request)
    raw = request.app.state.predictions.get_raw(key.project, model, entity_id)
    if raw is None:
        raise HTTPException(
            404, f"no prediction of model {model!r} for {entity_id!r} in project {key.project!r}"
        )
    return Response(raw, media_type="application/json")


@router.get(
    "/v1/entities/{entity_id}",
    summary="Everything served about one entity: each model's stored prediction, its streaming features "
    "and its materialised features (read key)",
)
def get_entity(entity_id: str, request: Request) -> dict[str, Any]:
    # A plain def: it may import the project's code (once per change) and reads several namespaces.
    key = read_access(request)
    runtime = request.app.state.runtime
    return lookup(runtime, request.app.state.registry, key.project, entity_id).to_json()
