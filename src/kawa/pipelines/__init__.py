"""Pipelines: steps and pipelines in plain Python, recorded runs, experiments and status messages.

    from kawa.pipelines import Pipeline, RunContext, step

    @step
    def orders(ctx: RunContext, cutoff: str):
        return ctx.warehouse.query(f"SELECT * FROM events WHERE sync_date < '{cutoff}'")

    @step(memory="8GB")
    def model(orders, ctx: RunContext):
        ctx.log_metric("rows", orders.num_rows)

    loyalty = Pipeline("loyalty", steps=[orders, model], params={"cutoff": "2026-10-01"})

A step's name is the value it produces; its parameter names are its inputs (earlier steps' outputs,
pipeline parameters, or `ctx`). `kawa pipeline run loyalty -p cutoff=2026-11-01 --experiment dev`.
"""

from __future__ import annotations

from kawa.pipelines.context import RunContext
from kawa.pipelines.executor import Executor, InProcessExecutor, StepCall, StepOutcome
from kawa.pipelines.notify import deliver, status_message
from kawa.pipelines.params import ParamError, parse_assignments
from kawa.pipelines.pipeline import Pipeline, PipelineDefinitionError, find_pipeline, project_pipelines
from kawa.pipelines.runner import RunEvent, log_path, run_pipeline
from kawa.pipelines.runs import RunRecord, RunStore, StepRecord, new_run_id
from kawa.pipelines.step import Step, StepDefinitionError, step

__all__ = [
    "Executor",
    "InProcessExecutor",
    "ParamError",
    "Pipeline",
    "PipelineDefinitionError",
    "RunContext",
    "RunEvent",
    "RunRecord",
    "RunStore",
    "Step",
    "StepCall",
    "StepDefinitionError",
    "StepOutcome",
    "StepRecord",
    "deliver",
    "find_pipeline",
    "log_path",
    "new_run_id",
    "parse_assignments",
    "project_pipelines",
    "run_pipeline",
    "status_message",
    "step",
]
