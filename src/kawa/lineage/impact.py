"""Impact of a table: everything downstream of it, and which of that is failing, blocked or stale.

- failing: the pipeline's own latest run failed (or timed out, or was cancelled).
- blocked: a pipeline upstream of it, on the way from the table, is failing or blocked: its inputs
  will not be refreshed, so it would fail or go stale too. This includes the table itself: when the
  latest run of the pipeline that writes it failed, everything downstream is blocked.
- stale: its latest run read an input that has changed since (a table at an older manifest version,
  a model that got a newer version), so its outputs are behind; and so is everything made from them.
- ok: none of these.

A table or model written by a pipeline takes that pipeline's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kawa.lake.table import LakeTable
from kawa.lineage.graph import BAD_ENDINGS, Dataset, LineageGraph, PipelineNode

OK, STALE, FAILING, BLOCKED = "ok", "stale", "failing", "blocked"


@dataclass(frozen=True)
class Impact:
    """One thing downstream of the table: a pipeline, or a table or model one writes."""

    depth: int
    kind: str  # pipeline | table | model
    name: str
    status: str  # ok | stale | failing | blocked
    reason: str
    via: str | None = None  # for a table or model: the pipeline that writes it

    def to_json(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "via": self.via,
        }


def impact(graph: LineageGraph, dataset: Dataset, *, lake_root: Path, project: str) -> list[Impact]:
    """Everything downstream of `dataset`, nearest first, each with its status and why."""
    root_status, root_reason = OK, ""
    for writer in graph.writers(dataset):
        if writer.latest_status in BAD_ENDINGS:
            root_status = BLOCKED
            root_reason = f"{dataset} is not fresh: the latest run of {writer.name} ({writer.latest_run}) "
            root_reason += f"ended {writer.latest_status}"
    found: list[Impact] = []
    seen: set[str] = set()
    todo: list[tuple[Dataset, int, str, str]] = [(dataset, 1, root_status, root_reason)]
    while todo:
        current, depth, inherited, why = todo.pop(0)
        for node in graph.readers(current):
            if node.name in seen:
                continue
            seen.add(node.name)
            status, reason = _pipeline_state(node, inherited, why, graph, lake_root, project)
            found.append(Impact(depth, "pipeline", node.name, status, reason))
            for target in sorted(node.writes):
                found.append(Impact(depth, target.kind, target.name, status, reason, via=node.name))
                # Passed on naming where it started, not every hop in between.
                if status == FAILING:
                    todo.append((target, depth + 1, BLOCKED, f"upstream {node.name} is failing: {reason}"))
                elif status == STALE:
                    cause = (
                        reason
                        if reason.startswith("upstream ")
                        else f"upstream {node.name} is stale: {reason}"
                    )
                    todo.append((target, depth + 1, STALE, cause))
                else:
                    todo.append((target, depth + 1, status, reason))
    return found


def _pipeline_state(
    node: PipelineNode, inherited: str, why: str, graph: LineageGraph, lake_root: Path, project: str
) -> tuple[str, str]:
    if node.latest_status in BAD_ENDINGS:
        return FAILING, f"its latest run {node.latest_run} ended {node.latest_status}"
    if inherited == BLOCKED:
        return BLOCKED, why
    changed = _changed_inputs(node, graph, lake_root, project)
    if inherited == STALE:
        changed.append(why)
    if changed:
        return STALE, "; ".join(changed)
    return OK, ""


def _changed_inputs(node: PipelineNode, graph: LineageGraph, lake_root: Path, project: str) -> list[str]:
    """Why each input of `node` has changed since its latest run read it (empty: none has)."""
    notes: list[str] = []
    for dataset, edges in sorted(node.reads.items()):
        read_at = max((e.recorded_at for e in edges), default=None)
        if dataset.kind == "table":
            now = str(LakeTable(lake_root, dataset.name, project).manifest().version)
            # Its own writes to a table it also reads do not make it stale.
            own = node.writes.get(dataset, [])
            versions = {e.version for e in (*edges, *own) if e.version is not None}
            if versions and now not in versions:
                notes.append(f"read {dataset} at version {max(versions, key=int)}, now at {now}")
            continue
        # Compared by version, not by when a write was recorded: a cached rerun of the training step
        # records its earlier write again, of the version already loaded, and that is nothing new.
        loaded = max((_number(e.version) for e in edges), default=None)
        newest = max(
            (
                _number(e.version)
                for e in graph.all_edges
                if e.direction == "write" and e.kind == dataset.kind and e.name == dataset.name
            ),
            default=None,
        )
        if read_at is not None and loaded is not None and newest is not None and newest > loaded:
            notes.append(f"{dataset} has a newer version ({newest}) than the one it loaded ({loaded})")
    return notes


def _number(version: str | None) -> int:
    """A model version as a number (-1 when unknown)."""
    try:
        return int(version) if version is not None else -1
    except ValueError:
        return -1
