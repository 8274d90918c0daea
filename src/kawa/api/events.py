"""Event routes for reading what came in: the newest events with filters, and the refused ones (read key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from kawa.api.auth import read_access
from kawa.events import tail

router = APIRouter(tags=["events"])


@router.get(
    "/v1/events/recent",
    summary="The newest events the project received, newest first; filter by event name and user (read key)",
)
def recent_events(
    request: Request,
    event_name: str | None = None,
    user_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=tail.MAX_ROWS)] = 50,
) -> dict[str, Any]:
    # A plain def: FastAPI runs it in a worker thread, as it queries the warehouse.
    key = read_access(request)
    warehouse = request.app.state.runtime.warehouse(key.project)
    events = tail.recent_events(
        warehouse, event_name=event_name or None, user_id=user_id or None, limit=limit
    )
    return {"project": key.project, "events": events}


@router.get(
    "/v1/events/rejected",
    summary="Events kawa refused, newest first, each with the reason (read key)",
)
def rejected_events(
    request: Request,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=tail.MAX_ROWS)] = 50,
) -> dict[str, Any]:
    key = read_access(request)
    warehouse = request.app.state.runtime.warehouse(key.project)
    return tail.rejected_events(warehouse, offset=offset, limit=limit).to_json()
