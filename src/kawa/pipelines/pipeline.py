"""Pipelines: named lists of steps, run in the order their inputs demand, with defaulted parameters."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kawa.pipelines.params import ParamError, resolve, to_json
from kawa.pipelines.step import Step, StepDefinitionError, check_policy
from kawa.schedule.spec import Schedule, WaitFor

if TYPE_CHECKING:
    from kawa.config import Config
    from kawa.pipelines.runs import RunRecord
    from kawa.runtime import Runtime

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


class PipelineDefinitionError(StepDefinitionError):
    """A pipeline's steps do not fit together (missing input, cycle, clashing names)."""


class Pipeline:
    """Steps plus parameters; discovered in a project's code by its `__kawa_kind__`.

    >>> from kawa.pipelines.step import step
    >>> @step
    ... def total(numbers: list[int]) -> int:
    ...     return sum(numbers)
    >>> @step
    ... def numbers(upto: int) -> list[int]:
    ...     return list(range(upto))
    >>> p = Pipeline("demo", steps=[total, numbers], params={"upto": 4})
    >>> [s.name for s in p.steps], p.resolve_params({"upto": "10"})
    (['numbers', 'total'], {'upto': 10})
    """

    __kawa_kind__ = "pipeline"

    def __init__(
        self,
        name: str,
        steps: Sequence[Step | Callable[..., Any]],
        params: Mapping[str, Any] | None = None,
        *,
        description: str = "",
        schedule: Schedule | None = None,
        wait_for: Sequence[WaitFor | str] = (),
        max_active_runs: int = 1,
        timeout_s: float | None = None,
        retries: int | None = None,
        retry_backoff_s: float | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise PipelineDefinitionError(
                f"pipeline name {name!r} must start with a letter or _ and hold at most 128 letters, "
                "digits, '_', '-' or '.'"
            )
        self.name = name
        self.description = description
        self.params: dict[str, Any] = dict(params or {})
        for key in self.params:
            if not isinstance(key, str) or not key.isidentifier():
                raise PipelineDefinitionError(
                    f"pipeline {name!r}: parameter name {key!r} must be a Python identifier"
                )
        given = [s if isinstance(s, Step) else Step(s) for s in steps]
        if not given:
            raise PipelineDefinitionError(f"pipeline {name!r} has no steps; pass steps=[...]")
        self.steps: tuple[Step, ...] = _order(name, given, self.params)
        self.schedule, self.wait_for, self.max_active_runs = _scheduling(
            name, schedule, wait_for, max_active_runs
        )
        # Run policy for every step that does not set its own (kawa.pipelines.policy has the defaults).
        self.policy: dict[str, Any] = check_policy(f"pipeline {name!r}", timeout_s, retries, retry_backoff_s)

    def step(self, name: str) -> Step:
        """The step called `name`."""
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"pipeline {self.name!r} has no step {name!r}; steps: {[s.name for s in self.steps]}")

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The parameter values for a run: defaults, with `overrides` (values or text) applied."""
        return resolve(self.name, self.params, overrides)

    def params_json(self) -> dict[str, Any]:
        """The default parameters as JSON data."""
        return {k: to_json(v) for k, v in self.params.items()}

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        runtime: Runtime | None = None,
        experiment: str = "default",
    ) -> RunRecord:
        """Run this pipeline now, in this process, and return its record (see `run_pipeline`)."""
        from kawa.pipelines.runner import run_pipeline
        from kawa.runtime import Runtime

        if runtime is not None:
            return run_pipeline(runtime, self, params, experiment=experiment)
        own = Runtime()
        try:
            return run_pipeline(own, self, params, experiment=experiment)
        finally:
            own.close()

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={[s.name for s in self.steps]!r})"


def project_pipelines(config: Config) -> dict[str, Pipeline]:
    """The pipelines defined in the project's code files, by name."""
    from kawa.project_code import load

    return {name: p for name, p in load(config).get("pipeline", {}).items() if isinstance(p, Pipeline)}


