"""The lineage graph as nodes and edges for a drawing, and what one node is about: its runs and docs.

`GET /v1/lineage` serves `graph_json`; `GET /v1/lineage/{name}/runs` serves `runs_touching`; the UI's
lineage page draws the one and shows the other when a node is clicked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from kawa.lineage.graph import Dataset, LineageGraph
from kawa.stores.metadata import MetadataStore
from kawa.stores.metadata.tables import lineage, runs


def node_id(kind: str, name: str) -> str:
    """The id of a node: `table:orders`, `model:loyalty`, `pipeline:daily_kpis`."""
    return f"{kind}:{name}"


def graph_json(graph: LineageGraph) -> dict[str, Any]:
    """Every table, model and pipeline as a node, and every read (dataset -> pipeline) and write
    (pipeline -> dataset) as an edge, with the steps that did it."""
    nodes: list[dict[str, Any]] = [
        {"id": node_id(d.kind, d.name), "kind": d.kind, "name": d.name} for d in graph.datasets()
    ]
    edges: list[dict[str, Any]] = []
    for name in sorted(graph.pipelines):
        node = graph.pipelines[name]
        nodes.append(
            {
                "id": node_id("pipeline", name),
                "kind": "pipeline",
                "name": name,
                "latest_run": node.latest_run,
                "latest_status": node.latest_status,
                "steps": node.steps,
            }
        )
        for dataset, found in sorted(node.reads.items()):
            steps = sorted({e.step for e in found})
            edges.append(_edge(node_id(dataset.kind, dataset.name), node_id("pipeline", name), "read", steps))
        for dataset, found in sorted(node.writes.items()):
            steps = sorted({e.step for e in found})
            edges.append(
                _edge(node_id("pipeline", name), node_id(dataset.kind, dataset.name), "write", steps)
            )
    return {"nodes": nodes, "edges": edges}


def _edge(source: str, target: str, direction: str, steps: list[str]) -> dict[str, Any]:
    return {"source": source, "target": target, "direction": direction, "steps": steps}


@dataclass(frozen=True)
class TouchingRun:
    """A run that read or wrote a dataset: which, how it went, and what its steps did with it."""

    run_id: str
    pipeline: str
    status: str
    started_at: datetime | None
    directions: tuple[str, ...]  # read, write or both

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "directions": list(self.directions),
        }


def runs_touching(
    metadata: MetadataStore, project: str, dataset: Dataset, limit: int = 10
) -> list[TouchingRun]:
    """The newest runs of `project` that read or wrote `dataset`, newest first."""
    newest = (
        select(lineage.c.run_id)
        .where(lineage.c.project == project, lineage.c.name == dataset.name, lineage.c.kind == dataset.kind)
        .group_by(lineage.c.run_id)
        .order_by(lineage.c.run_id.desc())
        .limit(max(1, limit))
        .subquery()
    )
    query = (
        select(
            runs.c.run_id,
            runs.c.pipeline,
            runs.c.status,
            runs.c.started_at,
            func.min(lineage.c.direction).label("first"),
            func.max(lineage.c.direction).label("last"),
        )
        .join(newest, newest.c.run_id == runs.c.run_id)
        .join(lineage, lineage.c.run_id == runs.c.run_id)
        .where(lineage.c.name == dataset.name, lineage.c.kind == dataset.kind)
        .group_by(runs.c.run_id, runs.c.pipeline, runs.c.status, runs.c.started_at)
        .order_by(runs.c.run_id.desc())
    )
    with metadata.connect() as conn:
        rows = conn.execute(query).all()
    return [
        TouchingRun(r.run_id, r.pipeline, r.status, r.started_at, tuple(sorted({r.first, r.last})))
        for r in rows
    ]


def table_docs(root: Path, name: str) -> dict[str, Any] | None:
    """What the project's catalog files (or kawa, for its own tables) say about table `name`, if anything."""
    from kawa.catalog import load_docs

    doc = load_docs(root).get(name)
    if doc is None:
        return None
    return {
        "description": doc.description,
        "owner": doc.owner,
        "source": doc.source,
        "columns": {c: {"description": d.description, "owner": d.owner} for c, d in doc.columns.items()},
    }
