"""Prediction routes: read stored predictions (read key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from kawa.api.auth import read_access
from kawa.auth import KeyInfo

router = APIRouter(tags=["predictions"])


@router.get(
    "/v1/predictions/{model}/{entity_id}",
    summary="The newest stored prediction of a model for one entity (read key)",
    responses={
        200: {"description": "{score, model_version, computed_at, source}"},
        404: {"description": "none"},
    },
)
def get_prediction(
    model: str, entity_id: str, request: Request, key: Annotated[KeyInfo, Depends(read_access)]
) -> Response:
    raw = request.app.state.predictions.get_raw(key.project, model, entity_id)
    if raw is None:
        raise HTTPException(
            404, f"no prediction of model {model!r} for {entity_id!r} in project {key.project!r}"
        )
    return Response(raw, media_type="application/json")
