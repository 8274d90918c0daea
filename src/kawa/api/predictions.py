"""Prediction routes: read stored predictions (read key)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from kawa.api.auth import read_access

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
