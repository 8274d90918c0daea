"""Parameter sweeps: the same training function over a grid of parameters, trials in parallel.

    from kawa.pipelines import sweep

    def fit(num_leaves: int, learning_rate: float, train: pa.Table) -> float:
        ...  # train on `train`, return the validation AUC

    result = sweep(fit, {"num_leaves": [7, 15, 31], "learning_rate": [0.05, 0.1]}, inputs={"train": t})
    result.best.params  # {'num_leaves': 15, 'learning_rate': 0.05}

Where the trials run: `backend="ray"` makes each a Ray task (one CPU each unless `cpus_per_trial`
says otherwise) on the cluster this process is connected to, or that RAY_ADDRESS names;
`backend="local"` a pool of processes on this machine; `auto` picks Ray when this process is already
connected to a cluster (a step run by `RayExecutor` is) and the pool otherwise. In a step,
`ctx.sweep(...)` follows kawa.yaml's `stores.executor`. `inputs` are sent once to each worker (Ray's
object store, or each pool process's start-up), not once per trial.

The function must be defined at the top level of a module (a project code file or an importable
module), as steps are: the workers import it again by module and name.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from numbers import Real
from typing import Any

import msgspec

from kawa.pipelines.step import Step

BACKENDS = ("auto", "local", "ray")
# The swept function as its workers find it: module, qualified name, kawa's Config as plain data, and
# this process's import path (a Ray worker starts with only the driver's working folder on it).
Target = tuple[str, str, Any, list[str]]


class SweepError(ValueError):
    """A sweep cannot run as asked, or every trial failed; the message says why."""


@dataclass(frozen=True)
class Trial:
    """One point of the grid: its parameters, what the function returned, its score, or its error."""

    index: int
    params: dict[str, Any]
    value: Any = None
    score: float | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class SweepResult:
    """Every trial in grid order, the best one, and where they ran."""

    trials: list[Trial]
    best: Trial
    backend: str


def grid_points(grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The parameter sets of `grid`: every combination of a {name: values} grid, or a list as given.

    >>> grid_points({"a": [1, 2], "b": ["x"]})
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
    >>> grid_points([{"a": 1}, {"a": 5, "b": 2}])
    [{'a': 1}, {'a': 5, 'b': 2}]
    """
    if isinstance(grid, Mapping):
        for name, values in grid.items():
            if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
                raise SweepError(f"grid entry {name!r} must be a non-empty list of values, e.g. [7, 15, 31]")
        names = list(grid)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]
    points = [dict(p) for p in grid]
    if not points or not all(isinstance(p, dict) for p in points):
        raise SweepError("a grid is {name: [values]} or a non-empty list of {name: value} parameter sets")
    return points


def sweep(
    fn: Callable[..., Any],
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    *,
    inputs: Mapping[str, Any] | None = None,
    metric: str | None = None,
    mode: str = "max",
    backend: str = "auto",
    max_parallel: int | None = None,
    cpus_per_trial: float = 1.0,
    address: str = "auto",
    config: Any = None,
) -> SweepResult:
    """Call `fn(**params, **inputs)` for every parameter set of `grid`, in parallel; the best by score.

    `fn` returns a number (the score) or a mapping of numbers, of which `metric` is the score. `mode`
    says whether the highest ("max") or lowest ("min") score is best; ties go to the earlier grid
    point, so the result does not depend on which trial ended first. A trial that raises is kept with
    its error; SweepError if every trial failed. `max_parallel` caps the trials running at once (the
    pool's size locally: by default the step's cpus hint, or this machine's CPUs). `config` (kawa's
    Config) lets the workers import a function defined in the project's code files.
    """
    if mode not in ("max", "min"):
        raise SweepError(f"mode {mode!r} must be 'max' (higher scores are better) or 'min'")
    if backend not in BACKENDS:
        raise SweepError(f"backend {backend!r} must be one of {', '.join(BACKENDS)}")
    if isinstance(fn, Step):
        fn = fn.fn  # a @step-decorated function sweeps as its plain function
    module, qualname = getattr(fn, "__module__", "__main__"), getattr(fn, "__qualname__", "")
    if module == "__main__" or "<locals>" in qualname or not qualname:
        raise SweepError(
            f"{module}.{qualname} is defined inside a function or in __main__; a swept function must be "
            "defined at the top level of a module, so the workers can import it"
        )
    points = grid_points(grid)
    plain = msgspec.to_builtins(config) if config is not None else None
    target = (module, qualname, plain, [p for p in sys.path if p])
    shared = dict(inputs or {})
    chosen = _backend(backend)
    if chosen == "ray":
        outcomes = _on_ray(target, points, shared, max_parallel, cpus_per_trial, address)
    else:
        outcomes = _on_pool(target, points, shared, max_parallel)
    trials = [
        _trial(i, p, outcome, metric) for i, (p, outcome) in enumerate(zip(points, outcomes, strict=True))
    ]
    scored = [t for t in trials if t.score is not None]
    if not scored:
        first = next((t for t in trials if t.error), None)
        if first is None:
            raise SweepError("every trial of the sweep failed: no trial returned a score")
        error = (first.error or "").strip()
        raise SweepError(
            f"every trial of the sweep failed; the first ({first.params}): {error.splitlines()[-1]}\n{error}"
        )
    sign = 1.0 if mode == "max" else -1.0
    best = max(scored, key=lambda t: (sign * (t.score or 0.0), -t.index))
    return SweepResult(trials=trials, best=best, backend=chosen)


