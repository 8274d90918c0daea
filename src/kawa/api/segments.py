"""Segment routes: the project's segments with their delivery counts, and one segment's delivery log
(read key: what a product back end or a push service polls; admin keys may read them too)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from kawa.api.auth import read_access
from kawa.api.pipelines import call
from kawa.pipelines.service import CodeUnavailable, PipelineService
from kawa.segments import DeliveryLog, Segment, segments_overview

router = APIRouter(tags=["segments"])


def _segments(service: PipelineService) -> dict[str, Segment]:
    return {name: p for name, p in service.pipelines().items() if isinstance(p, Segment)}


@router.get(
    "/v1/segments",
    summary="The project's segments: definition, schedule, destination and members delivered by status",
    description="Segments only the delivery log still knows (removed from the code) are listed with "
    "`in_code: false`.",
)
def list_segments(request: Request) -> dict[str, Any]:
    key = read_access(request)
    segments = call(_segments, request)
    return {"segments": segments_overview(request.app.state.runtime.metadata, key.project, segments)}


@router.get(
    "/v1/segments/{name}/deliveries",
    summary="One segment's delivery log, newest first: member, day, destination, batch, status, times",
    description="`day=YYYY-MM-DD` and `status=pending|delivered|failed` filter it; `X-Total-Count` says "
    "how many rows match, `offset` pages through them.",
    responses={404: {"description": "no segment of that name in the code or the delivery log"}},
)
def deliveries(
    name: str,
    request: Request,
    response: Response,
    day: date | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    key = read_access(request)
    log = DeliveryLog(request.app.state.runtime.metadata)
    try:
        rows, total = log.entries(
            key.project, segment=name, day=day, status=status, limit=limit, offset=offset
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if total == 0 and not log.summary(key.project).get(name) and name not in _known(request):
        raise HTTPException(404, f"no segment named {name!r}; `GET /v1/segments` lists them")
    response.headers["X-Total-Count"] = str(total)
    return {"segment": name, "total": total, "deliveries": [r.to_json() for r in rows]}


def _known(request: Request) -> set[str]:
    try:
        return set(_segments(PipelineService.attached(request.app)))
    except CodeUnavailable:
        return set()
