"""The bandits page: each declared bandit's arms with pulls, rewards, mean reward and score, and its newest
decisions, as `GET /v1/bandits` reads them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from kawa.bandits.service import for_app
from kawa.ui.render import page
from kawa.ui.session import Viewer, viewer

router = APIRouter()

RECENT_DECISIONS = 10


@router.get("/bandits", response_class=HTMLResponse)
async def bandits(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    overview = await run_in_threadpool(_overview, request, who.project)
    return page(request, "bandits.html", who, **overview)


def _overview(request: Request, project: str) -> dict[str, Any]:
    service = for_app(request.app.state)
    found = service.overview(project)
    found["decisions"] = {
        b["name"]: service.decisions(project, b["name"], RECENT_DECISIONS) for b in found["bandits"]
    }
    return found
