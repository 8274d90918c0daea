"""Recommendation route: a user's top-N items, or the popular ones for a user with none (read key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from kawa.api.auth import read_access
from kawa.recommend.store import NotPublished, recommendations_for

router = APIRouter(tags=["recommendations"])


@router.get(
    "/v1/recommendations/{user_id}",
    summary="A user's recommended items, best first; popular items for unknown users (read key)",
    responses={
        200: {
            "description": "{user_id, source: personal|popular, items: [{item_id, score, via}], n, capped}"
        },
        404: {"description": "no recommendations published for the project yet"},
        422: {"description": "n is not a whole number of at least 1"},
    },
)
async def get_recommendations(user_id: str, request: Request, n: int = 10) -> dict[str, Any]:
    # On the event loop like /v1/predictions: a key check and one or two memory-mapped reads.
    key = read_access(request)
    try:
        return recommendations_for(request.app.state.predictions, key.project, user_id, n)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    except NotPublished as exc:
        raise HTTPException(404, str(exc)) from None
