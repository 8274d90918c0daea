"""The predictions page: look up an entity's stored predictions (every model), its streaming features and
its materialised batch features, as the product reads them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from kawa.serving.lookup import lookup
from kawa.ui.render import page
from kawa.ui.session import Viewer, viewer

router = APIRouter()


@router.get("/predictions", response_class=HTMLResponse)
async def predictions(
    request: Request, who: Annotated[Viewer, Depends(viewer)], entity: str = ""
) -> HTMLResponse:
    entity = entity.strip()
    profile = None
    if entity:
        runtime, registry = request.app.state.runtime, request.app.state.registry
        profile = await run_in_threadpool(lookup, runtime, registry, who.project, entity)
    return page(request, "predictions.html", who, entity=entity, profile=profile)
