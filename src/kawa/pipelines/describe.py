"""The project's pipelines as plain data: steps and how they connect, parameters, schedule, latest run.

`GET /v1/pipelines` serves it and the UI's pipelines page draws it, so both show the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from kawa.pipelines.params import show, to_json
from kawa.pipelines.runs import RunStore

if TYPE_CHECKING:
    from kawa.pipelines.pipeline import Pipeline
    from kawa.schedule.overview import ScheduleView
    from kawa.stores.metadata import MetadataStore


def param_kind(default: Any) -> str:
    """What kind of value a parameter takes, judged by its default (as `kawa pipeline run -p` parses it).

    >>> param_kind(0.5), param_kind(True), param_kind(date(2026, 1, 1)), param_kind(None)
    ('float', 'bool', 'date', 'any')
    """
    kinds = [(bool, "bool"), (int, "int"), (float, "float"), (datetime, "datetime"), (date, "date")]
    kinds += [(str, "str"), (list, "list"), (dict, "dict")]
    for kind, name in kinds:
        if type(default) is kind:
            return name
    return "any"


def step_edges(pipeline: Pipeline) -> list[tuple[str, str]]:
    """(from, to) for each step that takes another step's output, in run order."""
    names = {s.name for s in pipeline.steps}
    return [(name, s.name) for s in pipeline.steps for name in s.inputs if name in names]


def describe_pipeline(pipeline: Pipeline) -> dict[str, Any]:
    """A pipeline's description, parameters (default, kind, text as typed after `-p name=`) and steps."""
    names = {s.name for s in pipeline.steps}
    return {
        "name": pipeline.name,
        "description": pipeline.description,
        "params": [
            {"name": k, "default": to_json(v), "kind": param_kind(v), "text": show(v)}
            for k, v in pipeline.params.items()
        ],
        "steps": [
            {
                "name": s.name,
                "description": s.description,
                "after": [n for n in s.inputs if n in names],
                "params": [n for n in s.inputs if n in pipeline.params],
                "resources": s.resources,
                "policy": s.policy,
                "cache": s.cache,
            }
            for s in pipeline.steps
        ],
        "edges": [list(e) for e in step_edges(pipeline)],
        "wait_for": [w.pipeline for w in pipeline.wait_for],
        "max_active_runs": pipeline.max_active_runs,
    }


def form_overrides(pipeline: Pipeline, texts: Mapping[str, str]) -> dict[str, str]:
    """The parameters a form changed: each text that differs from its default as shown.

    A form sends every field; only the changed ones become overrides, so an untouched field keeps its
    default exactly (a None default stays None rather than becoming the text "null").
    """
    changed: dict[str, str] = {}
    for name, text in texts.items():
        if name in pipeline.params and text.strip() == show(pipeline.params[name]).strip():
            continue
        changed[name] = text
    return changed


def pipelines_overview(
    metadata: MetadataStore, project: str, pipelines: Mapping[str, Pipeline], now: datetime
) -> list[dict[str, Any]]:
    """Every pipeline by name: `describe_pipeline` plus its schedule and its latest run in `project`."""
    from kawa.schedule.overview import overview

    schedules = {v.pipeline: v for v in overview(metadata, project, pipelines, now)}
    store = RunStore(metadata)
    out = []
    for name in sorted(pipelines):
        data = describe_pipeline(pipelines[name])
        view = schedules.get(name)
        data["schedule"] = _schedule(view) if view is not None and pipelines[name].schedule else None
        latest = store.list(project, pipeline=name, limit=1)
        data["latest_run"] = (
            {
                "run_id": latest[0].run_id,
                "status": latest[0].status,
                "experiment": latest[0].experiment,
                "created_at": latest[0].created_at.isoformat(),
            }
            if latest
            else None
        )
        out.append(data)
    return out


def _schedule(view: ScheduleView) -> dict[str, Any]:
    return {
        "description": view.schedule,
        "timezone": view.timezone,
        "status": view.status,
        "next_run": view.next_runs[0].isoformat() if view.next_runs else None,
        "last_logical_date": view.last.logical_date.isoformat() if view.last else None,
        "last_status": view.last_status,
        "queued": view.queued,
        "running": view.running,
        "error": view.error,
    }


def run_steps(steps: list[str], pipeline: Pipeline | None) -> dict[str, Any]:
    """The steps of a recorded run (names in run order) with the edges between them, in the shape of
    `describe_pipeline`: the edges of the pipeline's code when it still has these steps, else a chain.
    """
    if pipeline is not None and {s.name for s in pipeline.steps} >= set(steps):
        edges = [e for e in step_edges(pipeline) if e[0] in steps and e[1] in steps]
    else:  # the code changed since (or is gone): the run order is what is known
        edges = list(pairwise(steps))
    after: dict[str, list[str]] = {name: [] for name in steps}
    for source, target in edges:
        after[target].append(source)
    return {
        "steps": [{"name": name, "after": after[name]} for name in steps],
        "edges": [list(e) for e in edges],
    }
