"""Lineage records in the metadata store: what each step of each run read and wrote."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, insert, select

from kawa.stores.metadata import MetadataStore
from kawa.stores.metadata.tables import lineage, runs

DIRECTIONS = ("read", "write")
KINDS = ("table", "model")


@dataclass(frozen=True)
class Edge:
    """One read or write of a table (or a partition of it) or a model by one step of one run."""

    run_id: str
    pipeline: str
    step: str
    direction: str  # read | write
    kind: str  # table | model
    name: str
    partition: dict[str, str] | None
    version: str | None
    recorded_at: datetime
    run_status: str = ""
    run_started_at: datetime | None = None

    def entry(self) -> dict[str, Any]:
        """The edge as a RunContext lineage entry."""
        return {
            "direction": self.direction,
            "kind": self.kind,
            "name": self.name,
            "partition": self.partition,
            "version": self.version,
        }


class LineageStore:
    """Writes the lineage of finished steps and answers which runs read or wrote what."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def record(
        self, *, project: str, run_id: str, pipeline: str, step: str, entries: Iterable[dict[str, Any]]
    ) -> int:
        """Store one step's reads and writes (RunContext.lineage entries); returns how many."""
        now = datetime.now(UTC)
        rows = []
        for e in entries:
            if e.get("direction") not in DIRECTIONS or e.get("kind") not in KINDS or not e.get("name"):
                raise ValueError(f"lineage entry {e!r} needs direction read|write, kind table|model, a name")
            rows.append(
                {
                    "project": project,
                    "run_id": run_id,
                    "pipeline": pipeline,
                    "step": step,
                    "direction": e["direction"],
                    "kind": e["kind"],
                    "name": str(e["name"])[:128],
                    "partition": json.dumps(e["partition"], sort_keys=True) if e.get("partition") else None,
                    "version": None if e.get("version") is None else str(e["version"]),
                    "recorded_at": now,
                }
            )
        if rows:
            with self.metadata.begin() as conn:
                conn.execute(insert(lineage), rows)
        return len(rows)

    def for_step(self, run_id: str, step: str) -> list[Edge]:
        """What one step of one run read and wrote."""
        return self._edges(and_(lineage.c.run_id == run_id, lineage.c.step == step))

    def for_run(self, run_id: str) -> list[Edge]:
        """What every step of one run read and wrote."""
        return self._edges(lineage.c.run_id == run_id)

    def for_project(self, project: str, *, names: Sequence[str] | None = None) -> list[Edge]:
        """Every recorded edge of `project` (optionally only about `names`), oldest first."""
        condition = lineage.c.project == project
        if names is not None:
            condition = and_(condition, lineage.c.name.in_(list(names)))
        return self._edges(condition)

    def _edges(self, condition: Any) -> list[Edge]:
        query = (
            select(lineage, runs.c.status, runs.c.started_at)
            .join(runs, runs.c.run_id == lineage.c.run_id)
            .where(condition)
            .order_by(lineage.c.id)
        )
        with self.metadata.connect() as conn:
            return [_edge(row) for row in conn.execute(query).mappings()]


def _edge(row: Any) -> Edge:
    return Edge(
        run_id=row["run_id"],
        pipeline=row["pipeline"],
        step=row["step"],
        direction=row["direction"],
        kind=row["kind"],
        name=row["name"],
        partition=json.loads(row["partition"]) if row["partition"] else None,
        version=row["version"],
        recorded_at=row["recorded_at"],
        run_status=row["status"],
        run_started_at=row["started_at"],
    )
