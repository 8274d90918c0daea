"""Run routes: the project's pipeline runs (paged), one run with its steps, its logs, streamed live (read
key), and a rerun of one (admin key)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from kawa.api.auth import admin_access, read_access
from kawa.api.pipelines import accepted, call
from kawa.pipelines import RunRecord, RunStore, follow
from kawa.pipelines.cache import StepResults
from kawa.pipelines.history import run_page

router = APIRouter(tags=["runs"])

# How long one follow request may stay open; a client that wants more asks again.
FOLLOW_LIMIT_S = 6 * 3600.0


@router.get(
    "/v1/runs",
    summary="The project's pipeline runs, newest first, a page at a time",
    description=(
        "`before=RUN_ID` gives the runs older than that run, `after=RUN_ID` the runs newer than it. "
        "The `Link` header names the next (older) and previous (newer) pages; `X-Total-Count` says how "
        "many runs match."
    ),
)
def list_runs(
    request: Request,
    response: Response,
    pipeline: str | None = None,
    experiment: str | None = None,
    status: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    key = read_access(request)
    filters = {"pipeline": pipeline, "experiment": experiment, "status": status}
    try:
        page = run_page(
            request.app.state.runtime.metadata,
            key.project,
            before=before,
            after=after,
            limit=limit,
            **filters,
        )
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    shown = {k: v for k, v in filters.items() if v is not None} | {"limit": limit}
    links = []
    if page.older:
        links.append(f'</v1/runs?{urlencode({**shown, "before": page.older})}>; rel="next"')
    if page.newer:
        links.append(f'</v1/runs?{urlencode({**shown, "after": page.newer})}>; rel="prev"')
    if links:
        response.headers["Link"] = ", ".join(links)
    response.headers["X-Total-Count"] = str(page.total)
    return {"runs": [_run(r) for r in page.runs]}


@router.post(
    "/v1/runs/{run_id}/rerun",
    status_code=202,
    summary="Start a new run with the pipeline, parameters and experiment of this one",
    responses={
        404: {"description": "no such run, or its pipeline is gone from the code"},
        409: {"description": "the pipeline already runs max_active_runs runs (?force=true to start)"},
    },
)
def rerun(run_id: str, request: Request, response: Response, force: bool = False) -> dict[str, Any]:
    key = admin_access(request)
    record: RunRecord = call(lambda s: s.rerun(key.project, run_id, force=force), request)
    return accepted(record, response)


@router.get(
    "/v1/runs/{run_id}",
    summary="One run (an id or a unique prefix of one) with its steps, cache hits and attempts",
    responses={404: {"description": "no such run in this project"}},
)
def get_run(run_id: str, request: Request) -> dict[str, Any]:
    runtime = request.app.state.runtime
    record = _record(request, run_id)
    results = StepResults(runtime).get(record.run_id)
    data = _run(record)
    data["steps"] = [{**_plain(dataclasses.asdict(s)), **results.get(s.step, {})} for s in record.steps]
    return data


@router.get(
    "/v1/runs/{run_id}/logs",
    summary="What the run's steps printed and logged, as text; follow=true streams it until the run ends",
    responses={200: {"content": {"text/plain": {}}}, 404: {"description": "no such run in this project"}},
)
def run_logs(
    run_id: str,
    request: Request,
    step: str | None = None,
    follow_: Annotated[bool, Query(alias="follow")] = False,
) -> StreamingResponse:
    runtime = request.app.state.runtime
    record = _record(request, run_id)
    if step is not None and step not in {s.step for s in record.steps}:
        raise HTTPException(404, f"run {record.run_id} has no step {step!r}")

    def lines() -> Iterator[bytes]:
        # A sync generator: Starlette iterates it in a worker thread, so the waits block no request.
        for text in follow(runtime, record.run_id, step=step, live=follow_, timeout_s=FOLLOW_LIMIT_S):
            yield text.encode()

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


def _record(request: Request, run_id: str) -> RunRecord:
    key = read_access(request)
    store = RunStore(request.app.state.runtime.metadata)
    try:
        full = store.resolve(run_id, key.project)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    record = store.get(full)
    if record is None:
        raise HTTPException(404, f"no run with id {run_id!r}")
    return record


def _run(record: RunRecord) -> dict[str, Any]:
    data = _plain(dataclasses.asdict(record))
    data.pop("steps", None)
    data["duration_s"] = record.duration_s
    return data


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}
