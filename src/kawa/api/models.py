"""Model routes: the registry's models and versions (read key), predictions from them (read key), and
moving an alias to a version (admin key)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from kawa.api.auth import admin_access, read_access
from kawa.api.ingest import read_body
from kawa.auth import KeyInfo
from kawa.models import ModelNotFoundError, ModelSummary, RowError
from kawa.models.report import curves, metric_table
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
    return await predict_response(request, name, version, alias)


async def predict_response(request: Request, name: str, version: int | None, alias: str) -> Response:
    """The answer of `POST /v1/models/{name}/predict`, for this route and kawa.api._fast."""
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


@router.get("/v1/models", summary="The project's models with their newest version and aliases (read key)")
def list_models(request: Request) -> dict[str, Any]:
    # A plain def: FastAPI runs it in a worker thread, as it reads the metadata database.
    key = read_access(request)
    found = request.app.state.registry.list_models(key.project)
    return {"project": key.project, "models": [summary_json(m) for m in found]}


@router.get(
    "/v1/models/{name}",
    summary="A model's versions (oldest first) with metrics, signature and aliases, and their scalar "
    "metrics side by side (read key)",
    responses={404: {"description": "no such model"}},
)
def show_model(name: str, request: Request) -> dict[str, Any]:
    key = read_access(request)
    try:
        versions = request.app.state.registry.list_versions(key.project, name)
    except ModelNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    return {
        "project": key.project,
        "name": name,
        "versions": [v.to_json() for v in versions],
        "comparison": metric_table(versions).to_json(),
    }


@router.get(
    "/v1/models/{name}/versions/{version}",
    summary="One version with its plots' data: ROC curve, calibration table, feature importance (read key)",
    responses={404: {"description": "no such model or version"}},
)
def show_version(name: str, version: Annotated[int, Path(ge=1)], request: Request) -> dict[str, Any]:
    key = read_access(request)
    registry = request.app.state.registry
    try:
        found = registry.show(key.project, name, version)
    except ModelNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    return {**found.to_json(), "curves": curves(registry, found).to_json()}


class AliasRequest(BaseModel):
    version: int = Field(..., ge=1, description="The version the alias will point at")


@router.post(
    "/v1/models/{name}/aliases/{alias}",
    summary="Point an alias (such as production) at a version, as `kawa models promote` does (admin key)",
    responses={404: {"description": "no such model or version"}, 400: {"description": "bad alias name"}},
)
def set_alias(
    name: str,
    alias: str,
    body: AliasRequest,
    request: Request,
    key: Annotated[KeyInfo, Depends(admin_access)],
) -> dict[str, Any]:
    try:
        before = request.app.state.registry.promote(key.project, name, body.version, alias)
    except ModelNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"model": name, "alias": alias, "version": body.version, "previous": before}


def summary_json(model: ModelSummary) -> dict[str, Any]:
    """A model of `GET /v1/models` as JSON."""
    return {
        "name": model.name,
        "description": model.description,
        "latest_version": model.latest_version,
        "versions": model.versions,
        "aliases": model.aliases,
        "created_at": model.created_at.isoformat(),
    }
