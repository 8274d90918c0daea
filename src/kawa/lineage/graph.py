"""The lineage graph of a project: pipelines between the tables and models they read and write.

Built from the most recent run of each pipeline step that recorded lineage, so it follows the
pipelines as they are now. A pipeline is one node: it reads what any of its steps read and writes
what any of them wrote (steps hand values to each other inside a run, not through the warehouse).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kawa.lineage.store import Edge, LineageStore
from kawa.stores.metadata import MetadataStore

BAD_ENDINGS = frozenset({"failed", "timeout", "cancelled"})


@dataclass(frozen=True, order=True)
class Dataset:
    """A table or a model, by kind and name."""

    kind: str  # table | model
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass
class PipelineNode:
    """A pipeline as lineage sees it: what it reads and writes, and how its latest run went."""

    name: str
    reads: dict[Dataset, list[Edge]] = field(default_factory=dict)
    writes: dict[Dataset, list[Edge]] = field(default_factory=dict)
    latest_run: str | None = None
    latest_status: str | None = None
    latest_started_at: datetime | None = None

    @property
    def steps(self) -> list[str]:
        names = {e.step for edges in (*self.reads.values(), *self.writes.values()) for e in edges}
        return sorted(names)


@dataclass(frozen=True)
class Link:
    """One hop of an upstream or downstream walk: `dataset` via `pipeline`, `depth` hops away."""

    depth: int
    pipeline: str
    dataset: Dataset
    steps: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "pipeline": self.pipeline,
            "kind": self.dataset.kind,
            "name": self.dataset.name,
            "steps": list(self.steps),
        }


class LineageGraph:
    """Who reads and writes what; `upstream` and `downstream` walk it from a table or model."""

    def __init__(self, edges: Iterable[Edge]) -> None:
        latest: dict[tuple[str, str], str] = {}  # (pipeline, step) -> newest run that recorded lineage
        kept: list[Edge] = []
        all_edges = list(edges)
        for e in all_edges:
            latest[e.pipeline, e.step] = max(latest.get((e.pipeline, e.step), ""), e.run_id)
        self.pipelines: dict[str, PipelineNode] = {}
        for e in all_edges:
            if latest[e.pipeline, e.step] != e.run_id:
                continue
            kept.append(e)
            node = self.pipelines.setdefault(e.pipeline, PipelineNode(e.pipeline))
            side = node.reads if e.direction == "read" else node.writes
            side.setdefault(Dataset(e.kind, e.name), []).append(e)
        self.edges = kept
        self.all_edges = all_edges

    @classmethod
    def load(cls, metadata: MetadataStore, project: str) -> LineageGraph:
        """The graph of `project` from its recorded lineage, with each pipeline's latest run."""
        from kawa.pipelines.runs import RunStore

        graph = cls(LineageStore(metadata).for_project(project))
        store = RunStore(metadata)
        for name, node in graph.pipelines.items():
            newest = store.list(project, pipeline=name, limit=1)
            if newest:
                node.latest_run = newest[0].run_id
                node.latest_status = newest[0].status
                node.latest_started_at = newest[0].started_at
        return graph

    def datasets(self) -> list[Dataset]:
        """Every table and model the graph knows."""
        found = {d for node in self.pipelines.values() for d in (*node.reads, *node.writes)}
        return sorted(found)

    def find(self, name: str) -> list[Dataset]:
        """The datasets called `name` (`table:x` or `model:x` picks one kind)."""
        kind, sep, rest = name.partition(":")
        if sep and kind in ("table", "model"):
            return [d for d in self.datasets() if d.kind == kind and d.name == rest]
        return [d for d in self.datasets() if d.name == name]

    def writers(self, dataset: Dataset) -> list[PipelineNode]:
        return [n for n in self.pipelines.values() if dataset in n.writes]

    def readers(self, dataset: Dataset) -> list[PipelineNode]:
        return [n for n in self.pipelines.values() if dataset in n.reads]

    def upstream(self, dataset: Dataset) -> list[Link]:
        """What `dataset` is made from: each pipeline that writes it and what that reads, recursively."""
        links: list[Link] = []
        seen: set[tuple[str, Dataset]] = set()
        todo = [(dataset, 1)]
        while todo:
            current, depth = todo.pop(0)
            for node in self.writers(current):
                for source, edges in sorted(node.reads.items()):
                    if (node.name, source) in seen:
                        continue
                    seen.add((node.name, source))
                    links.append(Link(depth, node.name, source, _steps(edges)))
                    todo.append((source, depth + 1))
        return links

    def downstream(self, dataset: Dataset) -> list[Link]:
        """What is made from `dataset`: each pipeline that reads it and what that writes, recursively."""
        links: list[Link] = []
        seen: set[tuple[str, Dataset]] = set()
        todo = [(dataset, 1)]
        while todo:
            current, depth = todo.pop(0)
            for node in self.readers(current):
                for target, edges in sorted(node.writes.items()):
                    if (node.name, target) in seen:
                        continue
                    seen.add((node.name, target))
                    links.append(Link(depth, node.name, target, _steps(edges)))
                    todo.append((target, depth + 1))
        return links


def _steps(edges: list[Edge]) -> tuple[str, ...]:
    return tuple(sorted({e.step for e in edges}))


def describe(graph: LineageGraph, dataset: Dataset) -> dict[str, Any]:
    """Everything lineage knows about `dataset`, as JSON data (what the CLI prints and the API serves)."""

    def pipeline(node: PipelineNode, edges: list[Edge]) -> dict[str, Any]:
        partitions = sorted({json_partition(e.partition) for e in edges if e.partition}, key=str)
        return {
            "pipeline": node.name,
            "steps": list(_steps(edges)),
            "partitions": partitions,
            "latest_run": node.latest_run,
            "latest_status": node.latest_status,
        }

    return {
        "kind": dataset.kind,
        "name": dataset.name,
        "written_by": [pipeline(n, n.writes[dataset]) for n in graph.writers(dataset)],
        "read_by": [pipeline(n, n.reads[dataset]) for n in graph.readers(dataset)],
        "upstream": [link.to_json() for link in graph.upstream(dataset)],
        "downstream": [link.to_json() for link in graph.downstream(dataset)],
    }


def json_partition(partition: dict[str, str]) -> str:
    """A partition as `column=value` text."""
    return ",".join(f"{k}={v}" for k, v in sorted(partition.items()))
