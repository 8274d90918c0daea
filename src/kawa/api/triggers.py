"""Trigger routes: the project's triggers with live counts and lag, and their error records (read key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from kawa.api.auth import read_access
from kawa.serve.worker import part_alive
from kawa.triggers import state

router = APIRouter(tags=["triggers"])


@router.get(
    "/v1/triggers",
    summary="The project's triggers: declaration, counts (matched, scored, errors), latency and lag",
)
def list_triggers(request: Request) -> dict[str, Any]:
    # A plain def: FastAPI runs it in a worker thread, as counting queued deliveries walks the store.
    key = read_access(request)
    runtime = request.app.state.runtime
    alive = part_alive(runtime.state_path, "triggers")
    return state.status(runtime.online, key.project, runtime.event_log.end_offset(), running=alive)


@router.get(
    "/v1/triggers/{name}/errors",
    summary="The newest error records of a trigger, newest first: why an event got no prediction",
    responses={404: {"description": "no such trigger"}},
)
def trigger_errors(name: str, request: Request, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    key = read_access(request)
    online = request.app.state.runtime.online
    if online.get(state.stats_ns(key.project), name) is None:
        raise HTTPException(
            404, f"no trigger {name!r} has run in project {key.project!r}; `kawa triggers list` shows them"
        )
    return {"trigger": name, "errors": state.errors(online, key.project, name, limit)}
