"""Model routes: predictions from the registry's models (read key)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from kawa.api.auth import read_access
from kawa.api.ingest import read_body
from kawa.models import ModelNotFoundError, RowError
from kawa.serving.online import PredictRequestError, parse_rows, predict

router = APIRouter(tags=["models"])
_encoder = msgspec.json.Encoder()

_PREDICT_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
                "example": {"age": 34, "gender": "male", "media": "Twitter", "recency_days": 3},
            }
        },
    }
}


@router.post(
    "/v1/models/{name}/predict",
    summary="Predict from human-readable rows with the model at the production alias (read key)",
    openapi_extra=_PREDICT_DOC,
)
async def predict_route(
    name: str,
    request: Request,
    version: Annotated[int | None, Query(ge=1, description="A version instead of the alias")] = None,
    alias: Annotated[str, Query(description="The alias to use when no version is given")] = "production",
) -> Response:
    # The key check runs inline (a cache hit), not as a sync dependency in FastAPI's thread pool,
    # whose hop cost more than the prediction itself.
    key = read_access(request)
    runtime = request.app.state.runtime
    body = await read_body(request, runtime.config.ingest.max_body_bytes)
    try:
        rows = parse_rows(body, max_depth=runtime.config.ingest.max_depth)
        result = predict(request.app.state.registry, key.project, name, rows, version=version, alias=alias)
    except PredictRequestError as exc:
        raise HTTPException(400, str(exc)) from None
    except RowError as exc:
        raise HTTPException(422, str(exc)) from None
    except ModelNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(_encoder.encode(result), media_type="application/json")
