"""Run a pipeline: record the run and its steps, execute them in order, and always send the status message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kawa.pipelines.context import RunContext
from kawa.pipelines.executor import Executor, InProcessExecutor, StepCall, StepOutcome
from kawa.pipelines.notify import deliver, status_message
from kawa.pipelines.params import to_json
from kawa.pipelines.runs import CANCELLED, FAILED, SKIPPED, SUCCEEDED, RunRecord, RunStore

if TYPE_CHECKING:
    from kawa.pipelines.pipeline import Pipeline
    from kawa.runtime import Runtime

log = logging.getLogger(__name__)

KINDS = ("manual", "scheduled", "backfill", "test")


@dataclass(frozen=True)
class RunEvent:
    """Progress of a run for whoever watches it (the CLI prints these)."""

    kind: str  # run_started | step_started | step_finished | run_finished
    run_id: str
    pipeline: str
    step: str | None = None
    status: str | None = None
    duration_s: float | None = None
    error: str | None = None


def log_path(run_id: str, step: str) -> str:
    """Where a step's captured output is kept in the artifact store."""
    return f"runs/{run_id}/{step}.log"


def run_pipeline(
    runtime: Runtime,
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    experiment: str = "default",
    project: str | None = None,
    kind: str = "manual",
    logical_date: datetime | None = None,
    executor: Executor | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
) -> RunRecord:
    """Run `pipeline` with `params` overriding its defaults, record it, and return the finished record.

    Bad parameters raise ParamError before anything is recorded. A failing step does not raise: the
    run is recorded as failed with the error and its traceback, and the steps after it as skipped.
    The status message goes out however the run ends (also when interrupted, before re-raising).
    """
    if kind not in KINDS:
        raise ValueError(f"run kind {kind!r} is not one of {', '.join(KINDS)}")
    if not experiment or not isinstance(experiment, str) or len(experiment) > 128:
        raise ValueError(f"experiment {experiment!r} must be a name of 1 to 128 characters, e.g. 'dev'")
    values = pipeline.resolve_params(params)
    project = project or runtime.config.project
    logical_date = _aware(logical_date) if logical_date is not None else datetime.now(UTC)
    store = RunStore(runtime.metadata)
    record = store.create(
        project=project,
        pipeline=pipeline.name,
        experiment=experiment,
        kind=kind,
        params={k: to_json(v) for k, v in values.items()},
        logical_date=logical_date,
        steps=[(s.name, s.resources) for s in pipeline.steps],
    )
    run = _Run(runtime, pipeline, record, store, values, executor or InProcessExecutor(), on_event)
    return run.execute()


