"""The overview: the last hour's ingest (live), rejected events, recent runs, production models, triggers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from kawa.events.stats import ingest_activity
from kawa.pipelines import RunStore
from kawa.serve.worker import part_alive
from kawa.triggers import state as trigger_state
from kawa.ui.render import page
from kawa.ui.session import Viewer, viewer

router = APIRouter()

RECENT_RUNS = 8


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    data = await run_in_threadpool(_live, request, who)
    return page(request, "overview.html", who, **data)


@router.get("/overview/live", response_class=HTMLResponse)
async def overview_live(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    """The live part of the overview, re-rendered every few seconds by htmx."""
    data = await run_in_threadpool(_live, request, who)
    return page(request, "overview_live.html", who, **data)


def _live(request: Request, who: Viewer) -> dict[str, Any]:
    runtime = request.app.state.runtime
    activity = ingest_activity(runtime.warehouse(who.project))
    runs = RunStore(runtime.metadata).list(who.project, limit=RECENT_RUNS)
    models = [m for m in request.app.state.registry.list_models(who.project) if m.aliases]
    log_end = runtime.event_log.end_offset()
    alive = part_alive(runtime.state_path, "triggers")
    triggers = trigger_state.status(runtime.online, who.project, log_end, running=alive)
    chart = {
        "type": "bar",
        "data": {
            "labels": [m.strftime("%H:%M") for m in activity.minutes],
            "datasets": [
                {"label": "events", "data": activity.events, "backgroundColor": "#1f6feb"},
                {"label": "rejected", "data": activity.rejected, "backgroundColor": "#cf222e"},
            ],
        },
        "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}}},
    }
    return {"activity": activity, "chart": chart, "runs": runs, "models": models, "triggers": triggers}