def find_pipeline(config: Config, name: str) -> Pipeline:
    """The project's pipeline called `name`; LookupError listing the known ones otherwise."""
    found = project_pipelines(config)
    if name not in found:
        files = ", ".join(config.code)
        known = ", ".join(sorted(found)) or f"none (kawa looked in {files} under {config.root})"
        raise LookupError(f"no pipeline named {name!r}; pipelines: {known}")
    return found[name]


def _scheduling(
    pipeline: str, schedule: Schedule | None, wait_for: Sequence[WaitFor | str], max_active_runs: int
) -> tuple[Schedule | None, tuple[WaitFor, ...], int]:
    """The schedule, waits and concurrency limit of a pipeline, checked."""
    if schedule is not None and not isinstance(schedule, Schedule):
        raise PipelineDefinitionError(
            f"pipeline {pipeline!r}: schedule must be a Schedule(start=..., every=... or cron=...), "
            f"got {schedule!r}"
        )
    if isinstance(wait_for, str | WaitFor):
        wait_for = [wait_for]
    waits = tuple(w if isinstance(w, WaitFor) else WaitFor(w) for w in wait_for)
    for w in waits:
        if w.pipeline == pipeline:
            raise PipelineDefinitionError(f"pipeline {pipeline!r} cannot wait for itself")
    if len({w.pipeline for w in waits}) != len(waits):
        raise PipelineDefinitionError(f"pipeline {pipeline!r} waits for the same pipeline twice")
    if isinstance(max_active_runs, bool) or not isinstance(max_active_runs, int) or max_active_runs < 1:
        raise PipelineDefinitionError(
            f"pipeline {pipeline!r}: max_active_runs must be a whole number of at least 1, "
            f"got {max_active_runs!r}"
        )
    return schedule, waits, max_active_runs


def _order(pipeline: str, steps: list[Step], params: Mapping[str, Any]) -> tuple[Step, ...]:
    """The steps sorted so each runs after the steps it takes inputs from; ties keep the given order."""
    by_name: dict[str, Step] = {}
    for s in steps:
        if s.name in by_name and by_name[s.name] is not s:
            raise PipelineDefinitionError(f"pipeline {pipeline!r} has two steps called {s.name!r}")
        if s.name in params:
            raise PipelineDefinitionError(
                f"pipeline {pipeline!r}: step {s.name!r} has the name of a parameter; rename one of them"
            )
        by_name[s.name] = s
    needs: dict[str, set[str]] = {}
    for s in by_name.values():
        needs[s.name] = set()
        for name in s.inputs:
            if name in by_name:
                needs[s.name].add(name)
            elif name not in params and name not in s.defaults:
                known = sorted(set(by_name) | set(params))
                raise PipelineDefinitionError(
                    f"pipeline {pipeline!r}: step {s.name!r} takes {name!r}, but no step or parameter has "
                    f"that name (steps and parameters: {', '.join(known)}); add a step named {name!r}, "
                    f"a parameter {name!r}, or a default value"
                )
    ordered: list[Step] = []
    done: set[str] = set()
    while len(ordered) < len(by_name):
        ready = [s for s in by_name.values() if s.name not in done and needs[s.name] <= done]
        if not ready:
            raise PipelineDefinitionError(
                f"pipeline {pipeline!r}: steps {_cycle(needs, done)} form a cycle; a step cannot "
                "depend, directly or not, on its own output"
            )
        ordered.append(ready[0])
        done.add(ready[0].name)
    return tuple(ordered)


def _cycle(needs: dict[str, set[str]], done: set[str]) -> str:
    """One cycle among the steps not yet ordered, written `a -> b -> a`."""
    start = next(name for name in needs if name not in done)
    path = [start]
    while True:
        after = sorted(n for n in needs[path[-1]] if n not in done)[0]
        if after in path:
            loop = [*path[path.index(after) :], after]
            return " -> ".join(reversed(loop))
        path.append(after)


__all__ = ["ParamError", "Pipeline", "PipelineDefinitionError", "find_pipeline", "project_pipelines"]
