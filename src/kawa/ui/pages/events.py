"""The events page: a live tail of incoming events with filters by event name and user, and the events
kawa refused with their reasons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from kawa.events import tail
from kawa.ui.render import page
from kawa.ui.session import Viewer, viewer

router = APIRouter()

TAIL_ROWS = 50
REJECTED_ROWS = 25
Offset = Annotated[int, Query(ge=0)]


@router.get("/events", response_class=HTMLResponse)
async def events(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    event_name: str = "",
    user_id: str = "",
) -> HTMLResponse:
    data = await run_in_threadpool(_page, request, who, event_name.strip(), user_id.strip())
    return page(request, "events.html", who, **data)


@router.get("/events/live", response_class=HTMLResponse)
async def events_live(
    request: Request,
    who: Annotated[Viewer, Depends(viewer)],
    event_name: str = "",
    user_id: str = "",
) -> HTMLResponse:
    """The tail alone, re-rendered every few seconds by htmx."""
    data = await run_in_threadpool(_tail, request, who, event_name.strip(), user_id.strip())
    return page(request, "events_live.html", who, **data)


@router.get("/events/rejected", response_class=HTMLResponse)
async def events_rejected(
    request: Request, who: Annotated[Viewer, Depends(viewer)], offset: Offset = 0
) -> HTMLResponse:
    """A page of refused events; the first page refreshes itself."""
    rejected = await run_in_threadpool(_rejected, request, who, offset)
    return page(request, "events_rejected.html", who, rejected=rejected, per_page=REJECTED_ROWS)


def _page(request: Request, who: Viewer, event_name: str, user_id: str) -> dict[str, Any]:
    warehouse = request.app.state.runtime.warehouse(who.project)
    return {
        **_tail(request, who, event_name, user_id),
        "names": tail.event_names(warehouse),
        "rejected": _rejected(request, who, 0),
        "per_page": REJECTED_ROWS,
    }


def _tail(request: Request, who: Viewer, event_name: str, user_id: str) -> dict[str, Any]:
    warehouse = request.app.state.runtime.warehouse(who.project)
    found = tail.recent_events(
        warehouse, event_name=event_name or None, user_id=user_id or None, limit=TAIL_ROWS
    )
    return {"events": found, "event_name": event_name, "user_id": user_id, "limit": TAIL_ROWS}


def _rejected(request: Request, who: Viewer, offset: int) -> tail.RejectedPage:
    warehouse = request.app.state.runtime.warehouse(who.project)
    return tail.rejected_events(warehouse, offset=offset, limit=REJECTED_ROWS)