def _backend(asked: str) -> str:
    if asked != "auto":
        return asked
    ray = sys.modules.get("ray")  # not imported here: a process that never used Ray is not connected
    return "ray" if ray is not None and ray.is_initialized() else "local"


def run_trial(target: Target, params: dict[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    """One trial, in whatever process: {"value", "seconds"} or {"error", "seconds"}."""
    from kawa.pipelines._child import _locate

    started = time.perf_counter()
    try:
        module, qualname, config, path = target
        sys.path.extend(p for p in path if p not in sys.path)
        if config is not None:
            from kawa.config import Config

            config = msgspec.convert(config, Config)
        fn = _locate(module, qualname, config)
        value = fn(**params, **inputs)
    except Exception as exc:
        error = "".join(traceback.format_exception(exc))
        return {"error": error, "seconds": time.perf_counter() - started}
    return {"value": value, "seconds": time.perf_counter() - started}


def _trial(index: int, params: dict[str, Any], outcome: dict[str, Any], metric: str | None) -> Trial:
    seconds = float(outcome.get("seconds", 0.0))
    if "error" in outcome:
        return Trial(index, params, error=outcome["error"], seconds=seconds)
    value = outcome["value"]
    found = value.get(metric) if metric is not None and isinstance(value, Mapping) else value
    if isinstance(found, bool) or not isinstance(found, Real) or not math.isfinite(float(found)):
        what = f"its {metric!r}" if metric is not None else "it"
        return Trial(
            index,
            params,
            value=value,
            error=f"{what} is {found!r}, not a finite number; return a score, or a mapping and pass metric=",
            seconds=seconds,
        )
    return Trial(index, params, value=value, score=float(found), seconds=seconds)


def _on_ray(
    target: Target,
    points: list[dict[str, Any]],
    inputs: dict[str, Any],
    max_parallel: int | None,
    cpus: float,
    address: str,
) -> list[dict[str, Any]]:
    from kawa.pipelines.ray_executor import connect

    connect(address)
    import ray

    remote = ray.remote(run_trial).options(num_cpus=cpus, name="kawa-sweep-trial")
    shared: Any = ray.put(inputs)  # sent once; each task gets it from the object store
    limit = max_parallel or len(points)
    pending: dict[Any, int] = {}
    outcomes: dict[int, dict[str, Any]] = {}
    todo = iter(enumerate(points))
    try:
        for i, params in itertools.islice(todo, limit):
            pending[remote.remote(target, params, shared)] = i
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    outcomes[i] = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died, beyond Ray's retries
                    outcomes[i] = {"error": f"{type(exc).__name__}: {exc}"}
                for j, params in itertools.islice(todo, 1):
                    pending[remote.remote(target, params, shared)] = j
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return [outcomes[i] for i in range(len(points))]


_shared: dict[str, Any] = {}


def _set_inputs(inputs: dict[str, Any]) -> None:
    """Pool process start-up: keep the sweep's inputs for every trial this process runs."""
    _shared.clear()
    _shared.update(inputs)


def _pool_trial(target: Target, params: dict[str, Any]) -> dict[str, Any]:
    return run_trial(target, params, _shared)


def _on_pool(
    target: Target,
    points: list[dict[str, Any]],
    inputs: dict[str, Any],
    max_parallel: int | None,
) -> list[dict[str, Any]]:
    workers = min(len(points), max_parallel or _local_cpus())
    if workers <= 1:
        return [run_trial(target, p, inputs) for p in points]
    # spawn, not fork: the caller may hold threads (DuckDB, the metadata pool) that fork would copy broken.
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_set_inputs, initargs=(inputs,)
    ) as pool:
        return list(pool.map(_pool_trial, itertools.repeat(target), points))


def _local_cpus() -> int:
    """CPUs a local sweep may use: the step's cpus hint when it runs in a step, else this machine's."""
    hinted = os.environ.get("KAWA_STEP_CPUS")
    if hinted and hinted.isdigit():
        return int(hinted)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
