"""Executors run one step of a run; the in-process one runs it here, in order, capturing its output.

The runner talks to an executor only through `run_step`, so the subprocess executor (the default of
`kawa pipeline run` and of scheduled runs, with timeouts and resource limits) or a Ray executor can
replace `InProcessExecutor` without the runner changing.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kawa.pipelines import handoff
from kawa.pipelines._capture import capture
from kawa.pipelines.context import RunContext
from kawa.pipelines.step import Step

if TYPE_CHECKING:
    from kawa.config import Config


@dataclass
class StepCall:
    """One step to run: the step, its inputs by parameter name (ctx included), and its context.

    An input may be a `StoredValue` (an earlier step's stored return value); the executor loads it.
    `log_file` is where the step's output goes while it runs (appended to: a retry adds to it), and
    `timeout_s` how long it may take; an executor that cannot enforce a timeout says so in its docs.
    """

    step: Step
    kwargs: dict[str, Any]
    ctx: RunContext
    timeout_s: float | None = None
    log_file: Path | None = None
    resources: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepOutcome:
    """How a step ended: its return value, or the error with its traceback; plus what it printed.

    `value` may be a `StoredValue` when the executor already stored it (the step ran elsewhere).
    """

    value: Any = None
    error: str | None = None
    log: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    """Runs one step and reports how it ended; it must not raise for an error inside the step.

    What the step recorded through its context (`ctx.metrics`, `ctx.outputs`, `ctx.artifact_paths`,
    `ctx.lineage`) must be in `call.ctx` when `run_step` returns; an executor that runs the step
    elsewhere copies them back. KeyboardInterrupt may propagate: the runner then cancels the run.
    """

    def run_step(self, call: StepCall) -> StepOutcome: ...


class InProcessExecutor:
    """Runs steps in this process, one after another; `echo` also passes their output to stderr.

    It cannot stop a step that runs too long (`timeout_s` is not enforced) nor limit its resources:
    use `SubprocessExecutor` for that. Tests use it for steps defined inside test functions.
    """

    def __init__(self, *, echo: bool = False) -> None:
        self.echo = echo

    def run_step(self, call: StepCall) -> StepOutcome:
        kwargs = {
            k: handoff.load(call.ctx.artifacts, v) if isinstance(v, handoff.StoredValue) else v
            for k, v in call.kwargs.items()
        }
        tee = call.log_file.open("a", encoding="utf-8", buffering=1) if call.log_file else None
        try:
            with capture(echo=self.echo, tee=tee) as sink:
                try:
                    value = call.step.fn(**kwargs)
                except (Exception, SystemExit) as exc:
                    # Leave out this frame: the traceback starts in the step's own code.
                    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
                    error = "".join(traceback.format_exception(type(exc), exc, tb))
                    sink.write(error)
                    return StepOutcome(error=error, log=sink.text())
            return StepOutcome(value=value, log=sink.text())
        finally:
            if tee is not None:
                tee.close()


def executor_for(config: Config) -> Executor:
    """The executor kawa.yaml's `stores.executor` names: `local` (a subprocess per step) or Ray.

    `ray` connects to the cluster RAY_ADDRESS names (or the one started on this machine), `ray://host:port`
    through Ray Client; the connection is made when the first step runs, so a run whose cluster is
    unreachable is recorded as failed with the reason.

    >>> from kawa.config import Config, StoresConfig
    >>> type(executor_for(Config(stores=StoresConfig(executor="ray")))).__name__
    'RayExecutor'
    """
    address = ray_address(config.stores.executor)
    if address is None:
        from kawa.pipelines.process import SubprocessExecutor

        return SubprocessExecutor()
    from kawa.pipelines.ray_executor import RayExecutor

    return RayExecutor(address)


def ray_address(executor: str) -> str | None:
    """The Ray address a `stores.executor` setting names, or None for `local`; ConfigError if neither.

    Steps, sweeps and table-wide batch predictions all follow it.

    >>> ray_address("local"), ray_address("ray"), ray_address("ray://10.0.0.5:10001")
    (None, 'auto', 'ray://10.0.0.5:10001')
    """
    from kawa.config import ConfigError

    spec = executor.strip()
    if spec in ("", "local"):
        return None
    if spec == "ray":
        return "auto"
    if spec.startswith("ray://"):
        return spec
    raise ConfigError(
        f"stores.executor {spec!r} is not one of: local (a subprocess per step), ray (the cluster "
        "RAY_ADDRESS names), ray://host:port (Ray Client)"
    )
