"""The pipelines pages: every pipeline with its graph and schedule; one pipeline's run form and its runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kawa.pipelines import ParamError, RunLimitReached
from kawa.pipelines.describe import form_overrides
from kawa.pipelines.history import experiments, run_page
from kawa.pipelines.service import CodeUnavailable, PipelineService
from kawa.ui.render import page
from kawa.ui.session import Viewer, admin, viewer

router = APIRouter()

RUNS_PER_PAGE = 25
# Form fields named `param.NAME` carry the run's parameters as text, as after `-p NAME=`.
PARAM_FIELD = "param."

# Fill and border colours of a step by run status (the badge colours of kawa.css).
STATUS_COLORS = {
    "succeeded": ("#dafbe1", "#1a7f37"),
    "failed": ("#ffebe9", "#cf222e"),
    "timeout": ("#ffebe9", "#cf222e"),
    "cancelled": ("#eef1f5", "#cf222e"),
    "running": ("#f3e8ff", "#8250df"),
    "queued": ("#eef1f5", "#9aa4b2"),
    "skipped": ("#f6f7f9", "#c4cad3"),
}
STEP_COLOR = "#e7f0ff"


def step_graph(
    info: dict[str, Any], *, statuses: dict[str, str] | None = None, details: str | None = None
) -> dict[str, Any]:
    """Cytoscape data for a pipeline's steps (`describe_pipeline`), coloured by `statuses` when given.

    `details` is a URL prefix: clicking a step loads `details + step` into the page's side panel.
    """
    elements: list[dict[str, Any]] = []
    for s in info["steps"]:
        data: dict[str, Any] = {"id": s["name"], "label": s["name"], "color": STEP_COLOR}
        if statuses is not None:
            status = statuses.get(s["name"], "queued")
            data["color"], data["border"] = STATUS_COLORS.get(status, ("#eef1f5", "#9aa4b2"))
            data["label"] = f"{s['name']} · {status}"
            data["status"] = status
        if details:
            data["details"] = details + s["name"]
        elements.append({"data": data})
    for source, target in info["edges"]:
        elements.append({"data": {"id": f"{source}->{target}", "source": source, "target": target}})
    roots = [s["name"] for s in info["steps"] if not s["after"]]
    return {"elements": elements, "roots": roots, "direction": "LR"}


def service_of(request: Request) -> PipelineService:
    return PipelineService.attached(request.app)


@router.get("/pipelines", response_class=HTMLResponse)
async def pipelines(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    service = service_of(request)
    try:
        found = await run_in_threadpool(service.overview, who.project)
    except CodeUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    for info in found:
        info["graph"] = step_graph(info)
    return page(request, "pipelines.html", who, pipelines=found, code_error=service.code_error)


@router.get("/pipelines/{name}", response_class=HTMLResponse)
async def pipeline(
    request: Request,
    name: str,
    who: Annotated[Viewer, Depends(viewer)],
    before: str | None = None,
    after: str | None = None,
) -> HTMLResponse:
    data = await run_in_threadpool(_pipeline, request, who, name, before, after)
    return page(request, "pipeline.html", who, **data)


@router.get("/pipelines/{name}/runs", response_class=HTMLResponse)
async def pipeline_runs(
    request: Request,
    name: str,
    who: Annotated[Viewer, Depends(viewer)],
    before: str | None = None,
    after: str | None = None,
) -> HTMLResponse:
    """The runs list alone: a page of it, or the newest page again (refreshed live by htmx)."""
    runs = await run_in_threadpool(_runs, request, who, name, before, after)
    return page(
        request, "pipeline_runs.html", who, name=name, runs=runs, live=before is None and after is None
    )


@router.get("/pipelines/{name}/steps/{step}", response_class=HTMLResponse)
async def pipeline_step(
    request: Request, name: str, step: str, who: Annotated[Viewer, Depends(viewer)]
) -> HTMLResponse:
    """One step's description, inputs, resources and policy: the side panel of the graph."""
    info = await run_in_threadpool(_describe, request, who, name)
    found = [s for s in info["steps"] if s["name"] == step]
    if not found:
        raise HTTPException(404, f"pipeline {name!r} has no step {step!r}")
    return page(request, "pipeline_step.html", who, info=info, step=found[0])


@router.post("/pipelines/{name}/runs", response_model=None)
async def start_run(request: Request, name: str, who: Annotated[Viewer, Depends(admin)]) -> Response:
    """Start a run from the form: the same checks and start as `POST /v1/pipelines/{name}/runs`."""
    form = await request.form()
    texts = {k[len(PARAM_FIELD) :]: str(v) for k, v in form.items() if k.startswith(PARAM_FIELD)}
    experiment = str(form.get("new_experiment") or "").strip() or str(form.get("experiment") or "default")
    service = service_of(request)

    def start() -> str:
        overrides = form_overrides(service.pipeline(name), texts)
        return service.start(who.project, name, overrides, experiment=experiment).run_id

    try:
        run_id = await run_in_threadpool(start)
    except CodeUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except (ParamError, ValueError, RunLimitReached) as exc:
        data = await run_in_threadpool(_pipeline, request, who, name, None, None)
        data.update(error=str(exc), entered=texts, chosen_experiment=experiment)
        code = 409 if isinstance(exc, RunLimitReached) else 400
        return page(request, "pipeline.html", who, status_code=code, **data)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


def _describe(request: Request, who: Viewer, name: str) -> dict[str, Any]:
    try:
        return service_of(request).describe(who.project, name)
    except CodeUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None


def _runs(request: Request, who: Viewer, name: str, before: str | None, after: str | None) -> Any:
    metadata = request.app.state.runtime.metadata
    try:
        return run_page(metadata, who.project, pipeline=name, before=before, after=after, limit=RUNS_PER_PAGE)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def _pipeline(
    request: Request, who: Viewer, name: str, before: str | None, after: str | None
) -> dict[str, Any]:
    info = _describe(request, who, name)
    return {
        "info": info,
        "graph": step_graph(info, details=f"/pipelines/{name}/steps/"),
        "runs": _runs(request, who, name, before, after),
        "live": before is None and after is None,
        "name": name,
        "experiments": experiments(request.app.state.runtime.metadata, who.project),
        "code_error": service_of(request).code_error,
        "error": None,
        "entered": {},
        "chosen_experiment": "default",
    }
