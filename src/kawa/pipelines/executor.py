"""Executors run one step of a run; the in-process one runs it here, in order, capturing its output.

The runner talks to an executor only through `run_step`, so one that runs steps in subprocesses
(with timeouts) or on Ray can replace `InProcessExecutor` without the runner changing.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Protocol

from kawa.pipelines._capture import capture
from kawa.pipelines.context import RunContext
from kawa.pipelines.step import Step


@dataclass
class StepCall:
    """One step to run: the step, its inputs by parameter name (ctx included), and its context."""

    step: Step
    kwargs: dict[str, Any]
    ctx: RunContext


@dataclass
class StepOutcome:
    """How a step ended: its return value, or the error with its traceback; plus what it printed."""

    value: Any = None
    error: str | None = None
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    """Runs one step and reports how it ended; it must not raise for an error inside the step.

    What the step recorded through its context (`ctx.metrics`, `ctx.outputs`, `ctx.artifact_paths`)
    must be in `call.ctx` when `run_step` returns; an executor that runs the step elsewhere copies
    them back. KeyboardInterrupt may propagate: the runner then cancels the run.
    """

    def run_step(self, call: StepCall) -> StepOutcome: ...


class InProcessExecutor:
    """Runs steps in this process, one after another; `echo` also passes their output to stderr."""

    def __init__(self, *, echo: bool = False) -> None:
        self.echo = echo

    def run_step(self, call: StepCall) -> StepOutcome:
        with capture(echo=self.echo) as sink:
            try:
                value = call.step.fn(**call.kwargs)
            except (Exception, SystemExit) as exc:
                # Leave out this frame: the traceback starts in the step's own code.
                tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
                error = "".join(traceback.format_exception(type(exc), exc, tb))
                sink.write(error)
                return StepOutcome(error=error, log=sink.text())
        return StepOutcome(value=value, log=sink.text())
