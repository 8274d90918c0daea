"""Step caching: a step whose code, parameters and inputs are unchanged reuses its earlier result.

The cache key is the sha256 of the step's source code, the values of the parameters it takes, the
digests of the earlier steps' outputs it takes, and the run's logical date when the step takes `ctx`
(its output may depend on it: a partition it writes, a date range it reads). An earlier result with
the same key is reused only if it is still true: its stored output is still there, every table it
read is at the version it read, every table partition it wrote still holds its rows, and every model
it loaded by alias still resolves to the version it loaded. Code outside the step's function (a helper
it calls) is not part of the key: pass `--no-cache` after changing one.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import marshal
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, select

from kawa.lake.table import LakeTable
from kawa.lineage.store import Edge, LineageStore
from kawa.pipelines.handoff import StoredValue
from kawa.pipelines.runs import SUCCEEDED
from kawa.stores.metadata.tables import run_steps, step_results

if TYPE_CHECKING:
    from kawa.pipelines.step import Step
    from kawa.runtime import Runtime


@dataclass(frozen=True)
class CacheHit:
    """An earlier result to reuse: the run it came from, its stored output and what it recorded."""

    run_id: str
    output: StoredValue
    outputs: dict[str, Any]
    metrics: dict[str, Any]
    edges: list[Edge]


def code_hash(fn: Any) -> str:
    """The sha256 of a function's source (its compiled code when the source cannot be read)."""
    try:
        text = textwrap.dedent(inspect.getsource(fn)).encode()
    except (OSError, TypeError):
        text = marshal.dumps(fn.__code__)
    return hashlib.sha256(text).hexdigest()


def cache_key(
    step: Step, params: dict[str, Any], inputs: dict[str, str], logical_date: datetime | None
) -> str:
    """The key of one execution of `step`: see the module doc for what goes in."""
    data = {
        "step": step.name,
        "code": code_hash(step.fn),
        "params": params,
        "inputs": inputs,
        "logical_date": logical_date.astimezone(UTC).isoformat() if logical_date is not None else None,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class StepResults:
    """The `step_results` table: each finished step's stored output, cache key and attempts."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.metadata = runtime.metadata

    def record(
        self,
        *,
        run_id: str,
        step: str,
        project: str,
        pipeline: str,
        cache_key: str | None,
        output: StoredValue | None,
        cached_from: str | None,
        attempts: int,
    ) -> None:
        with self.metadata.begin() as conn:
            conn.execute(
                insert(step_results).values(
                    run_id=run_id,
                    step=step,
                    project=project,
                    pipeline=pipeline,
                    cache_key=cache_key,
                    output=json.dumps(output.to_json()) if output is not None else None,
                    cached_from=cached_from,
                    attempts=attempts,
                    created_at=datetime.now(UTC),
                )
            )

    def get(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The results of one run's steps by step name: output, cache_key, cached_from, attempts."""
        with self.metadata.connect() as conn:
            rows = conn.execute(select(step_results).where(step_results.c.run_id == run_id)).mappings()
            return {
                r["step"]: {
                    "output": json.loads(r["output"]) if r["output"] else None,
                    "cache_key": r["cache_key"],
                    "cached_from": r["cached_from"],
                    "attempts": r["attempts"],
                }
                for r in rows
            }

    def lookup(self, *, project: str, pipeline: str, step: str, key: str, limit: int = 5) -> CacheHit | None:
        """The newest earlier result of `step` under `key` that is still valid, if any."""
        query = (
            select(step_results.c.run_id, step_results.c.output, run_steps.c.outputs, run_steps.c.metrics)
            .join(
                run_steps,
                and_(run_steps.c.run_id == step_results.c.run_id, run_steps.c.step == step_results.c.step),
            )
            .where(
                step_results.c.project == project,
                step_results.c.pipeline == pipeline,
                step_results.c.step == step,
                step_results.c.cache_key == key,
                step_results.c.output.is_not(None),
                run_steps.c.status == SUCCEEDED,
            )
            .order_by(step_results.c.created_at.desc())
            .limit(limit)
        )
        with self.metadata.connect() as conn:
            candidates = list(conn.execute(query).mappings())
        lineage = LineageStore(self.metadata)
        for row in candidates:
            output = StoredValue.from_json(json.loads(row["output"]))
            edges = lineage.for_step(row["run_id"], step)
            if self.runtime.artifacts.exists(output.path) and all(self._holds(project, e) for e in edges):
                return CacheHit(
                    run_id=row["run_id"],
                    output=output,
                    outputs=json.loads(row["outputs"]),
                    metrics=json.loads(row["metrics"]),
                    edges=edges,
                )
        return None

    def _holds(self, project: str, edge: Edge) -> bool:
        """Whether what `edge` recorded is still so (see the module doc)."""
        if edge.kind == "model":
            if edge.direction == "write" or not edge.partition or "alias" not in edge.partition:
                return True
            from kawa.models import Registry

            with Registry.from_runtime(self.runtime) as registry:
                try:
                    return str(registry.resolve(project, edge.name, edge.partition["alias"])) == edge.version
                except Exception:
                    return False
        manifest = LakeTable(self.runtime.lake_root, edge.name, project).manifest()
        if edge.direction == "read" or not edge.partition:
            return str(manifest.version) == edge.version
        return any(f.partition == edge.partition for f in manifest.files)
