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

from kawa.pipelines.active import RunLimitReached
from kawa.pipelines.context import RunContext
from kawa.pipelines.executor import Executor, InProcessExecutor, StepCall, StepOutcome, executor_for
from kawa.pipelines.handoff import StoredValue
from kawa.pipelines.logs import follow, live_log_path, log_path
from kawa.pipelines.notify import deliver, status_message
from kawa.pipelines.params import ParamError, parse_assignments
from kawa.pipelines.pipeline import Pipeline, PipelineDefinitionError, find_pipeline, project_pipelines
from kawa.pipelines.policy import RunPolicy, policy_for
from kawa.pipelines.process import SubprocessExecutor
from kawa.pipelines.ray_executor import RayExecutor
from kawa.pipelines.runner import RunEvent, run_pipeline
from kawa.pipelines.runs import RunRecord, RunStore, StepRecord, new_run_id
from kawa.pipelines.step import Step, StepDefinitionError, step
from kawa.pipelines.sweep import SweepError, SweepResult, Trial, sweep

__all__ = [
    "Executor",
    "InProcessExecutor",
    "ParamError",
    "Pipeline",
    "PipelineDefinitionError",
    "RayExecutor",
    "RunContext",
    "RunEvent",
    "RunLimitReached",
    "RunPolicy",
    "RunRecord",
    "RunStore",
    "Step",
    "StepCall",
    "StepDefinitionError",
    "StepOutcome",
    "StepRecord",
    "StoredValue",
    "SubprocessExecutor",
    "SweepError",
    "SweepResult",
    "Trial",
    "deliver",
    "executor_for",
    "find_pipeline",
    "follow",
    "live_log_path",
    "log_path",
    "new_run_id",
    "parse_assignments",
    "policy_for",
    "project_pipelines",
    "run_pipeline",
    "status_message",
    "step",
    "sweep",
]
