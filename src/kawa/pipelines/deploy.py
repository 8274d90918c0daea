"""`kawa deploy`: what the project's code would change in deployed pipelines and schedules, then apply it.

A deployment records each pipeline as a spec (its steps with the hash of each step's source, their
inputs, resource hints and run policy; the parameters; the pipeline's policy and schedule) together
with where it came from (the folder and, in a git checkout, the commit and whether it had uncommitted
changes). The specs live in the artifact store (`deployments/<project>/current.json`, plus one file per
deployment as history); schedules go through `kawa.schedule.deploy`, which refuses a first run in the
past. Comparing the code's specs with the current deployment gives the plan: pipelines added, changed
(and what changed) and removed, and schedules added, changed, refused and removed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kawa.pipelines.cache import code_hash

if TYPE_CHECKING:
    from kawa.pipelines.pipeline import Pipeline
    from kawa.runtime import Runtime
    from kawa.schedule.deploy import ScheduleChange

ADDED, CHANGED, REMOVED = "added", "changed", "removed"


@dataclass(frozen=True)
class PipelineChange:
    """One pipeline that deploying adds, changes or removes; `details` say what changed."""

    pipeline: str
    action: str  # added | changed | removed
    details: tuple[str, ...] = ()


@dataclass
class DeployPlan:
    """What a deployment would do, and what it is made from."""

    project: str
    pipelines: list[PipelineChange]
    schedules: list[ScheduleChange]
    specs: dict[str, dict[str, Any]]
    source: dict[str, Any]
    deployed: dict[str, Any] | None = field(default=None)  # the current deployment, if any

    @property
    def empty(self) -> bool:
        return not self.pipelines and not self.schedules

    @property
    def refused(self) -> list[ScheduleChange]:
        return [c for c in self.schedules if c.action == "refused"]


def pipeline_spec(pipeline: Pipeline) -> dict[str, Any]:
    """What is deployed of a pipeline: everything that changes what its runs do."""
    schedule = None
    if getattr(pipeline, "schedule", None) is not None:
        from kawa.schedule.deploy import spec_of

        schedule = spec_of(pipeline)
    return {
        "description": pipeline.description,
        "params": pipeline.params_json(),
        "policy": dict(getattr(pipeline, "policy", {}) or {}),
        "schedule": schedule,
        "steps": [
            {
                "name": s.name,
                "code": code_hash(s.fn),
                "inputs": list(s.inputs),
                "resources": s.resources,
                "policy": s.policy,
                "cache": s.cache,
            }
            for s in pipeline.steps
        ],
    }


def plan_deploy(
    runtime: Runtime, project: str, pipelines: Mapping[str, Pipeline], now: datetime | None = None
) -> DeployPlan:
    """Compare the code's pipelines with the current deployment; changes nothing."""
    from kawa.schedule.deploy import plan
    from kawa.schedule.store import ScheduleStore

    now = now or datetime.now(UTC)
    deployed = current_deployment(runtime, project)
    before = (deployed or {}).get("pipelines", {})
    specs = {name: pipeline_spec(p) for name, p in sorted(pipelines.items())}
    changes = [PipelineChange(n, ADDED) for n in specs if n not in before]
    changes += [
        PipelineChange(n, CHANGED, tuple(_differences(before[n], specs[n])))
        for n in specs
        if n in before and before[n] != specs[n]
    ]
    changes += [PipelineChange(n, REMOVED) for n in sorted(before) if n not in specs]
    changes.sort(key=lambda c: c.pipeline)
    schedules = plan(ScheduleStore(runtime.metadata), project, pipelines, now)
    return DeployPlan(project, changes, schedules, specs, source_of(Path(runtime.config.root)), deployed)


def apply_deploy(
    runtime: Runtime, project: str, pipelines: Mapping[str, Pipeline], now: datetime | None = None
) -> DeployPlan:
    """Deploy the code's pipelines and schedules; returns the plan that was applied."""
    from kawa.schedule.deploy import apply
    from kawa.schedule.store import ScheduleStore

    now = now or datetime.now(UTC)
    result = plan_deploy(runtime, project, pipelines, now)
    result.schedules = apply(ScheduleStore(runtime.metadata), project, pipelines, now)
    record = {
        "project": project,
        "deployed_at": now.isoformat(),
        "source": result.source,
        "pipelines": result.specs,
        "changes": [c.__dict__ for c in result.pipelines],
    }
    data = json.dumps(record, indent=1, sort_keys=True, default=str).encode()
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    runtime.artifacts.put_bytes(f"deployments/{project}/history/{stamp}.json", data)
    runtime.artifacts.put_bytes(f"deployments/{project}/current.json", data)
    return result


def current_deployment(runtime: Runtime, project: str) -> dict[str, Any] | None:
    """The project's current deployment record, or None before the first `kawa deploy`."""
    path = f"deployments/{project}/current.json"
    if not runtime.artifacts.exists(path):
        return None
    data: dict[str, Any] = json.loads(runtime.artifacts.get_bytes(path))
    return data


def source_of(root: Path) -> dict[str, Any]:
    """Where the code comes from: the folder, and the git commit and dirtiness of a checkout."""
    source: dict[str, Any] = {"root": str(root), "commit": None, "dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode == 0:
            source["commit"] = commit.stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            source["dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass  # no git: the folder alone says where it came from
    return source


def _differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed between two specs of one pipeline, in words."""
    notes: list[str] = []
    old_steps = {s["name"]: s for s in before.get("steps", [])}
    new_steps = {s["name"]: s for s in after.get("steps", [])}
    for name in new_steps:
        if name not in old_steps:
            notes.append(f"step {name} added")
    for name in old_steps:
        if name not in new_steps:
            notes.append(f"step {name} removed")
    for name, new in new_steps.items():
        old = old_steps.get(name)
        if old is None:
            continue
        for key, label in (
            ("code", "code"),
            ("inputs", "inputs"),
            ("resources", "resources"),
            ("policy", "policy"),
        ):
            if old.get(key) != new.get(key):
                notes.append(f"step {name}: {label} changed")
        if old.get("cache") != new.get("cache"):
            notes.append(f"step {name}: cache {'on' if new.get('cache') else 'off'}")
    if [s["name"] for s in before.get("steps", [])] != [
        s["name"] for s in after.get("steps", [])
    ] and not any("added" in n or "removed" in n for n in notes):
        notes.append("step order changed")
    for key in ("params", "policy", "schedule", "description"):
        if before.get(key) != after.get(key):
            notes.append(
                _param_note(before.get(key), after.get(key)) if key == "params" else f"{key} changed"
            )
    return notes


def _param_note(before: Any, after: Any) -> str:
    before, after = before or {}, after or {}
    parts = [f"+{k}" for k in after if k not in before]
    parts += [f"-{k}" for k in before if k not in after]
    parts += [
        f"{k}: {json.dumps(before[k])} -> {json.dumps(after[k])}"
        for k in after
        if k in before and before[k] != after[k]
    ]
    return "params " + ", ".join(parts)
