"""Run routes: the project's pipeline runs, one run with its steps, and its logs, streamed live (read key)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from kawa.api.auth import read_access
from kawa.pipelines import RunRecord, RunStore, follow
from kawa.pipelines.cache import StepResults

router = APIRouter(tags=["runs"])

# How long one follow request may stay open; a client that wants more asks again.
FOLLOW_LIMIT_S = 6 * 3600.0


@router.get("/v1/runs", summary="The project's pipeline runs, newest first")
def list_runs(
    request: Request,
    pipeline: str | None = None,
    experiment: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    key = read_access(request)
    store = RunStore(request.app.state.runtime.metadata)
    records = store.list(key.project, pipeline=pipeline, experiment=experiment, status=status, limit=limit)
    return {"runs": [_run(r) for r in records]}


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
