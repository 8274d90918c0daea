"""Pipeline routes: the project's pipelines (read key), and starting a run of one (admin key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from kawa.api.auth import admin_access, read_access
from kawa.auth import KeyInfo
from kawa.pipelines import ParamError, RunLimitReached, RunRecord
from kawa.pipelines.service import CodeUnavailable, PipelineService

router = APIRouter(tags=["pipelines"])


class StartRun(BaseModel):
    """What a new run overrides: parameters (values, or text as after `-p name=`) and its experiment.

    `force` starts it even while the pipeline already runs `max_active_runs` runs (409 otherwise).
    """

    params: dict[str, Any] = Field(default_factory=dict)
    experiment: str = "default"
    force: bool = False


@router.get("/v1/pipelines", summary="The project's pipelines with their steps, parameters and schedules")
def list_pipelines(request: Request) -> dict[str, Any]:
    # A plain def: FastAPI runs it in a worker thread; loading the project's code is blocking work.
    key = read_access(request)
    return {"pipelines": call(lambda s: s.overview(key.project), request)}


@router.get(
    "/v1/pipelines/{name}",
    summary="One pipeline with its steps, parameters, schedule and latest run",
    responses={404: {"description": "no such pipeline in the project's code"}},
)
def get_pipeline(name: str, request: Request) -> dict[str, Any]:
    key = read_access(request)
    data: dict[str, Any] = call(lambda s: s.describe(key.project, name), request)
    return data


@router.post(
    "/v1/pipelines/{name}/runs",
    status_code=202,
    summary="Start a run now, in a process of its own; answers at once with the queued run's id",
    responses={
        400: {"description": "unknown or malformed parameters, or a bad experiment name"},
        404: {"description": "no such pipeline in the project's code"},
        409: {"description": "the pipeline already runs max_active_runs runs (force: true starts it)"},
    },
)
def start_run(
    name: str,
    body: StartRun,
    request: Request,
    response: Response,
    key: Annotated[KeyInfo, Depends(admin_access)],  # a dependency: checked before the body is
) -> dict[str, Any]:
    record: RunRecord = call(
        lambda s: s.start(key.project, name, body.params, experiment=body.experiment, force=body.force),
        request,
    )
    return accepted(record, response)


def call(action: Any, request: Request) -> Any:
    """`action(service)` with the service's errors turned into HTTP answers that say what to do."""
    try:
        return action(PipelineService.attached(request.app))
    except CodeUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except RunLimitReached as exc:
        raise HTTPException(409, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except (ParamError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from None


def accepted(record: RunRecord, response: Response) -> dict[str, Any]:
    """The 202 answer for a started run: its id and where to follow it."""
    response.headers["Location"] = f"/v1/runs/{record.run_id}"
    return {
        "run_id": record.run_id,
        "pipeline": record.pipeline,
        "experiment": record.experiment,
        "status": record.status,
        "params": record.params,
        "url": f"/v1/runs/{record.run_id}",
        "logs": f"/v1/runs/{record.run_id}/logs?follow=true",
    }
