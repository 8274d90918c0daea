"""Run a pipeline: record the run and its steps, execute them in order, and always send the status message.

Each step runs under its run policy (timeout, retries with backoff: see `policy`), unless an earlier
result can be reused (see `cache`). Its output goes live to a log file that `kawa runs logs -f`
follows, and is kept in the artifact store when it ends; what it read and wrote is kept as lineage.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kawa.lineage.store import LineageStore
from kawa.pipelines import handoff
from kawa.pipelines.active import limit_guard, settle_and_notify
from kawa.pipelines.cache import CacheHit, StepResults, cache_key
from kawa.pipelines.context import RunContext
from kawa.pipelines.executor import Executor, InProcessExecutor, StepCall, StepOutcome
from kawa.pipelines.logs import live_log_path, log_path
from kawa.pipelines.notify import finish_message
from kawa.pipelines.params import to_json
from kawa.pipelines.policy import RunPolicy, policy_for
from kawa.pipelines.runs import CANCELLED, FAILED, SKIPPED, SUCCEEDED, TIMEOUT, RunRecord, RunStore

if TYPE_CHECKING:
    from kawa.pipelines.pipeline import Pipeline
    from kawa.pipelines.step import Step
    from kawa.runtime import Runtime

log = logging.getLogger(__name__)

KINDS = ("manual", "scheduled", "backfill", "test")

__all__ = ["KINDS", "RunEvent", "log_path", "record_run", "run_pipeline", "run_recorded"]


@dataclass(frozen=True)
class RunEvent:
    """Progress of a run for whoever watches it (the CLI prints these).

    `detail` says more about a step: `cached from run ...`, or `attempt 2 of 3` when it is retried.
    """

    kind: str  # run_started | step_started | step_retrying | step_finished | run_finished
    run_id: str
    pipeline: str
    step: str | None = None
    status: str | None = None
    duration_s: float | None = None
    error: str | None = None
    detail: str | None = None


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
    cache: bool = True,
    force: bool = False,
) -> RunRecord:
    """Run `pipeline` with `params` overriding its defaults, record it, and return the finished record.

    Bad parameters raise ParamError before anything is recorded. A failing step does not raise: the
    run is recorded as failed (or timeout) with the error and its traceback, and the steps after it
    as skipped. The status message goes out however the run ends (also when interrupted, before
    re-raising). `executor` defaults to running steps in this process; `kawa pipeline run` and the
    scheduler pass a `SubprocessExecutor`. `cache=False` runs every step even if its result could be
    reused. A manual run is refused (RunLimitReached) while the pipeline runs `max_active_runs` runs,
    unless `force` (see `record_run`).
    """
    values = pipeline.resolve_params(params)
    record = record_run(
        runtime,
        pipeline,
        values,
        experiment=experiment,
        project=project,
        kind=kind,
        logical_date=logical_date,
        force=force,
    )
    return run_recorded(runtime, pipeline, record, values, executor=executor, on_event=on_event, cache=cache)


def record_run(
    runtime: Runtime,
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    experiment: str = "default",
    project: str | None = None,
    kind: str = "manual",
    logical_date: datetime | None = None,
    force: bool = False,
) -> RunRecord:
    """Check the run's parameters and experiment and record it as queued; `run_recorded` runs it.

    A manual run counts against the pipeline's `max_active_runs` like scheduled ones: while that many
    runs of it are going, it is refused with RunLimitReached, naming them, unless `force`.
    Manual runs whose process is gone are settled as failed first and no longer count.
    """
    if kind not in KINDS:
        raise ValueError(f"run kind {kind!r} is not one of {', '.join(KINDS)}")
    if not experiment or not isinstance(experiment, str) or len(experiment) > 128:
        raise ValueError(f"experiment {experiment!r} must be a name of 1 to 128 characters, e.g. 'dev'")
    values = pipeline.resolve_params(params)
    logical_date = _aware(logical_date) if logical_date is not None else datetime.now(UTC)
    project = project or runtime.config.project
    guard = None
    if kind == "manual" and not force:
        settle_and_notify(runtime, project, pipeline.name)
        guard = limit_guard(pipeline.name, pipeline.max_active_runs)
    return RunStore(runtime.metadata).create(
        project=project,
        pipeline=pipeline.name,
        experiment=experiment,
        kind=kind,
        params={k: to_json(v) for k, v in values.items()},
        logical_date=logical_date,
        steps=[(s.name, s.resources) for s in pipeline.steps],
        guard=guard,
    )


def run_recorded(
    runtime: Runtime,
    pipeline: Pipeline,
    record: RunRecord,
    values: Mapping[str, Any] | None = None,
    *,
    executor: Executor | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
    cache: bool = True,
) -> RunRecord:
    """Run a queued run of `record_run` (in whatever process) and return its finished record.

    `values` are the parameters as Python values; by default they are read back from the record.
    """
    store = RunStore(runtime.metadata)
    values = dict(values) if values is not None else pipeline.resolve_params(record.params)
    run = _Run(runtime, pipeline, record, store, values, executor or InProcessExecutor(), on_event, cache)
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
        cache: bool,
    ) -> None:
        self.runtime = runtime
        self.pipeline = pipeline
        self.record = record
        self.store = store
        self.values = values
        self.executor = executor
        self.on_event = on_event
        self.cache = cache
        self.results_store = StepResults(runtime)
        self.lineage = LineageStore(runtime.metadata)
        self.metrics: dict[str, Any] = {}
        self.artifacts: list[str] = []
        self.error: str | None = None
        self.results: dict[str, Any] = {}  # step name -> return value (or StoredValue)
        self.digests: dict[str, str | None] = {}  # step name -> digest of its stored output

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
        for s in self.pipeline.steps:
            status = self._step(s, policy_for(self.pipeline, s, self.record.kind))
            if status != SUCCEEDED:
                return status
        return SUCCEEDED

    def _context(self, s: Step) -> RunContext:
        return RunContext(
            self.runtime,
            run_id=self.record.run_id,
            pipeline=self.pipeline.name,
            experiment=self.record.experiment,
            project=self.record.project,
            step=s.name,
            params=dict(self.values),
            logical_date=self.record.logical_date or datetime.now(UTC),
        )

    def _step(self, s: Step, policy: RunPolicy) -> str:
        run_id = self.record.run_id
        kwargs: dict[str, Any] = {}
        for name in s.inputs:
            if name in self.results:
                kwargs[name] = self.results[name]
            elif name in self.values:
                kwargs[name] = self.values[name]
            # else: the step's own default applies (checked when the pipeline was defined)
        key = self._cache_key(s)
        live = live_log_path(self.runtime.state_path, run_id, s.name)
        live.parent.mkdir(parents=True, exist_ok=True)
        started = self.store.start_step(run_id, s.name)
        self._emit(RunEvent("step_started", run_id, self.pipeline.name, step=s.name))
        hit = self._lookup(s, key)
        if hit is not None:
            return self._reuse(s, hit, key, live, started)
        attempt, ctx, outcome = 0, self._context(s), StepOutcome()
        while attempt < policy.attempts:
            attempt += 1
            ctx = self._context(s)
            if s.context_param is not None:
                kwargs[s.context_param] = ctx
            if attempt > 1:
                with live.open("a", encoding="utf-8") as f:
                    f.write(f"--- attempt {attempt} of {policy.attempts} ---\n")
            call = StepCall(step=s, kwargs=kwargs, ctx=ctx, timeout_s=policy.timeout_s, log_file=live)
            try:
                outcome = self.executor.run_step(call)
            except KeyboardInterrupt:
                self._close_step(ctx, StepOutcome(error="interrupted\n"), CANCELLED, started, live)
                self.error = f"step {s.name!r} was interrupted"
                raise
            if outcome.ok or attempt >= policy.attempts:
                break
            wait = policy.backoff_s(attempt)
            self._emit(
                RunEvent(
                    "step_retrying",
                    run_id,
                    self.pipeline.name,
                    step=s.name,
                    status=TIMEOUT if outcome.timed_out else FAILED,
                    error=outcome.error,
                    detail=f"attempt {attempt + 1} of {policy.attempts} in {wait:g}s",
                )
            )
            with live.open("a", encoding="utf-8") as f:
                f.write(f"--- attempt {attempt} failed; retrying in {wait:g}s ---\n")
            time.sleep(wait)
        status = SUCCEEDED if outcome.ok else TIMEOUT if outcome.timed_out else FAILED
        stored = self._store_output(s, outcome) if outcome.ok else None
        self._close_step(ctx, outcome, status, started, live)
        self.results_store.record(
            run_id=run_id,
            step=s.name,
            project=self.record.project,
            pipeline=self.pipeline.name,
            cache_key=key if stored is not None else None,
            output=stored,
            cached_from=None,
            attempts=attempt,
        )
        if not outcome.ok:
            self.error = f"step {s.name!r} failed:\n{outcome.error}"
            return status
        self.results[s.name] = stored if stored is not None else outcome.value
        self.digests[s.name] = stored.digest if stored is not None else None
        return SUCCEEDED

    def _cache_key(self, s: Step) -> str | None:
        """The step's cache key, or None when it cannot be cached (an input without a digest)."""
        if not s.cache:
            return None
        inputs: dict[str, str] = {}
        params: dict[str, Any] = {}
        for name in s.inputs:
            if name in self.results:
                digest = self.digests.get(name)
                if digest is None:
                    return None
                inputs[name] = digest
            elif name in self.values:
                params[name] = to_json(self.values[name])
        when = self.record.logical_date if s.context_param is not None else None
        return cache_key(s, params, inputs, when)

    def _lookup(self, s: Step, key: str | None) -> CacheHit | None:
        if key is None or not self.cache:
            return None
        try:
            return self.results_store.lookup(
                project=self.record.project, pipeline=self.pipeline.name, step=s.name, key=key
            )
        except Exception as exc:  # a broken cache must not fail the run: run the step instead
            log.warning("cache lookup for step %s failed, running it: %s", s.name, exc)
            return None

    def _reuse(self, s: Step, hit: CacheHit, key: str | None, live: Any, started: datetime) -> str:
        """Record step `s` as done by reusing an earlier run's result."""
        ctx = self._context(s)
        ctx.outputs.update(hit.outputs)
        ctx.metrics.update(hit.metrics)
        for edge in hit.edges:
            ctx.record(edge.entry())
        note = (
            f"cached: reused the result of run {hit.run_id} (same code, parameters, inputs and "
            "tables read); run with --no-cache to run it again\n"
        )
        with live.open("a", encoding="utf-8") as f:
            f.write(note)
        self._close_step(ctx, StepOutcome(value=hit.output, log=note), SUCCEEDED, started, live, hit.run_id)
        self.results_store.record(
            run_id=self.record.run_id,
            step=s.name,
            project=self.record.project,
            pipeline=self.pipeline.name,
            cache_key=key,
            output=hit.output,
            cached_from=hit.run_id,
            attempts=0,
        )
        self.results[s.name] = hit.output
        self.digests[s.name] = hit.output.digest
        return SUCCEEDED

    def _store_output(self, s: Step, outcome: StepOutcome) -> handoff.StoredValue | None:
        """The step's output as stored (the executor may have stored it already); None if it cannot be."""
        if isinstance(outcome.value, handoff.StoredValue):
            return outcome.value
        if not (self.cache and s.cache):
            return None
        try:
            path = handoff.output_path(self.record.run_id, s.name)
            return handoff.store(self.runtime.artifacts, path, outcome.value)
        except Exception as exc:  # not storable: the run goes on, the step just cannot be reused
            log.info("the output of step %s is not stored, so it cannot be cached: %s", s.name, exc)
            return None

    def _close_step(
        self,
        ctx: RunContext,
        outcome: StepOutcome,
        status: str,
        started: datetime,
        live: Any,
        cached_from: str | None = None,
    ) -> None:
        run_id = self.record.run_id
        path: str | None = log_path(run_id, ctx.step)
        try:
            # The live file holds every attempt; the executor's text only the last one.
            data = live.read_bytes() if live.is_file() else outcome.log.encode()
            self.runtime.artifacts.put_bytes(log_path(run_id, ctx.step), data)
        except Exception as exc:
            log.warning("could not keep the log of step %s of run %s: %s", ctx.step, run_id, exc)
            path = None
        self.metrics.update(ctx.metrics)
        self.artifacts.extend(p for p in ctx.artifact_paths if p not in self.artifacts)
        try:
            self.lineage.record(
                project=self.record.project,
                run_id=run_id,
                pipeline=self.pipeline.name,
                step=ctx.step,
                entries=ctx.lineage_entries(),
            )
        except Exception as exc:
            log.warning("could not record the lineage of step %s of run %s: %s", ctx.step, run_id, exc)
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
        ctx.close()
        if path is not None:
            live.unlink(missing_ok=True)
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
                detail=f"cached from run {cached_from}" if cached_from else None,
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
        with contextlib.suppress(OSError):  # the run's live log folder, empty once every log is kept
            live_log_path(self.runtime.state_path, run_id, "-").parent.rmdir()
        message = finish_message(self.runtime, record)
        try:
            self.store.set_message(run_id, message)
            record.message = message
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