class _Run:
    """One run in progress."""

    def __init__(
        self,
        runtime: Runtime,
        pipeline: Pipeline,
        record: RunRecord,
        store: RunStore,
        values: dict[str, Any],
        executor: Executor,
        on_event: Callable[[RunEvent], None] | None,
    ) -> None:
        self.runtime = runtime
        self.pipeline = pipeline
        self.record = record
        self.store = store
        self.values = values
        self.executor = executor
        self.on_event = on_event
        self.metrics: dict[str, Any] = {}
        self.artifacts: list[str] = []
        self.error: str | None = None

    def execute(self) -> RunRecord:
        run_id = self.record.run_id
        status = FAILED
        try:
            self.store.start(run_id)
            self._emit(RunEvent("run_started", run_id, self.pipeline.name))
            status = self._steps()
        except BaseException as exc:
            # Interrupted (Ctrl-C) or kawa itself failed (e.g. the metadata store): still finish the record.
            status = CANCELLED if isinstance(exc, KeyboardInterrupt) else FAILED
            self.error = self.error or f"run {status}: {type(exc).__name__}: {exc}"
            self._finish(status)
            raise
        return self._finish(status)

    def _steps(self) -> str:
        run_id = self.record.run_id
        results: dict[str, Any] = {}
        for s in self.pipeline.steps:
            ctx = RunContext(
                self.runtime,
                run_id=run_id,
                pipeline=self.pipeline.name,
                experiment=self.record.experiment,
                project=self.record.project,
                step=s.name,
                params=dict(self.values),
                logical_date=self.record.logical_date or datetime.now(UTC),
            )
            kwargs: dict[str, Any] = {}
            for name in s.inputs:
                if name in results:
                    kwargs[name] = results[name]
                elif name in self.values:
                    kwargs[name] = self.values[name]
                # else: the step's own default applies (checked when the pipeline was defined)
            if s.context_param is not None:
                kwargs[s.context_param] = ctx
            started = self.store.start_step(run_id, s.name)
            self._emit(RunEvent("step_started", run_id, self.pipeline.name, step=s.name))
            try:
                outcome = self.executor.run_step(StepCall(step=s, kwargs=kwargs, ctx=ctx))
            except KeyboardInterrupt:
                self._close_step(ctx, StepOutcome(error="interrupted\n"), CANCELLED, started)
                self.error = f"step {s.name!r} was interrupted"
                raise
            status = SUCCEEDED if outcome.ok else FAILED
            self._close_step(ctx, outcome, status, started)
            if not outcome.ok:
                self.error = f"step {s.name!r} failed:\n{outcome.error}"
                return FAILED
            results[s.name] = outcome.value
        return SUCCEEDED

    def _close_step(self, ctx: RunContext, outcome: StepOutcome, status: str, started: datetime) -> None:
        run_id = self.record.run_id
        path: str | None = log_path(run_id, ctx.step)
        try:
            self.runtime.artifacts.put_bytes(log_path(run_id, ctx.step), outcome.log.encode())
        except Exception as exc:
            log.warning("could not keep the log of step %s of run %s: %s", ctx.step, run_id, exc)
            path = None
        self.metrics.update(ctx.metrics)
        self.artifacts.extend(p for p in ctx.artifact_paths if p not in self.artifacts)
        finished = self.store.finish_step(
            run_id,
            ctx.step,
            status=status,
            outputs=ctx.outputs,
            metrics=ctx.metrics,
            artifacts=ctx.artifact_paths,
            log=path,
            error=outcome.error,
        )
        duration = (finished - started).total_seconds()
        self._emit(
            RunEvent(
                "step_finished",
                run_id,
                self.pipeline.name,
                step=ctx.step,
                status=status,
                duration_s=duration,
                error=outcome.error,
            )
        )

    def _finish(self, status: str) -> RunRecord:
        """Record the end of the run, then send the status message, whatever went wrong before."""
        run_id = self.record.run_id
        try:
            self.store.skip_remaining(run_id, CANCELLED if status == CANCELLED else SKIPPED)
            self.store.finish(
                run_id, status=status, metrics=self.metrics, artifacts=self.artifacts, error=self.error
            )
            record = self.store.get(run_id) or self.record
        except Exception as exc:
            log.error("could not record the end of run %s: %s", run_id, exc)
            record = self.record
            record.status, record.error, record.finished_at = status, self.error, datetime.now(UTC)
        message = status_message(record)
        notify = self.runtime.config.notify
        receipts = deliver(message, notify.webhook, timeout_s=notify.timeout_s)
        try:
            self.store.set_message(run_id, {"sent": message, "delivery": receipts})
            record.message = {"sent": message, "delivery": receipts}
        except Exception as exc:
            log.error("could not record the status message of run %s: %s", run_id, exc)
        self._emit(
            RunEvent(
                "run_finished",
                run_id,
                self.pipeline.name,
                status=record.status,
                duration_s=record.duration_s,
                error=record.error,
            )
        )
        return record

    def _emit(self, event: RunEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception as exc:  # a broken progress printer must not change the run
            log.warning("progress callback failed on %s: %s", event.kind, exc)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
