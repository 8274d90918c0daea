"""The run page: step states on the graph, live logs, metrics, outputs, the status message, a rerun button."""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from kawa.pipelines import ParamError, RunLimitReached, RunRecord, RunStore, follow
from kawa.pipelines.cache import StepResults
from kawa.pipelines.describe import run_steps
from kawa.pipelines.logs import LogTail
from kawa.pipelines.runs import FINISHED
from kawa.pipelines.service import CodeUnavailable, PipelineService
from kawa.ui.pages.pipelines import step_graph
from kawa.ui.render import page
from kawa.ui.session import Viewer, admin, viewer

router = APIRouter()

# A finished run's log is shown up to this many characters (its end); the API serves all of it.
LOG_LIMIT = 200_000
# How often a live log is looked at for new output.
LOG_POLL_S = 0.5
# A finished run's status message is recorded just after its end; the page waits this long for it.
MESSAGE_GRACE_S = 60.0


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run(request: Request, run_id: str, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    data = await run_in_threadpool(_run, request, who, run_id, True)
    return page(request, "run.html", who, **data)


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
async def run_live(request: Request, run_id: str, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    """The parts of the run page that change while it runs; htmx asks again until the run has finished."""
    data = await run_in_threadpool(_run, request, who, run_id, False)
    return page(request, "run_live.html", who, **data)


@router.get("/runs/{run_id}/logs/stream")
async def run_log_stream(
    request: Request, run_id: str, who: Annotated[Viewer, Depends(viewer)]
) -> StreamingResponse:
    """The run's log as server-sent events of HTML text, from the start, until the run has finished.

    Each look for new output is a short call in a worker thread; between looks the stream waits
    without holding one, so a page left open on a long quiet step costs nothing.
    """
    record = await run_in_threadpool(_record, request, who, run_id)
    tail = LogTail(request.app.state.runtime, record.run_id)

    async def events() -> AsyncIterator[str]:
        while True:
            texts = await run_in_threadpool(lambda: list(tail.read()))
            for text in texts:
                yield _event("message", html.escape(text))
            if tail.finished:
                yield _event("end", "")
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(LOG_POLL_S)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/runs/{run_id}/steps/{step}", response_class=HTMLResponse)
async def run_step(
    request: Request, run_id: str, step: str, who: Annotated[Viewer, Depends(viewer)]
) -> HTMLResponse:
    """One step of the run: status, attempts or cache hit, metrics, outputs, error and its log."""
    data = await run_in_threadpool(_step, request, who, run_id, step)
    return page(request, "run_step.html", who, **data)


@router.post("/runs/{run_id}/rerun")
async def rerun(request: Request, run_id: str, who: Annotated[Viewer, Depends(admin)]) -> RedirectResponse:
    """A new run with this run's pipeline, parameters and experiment (as `POST /v1/runs/{id}/rerun`)."""
    service = PipelineService.attached(request.app)
    try:
        record = await run_in_threadpool(service.rerun, who.project, run_id)
    except CodeUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except RunLimitReached as exc:
        raise HTTPException(409, str(exc)) from None
    except (ParamError, ValueError) as exc:
        raise HTTPException(400, f"this run cannot be repeated as it was: {exc}") from None
    return RedirectResponse(f"/runs/{record.run_id}", status_code=303)


def _event(name: str, data: str) -> str:
    # One `data:` line per line of text (a browser joins them with newlines); \r would end a line too.
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


def _record(request: Request, who: Viewer, run_id: str) -> RunRecord:
    store = RunStore(request.app.state.runtime.metadata)
    try:
        record = store.get(store.resolve(run_id, who.project))
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    if record is None:
        raise HTTPException(404, f"no run with id {run_id!r}")
    return record


def _run(request: Request, who: Viewer, run_id: str, with_log: bool) -> dict[str, Any]:
    runtime = request.app.state.runtime
    record = _record(request, who, run_id)
    service = PipelineService.attached(request.app)
    try:
        pipeline = service.pipeline(record.pipeline)
    except (CodeUnavailable, LookupError):
        pipeline = None  # the run is still shown, from its record alone
    statuses = {s.step: s.status for s in record.steps}
    shape = run_steps([s.step for s in record.steps], pipeline)
    graph = step_graph(shape, statuses=statuses, details=f"/runs/{record.run_id}/steps/")
    defaults = pipeline.params_json() if pipeline is not None else {}
    finished = record.status in FINISHED
    ended_ago = (datetime.now(UTC) - record.finished_at).total_seconds() if record.finished_at else 0.0
    data: dict[str, Any] = {
        "run": record,
        "finished": finished,
        # Nothing more will change: the live part stops asking.
        "settled": finished and (record.message is not None or ended_ago > MESSAGE_GRACE_S),
        "graph": graph,
        "results": StepResults(runtime).get(record.run_id),
        "changed": {k for k, v in record.params.items() if k in defaults and defaults[k] != v},
        "pipeline_known": pipeline is not None,
    }
    if with_log:
        data["log"] = _log_text(request, record.run_id) if finished else None
        data["log_limit"] = LOG_LIMIT
    return data


def _log_text(request: Request, run_id: str, step: str | None = None) -> str:
    text = "".join(follow(request.app.state.runtime, run_id, step=step, live=False))
    if len(text) > LOG_LIMIT:
        return f"[... the first {len(text) - LOG_LIMIT:,} characters are left out here]\n" + text[-LOG_LIMIT:]
    return text


def _step(request: Request, who: Viewer, run_id: str, step: str) -> dict[str, Any]:
    record = _record(request, who, run_id)
    found = [s for s in record.steps if s.step == step]
    if not found:
        raise HTTPException(404, f"run {record.run_id} has no step {step!r}")
    result = StepResults(request.app.state.runtime).get(record.run_id).get(step, {})
    return {"run": record, "step": found[0], "result": result, "log": _log_text(request, record.run_id, step)}
