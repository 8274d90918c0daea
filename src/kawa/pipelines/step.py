"""Steps: plain functions whose name is the value they produce and whose parameters are their inputs."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, overload

# A parameter with one of these names, or annotated as RunContext, receives the run's context.
CONTEXT_NAMES = frozenset({"ctx", "context"})
_MEMORY = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?)?B", re.IGNORECASE)


class StepDefinitionError(ValueError):
    """A step is declared in a way kawa cannot run; the message says how to fix it."""


class Step:
    """A pipeline step: the wrapped function, its inputs (parameter names) and resource hints.

    `policy` holds what the step sets of its run policy (timeout_s, retries, retry_backoff_s), over
    the pipeline's and kawa's defaults; `cache=False` always runs it (a step with effects outside
    kawa, such as sending e-mail). Calling a step calls the function, so steps stay testable as plain
    functions.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        resources: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None,
        cache: bool = True,
    ) -> None:
        if not callable(fn) or not hasattr(fn, "__name__"):
            raise StepDefinitionError(f"@step needs a function, got {fn!r}")
        self.fn = fn
        self.name: str = fn.__name__
        if not self.name.isidentifier():
            raise StepDefinitionError(f"step {self.name!r}: a step must be a named function, not a lambda")
        self.resources: dict[str, Any] = dict(resources or {})
        self.policy: dict[str, Any] = dict(policy or {})
        self.cache = cache
        self.inputs: tuple[str, ...] = ()
        self.defaults: dict[str, Any] = {}
        self.context_param: str | None = None
        self._read_signature()
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def description(self) -> str:
        """The first line of the function's docstring, or ""."""
        return (inspect.getdoc(self.fn) or "").strip().split("\n", 1)[0]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Step({self.name!r}, inputs={list(self.inputs)!r})"

    def _read_signature(self) -> None:
        inputs: list[str] = []
        for param in inspect.signature(self.fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise StepDefinitionError(
                    f"step {self.name!r}: parameter {param.name!r} must be a plain named parameter; "
                    "a step's inputs are matched by name (no *args, **kwargs or positional-only)"
                )
            if _is_context(param):
                self.context_param = param.name
                continue
            inputs.append(param.name)
            if param.default is not param.empty:
                self.defaults[param.name] = param.default
        self.inputs = tuple(inputs)


def _is_context(param: inspect.Parameter) -> bool:
    annotation = param.annotation
    if isinstance(annotation, str):
        return annotation.rsplit(".", 1)[-1] == "RunContext"
    if getattr(annotation, "__name__", None) == "RunContext":
        return True
    return param.name in CONTEXT_NAMES and annotation is param.empty


def check_resources(name: str, cpus: float | None, memory: str | None, gpu: int | None) -> dict[str, Any]:
    """The resource hints of step `name` as stored in run_steps.resources; refuses malformed ones."""
    hints: dict[str, Any] = {}
    if cpus is not None:
        if isinstance(cpus, bool) or not isinstance(cpus, int | float) or cpus <= 0:
            raise StepDefinitionError(f"step {name!r}: cpus={cpus!r} must be a positive number, e.g. cpus=2")
        hints["cpus"] = cpus
    if memory is not None:
        if not isinstance(memory, str) or not _MEMORY.fullmatch(memory.strip()):
            raise StepDefinitionError(
                f"step {name!r}: memory={memory!r} must be a size such as '512MB', '8GB' or '16GiB'"
            )
        hints["memory"] = memory.strip()
    if gpu is not None:
        if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
            raise StepDefinitionError(f"step {name!r}: gpu={gpu!r} must be a whole number, e.g. gpu=1")
        hints["gpu"] = gpu
    return hints


def check_policy(
    owner: str, timeout_s: float | None, retries: int | None, retry_backoff_s: float | None
) -> dict[str, Any]:
    """The run policy settings given for `owner` (a step or pipeline); refuses malformed ones."""
    policy: dict[str, Any] = {}
    if timeout_s is not None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
            raise StepDefinitionError(
                f"{owner}: timeout_s={timeout_s!r} must be a positive number of seconds"
            )
        policy["timeout_s"] = float(timeout_s)
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise StepDefinitionError(f"{owner}: retries={retries!r} must be a whole number, 0 or more")
        policy["retries"] = retries
    if retry_backoff_s is not None:
        if (
            isinstance(retry_backoff_s, bool)
            or not isinstance(retry_backoff_s, int | float)
            or retry_backoff_s < 0
        ):
            raise StepDefinitionError(
                f"{owner}: retry_backoff_s={retry_backoff_s!r} must be 0 or more seconds"
            )
        policy["retry_backoff_s"] = float(retry_backoff_s)
    return policy


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    cpus: float | None = None,
    memory: str | None = None,
    gpu: int | None = None,
    timeout_s: float | None = None,
    retries: int | None = None,
    retry_backoff_s: float | None = None,
    cache: bool = True,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    cpus: float | None = None,
    memory: str | None = None,
    gpu: int | None = None,
    timeout_s: float | None = None,
    retries: int | None = None,
    retry_backoff_s: float | None = None,
    cache: bool = True,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step: `@step` or `@step(cpus=2, memory="8GB", gpu=0, timeout_s=600)`.

    `timeout_s`, `retries` and `retry_backoff_s` override the pipeline's run policy for this step;
    `cache=False` runs it every time even when its inputs are unchanged.

    >>> @step(memory="2GB")
    ... def cleaned(raw: list[int]) -> list[int]:
    ...     return [x for x in raw if x >= 0]
    >>> cleaned.inputs, cleaned.resources, cleaned([1, -2, 3])
    (('raw',), {'memory': '2GB'}, [1, 3])
    """

    def wrap(function: Callable[..., Any]) -> Step:
        if isinstance(function, Step):
            raise StepDefinitionError(f"step {function.name!r} is decorated with @step twice")
        name = getattr(function, "__name__", repr(function))
        return Step(
            function,
            resources=check_resources(name, cpus, memory, gpu),
            policy=check_policy(f"step {name!r}", timeout_s, retries, retry_backoff_s),
            cache=cache,
        )

    return wrap(fn) if fn is not None else wrap
