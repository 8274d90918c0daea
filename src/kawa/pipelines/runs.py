"""The record of pipeline runs and their steps in the metadata store, and queries over it."""

from __future__ import annotations

import builtins
import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from kawa.auth import validate_project_name
from kawa.schedule import _owner
from kawa.stores.metadata import MetadataStore
from kawa.stores.metadata.tables import projects, run_steps, runs

# Run and step statuses; a step not reached because an earlier one failed is `skipped`.
QUEUED, RUNNING, SUCCEEDED, FAILED, SKIPPED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
)
# A step stopped for running past its timeout, and the run it ended.
TIMEOUT = "timeout"
FINISHED = frozenset({SUCCEEDED, FAILED, SKIPPED, CANCELLED, TIMEOUT})

_id_lock = threading.Lock()
_last_us = 0


def new_run_id() -> str:
    """A unique run id that sorts by creation time: 14 hex digits of microseconds plus 6 random.

    >>> a, b = new_run_id(), new_run_id()
    >>> len(a), a < b
    (20, True)
    """
    global _last_us
    with _id_lock:
        # Strictly increasing within a process, even when the clock stands still or steps back.
        now = max(time.time_ns() // 1000, _last_us + 1)
        _last_us = now
    return f"{now:014x}{os.urandom(3).hex()}"


@dataclass
class StepRecord:
    """One step of a recorded run."""

    step: str
    position: int
    status: str
    resources: dict[str, Any]
    outputs: dict[str, Any]
    metrics: dict[str, Any]
    artifacts: list[str]
    log: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish (None until both are known)."""
        return _duration(self.started_at, self.finished_at)


@dataclass
class RunRecord:
    """A recorded pipeline run, with its steps in run order when read by `RunStore.get`."""

    run_id: str
    project: str
    pipeline: str
    experiment: str
    kind: str
    status: str
    logical_date: datetime | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    artifacts: list[str]
    message: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepRecord] = field(default_factory=list)
    owner: str | None = None  # the process holding it while queued or running (host:pid:start time)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish (None until both are known)."""
        return _duration(self.started_at, self.finished_at)

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED


class RunStore:
    """Runs and steps in the metadata store: the runner writes them, the CLI and API read them."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    # -- reads --------------------------------------------------------------------------------------

    def list(
        self,
        project: str,
        *,
        pipeline: str | None = None,
        experiment: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> builtins.list[RunRecord]:
        """The newest runs of `project` first, optionally of one pipeline, experiment or status.

        Manual runs whose process is gone are settled as failed first (see `kawa.pipelines.active`).
        """
        from kawa.pipelines.active import settle_orphans

        settle_orphans(self.metadata, project, pipeline)
        query = select(runs).where(runs.c.project == project)
        if pipeline is not None:
            query = query.where(runs.c.pipeline == pipeline)
        if experiment is not None:
            query = query.where(runs.c.experiment == experiment)
        if status is not None:
            query = query.where(runs.c.status == status)
        query = query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(max(0, limit))
        with self.metadata.connect() as conn:
            return [_run(row) for row in conn.execute(query).mappings()]

    def get(self, run_id: str) -> RunRecord | None:
        """The run with its steps in run order; None if there is no such run.

        A manual run whose process is gone is settled as failed first (see `kawa.pipelines.active`).
        """
        from kawa.pipelines.active import orphaned, settle_orphans

        held = select(runs.c.project, runs.c.pipeline, runs.c.status, runs.c.kind, runs.c.owner)
        with self.metadata.connect() as conn:
            now = conn.execute(held.where(runs.c.run_id == run_id)).first()
        if now is not None and orphaned(now.status, now.kind, now.owner):
            settle_orphans(self.metadata, now.project, now.pipeline)
        with self.metadata.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).mappings().first()
            if row is None:
                return None
            steps = conn.execute(
                select(run_steps).where(run_steps.c.run_id == run_id).order_by(run_steps.c.position)
            ).mappings()
            record = _run(row)
            record.steps = [_step(s) for s in steps]
        return record

    def resolve(self, prefix: str, project: str | None = None) -> str:
        """The full id of the one run whose id starts with `prefix`; LookupError if none or several."""
        if not prefix or not all(c in "0123456789abcdef" for c in prefix.lower()):
            raise LookupError(f"{prefix!r} is not a run id; run ids are hex, see `kawa runs list`")
        query = select(runs.c.run_id).where(runs.c.run_id.startswith(prefix.lower(), autoescape=True))
        if project is not None:
            query = query.where(runs.c.project == project)
        with self.metadata.connect() as conn:
            found = list(conn.scalars(query.limit(2)))
        if not found:
            raise LookupError(f"no run with id {prefix!r}; see `kawa runs list`")
        if len(found) > 1:
            raise LookupError(f"run id {prefix!r} is ambiguous; give more of it")
        return found[0]

    # -- writes (by the runner) ---------------------------------------------------------------------

    def create(
        self,
        *,
        project: str,
        pipeline: str,
        experiment: str,
        kind: str,
        params: dict[str, Any],
        logical_date: datetime | None,
        steps: Sequence[tuple[str, dict[str, Any]]],
        guard: Callable[[Connection, str], None] | None = None,
    ) -> RunRecord:
        """Record a queued run and its queued steps (name, resource hints) in run order.

        This process holds the run (its owner) until one starts it. `guard(conn, project)` runs in
        the same write transaction first and may raise to refuse the run (e.g. `max_active_runs`).
        """
        validate_project_name(project)
        run_id = new_run_id()
        now = _now()
        with self.metadata.begin() as conn:
            if guard is not None:
                guard(conn, project)
            if conn.execute(select(projects.c.name).where(projects.c.name == project)).first() is None:
                conn.execute(insert(projects).values(name=project, created_at=now))
            conn.execute(
                insert(runs).values(
                    run_id=run_id,
                    project=project,
                    pipeline=pipeline,
                    experiment=experiment,
                    kind=kind,
                    status=QUEUED,
                    logical_date=logical_date,
                    params=_dump(params),
                    metrics="{}",
                    artifacts="[]",
                    created_at=now,
                    owner=_owner.me(),
                )
            )
            if steps:
                conn.execute(
                    insert(run_steps),
                    [
                        {
                            "run_id": run_id,
                            "step": name,
                            "position": i,
                            "status": QUEUED,
                            "resources": _dump(resources),
                            "outputs": "{}",
                            "metrics": "{}",
                            "artifacts": "[]",
                        }
                        for i, (name, resources) in enumerate(steps)
                    ],
                )
        record = self.get(run_id)
        assert record is not None
        return record

    def start(self, run_id: str) -> datetime:
        """Mark the run running, held by this process; returns its start time."""
        now = _now()
        self._update_run(run_id, status=RUNNING, started_at=now, owner=_owner.me())
        return now

    def start_step(self, run_id: str, step: str) -> datetime:
        """Mark one step running; returns its start time."""
        now = _now()
        self._update_step(run_id, step, status=RUNNING, started_at=now)
        return now

    def finish_step(
        self,
        run_id: str,
        step: str,
        *,
        status: str,
        outputs: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        artifacts: builtins.list[str] | None = None,
        log: str | None = None,
        error: str | None = None,
    ) -> datetime:
        """Record how a step ended and what it produced; returns its finish time."""
        now = _now()
        self._update_step(
            run_id,
            step,
            status=status,
            outputs=_dump(outputs or {}),
            metrics=_dump(metrics or {}),
            artifacts=_dump(artifacts or []),
            log=log,
            error=error,
            finished_at=now,
        )
        return now

    def skip_remaining(self, run_id: str, status: str = SKIPPED) -> None:
        """Mark every step that has not run yet as skipped (or cancelled)."""
        with self.metadata.begin() as conn:
            conn.execute(
                update(run_steps)
                .where(run_steps.c.run_id == run_id, run_steps.c.status == QUEUED)
                .values(status=status)
            )

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        metrics: dict[str, Any],
        artifacts: builtins.list[str],
        error: str | None,
    ) -> datetime:
        """Record how the run ended; returns its finish time."""
        now = _now()
        self._update_run(
            run_id,
            status=status,
            metrics=_dump(metrics),
            artifacts=_dump(artifacts),
            error=error,
            finished_at=now,
        )
        return now

    def set_message(self, run_id: str, message: dict[str, Any]) -> None:
        """Record the status message sent when the run ended, with how each sink took it."""
        self._update_run(run_id, message=_dump(message))

    def _update_run(self, run_id: str, **values: Any) -> None:
        with self.metadata.begin() as conn:
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))

    def _update_step(self, run_id: str, step: str, **values: Any) -> None:
        with self.metadata.begin() as conn:
            conn.execute(
                update(run_steps)
                .where(run_steps.c.run_id == run_id, run_steps.c.step == step)
                .values(**values)
            )


def _now() -> datetime:
    return datetime.now(UTC)


def _dump(value: Any) -> str:
    # default=str: a step may put dates, paths or numpy numbers into its outputs.
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except ValueError:  # NaN or infinity somewhere: JSON has neither, so they are recorded as null
        return json.dumps(_finite(value), default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def _run(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        project=row["project"],
        pipeline=row["pipeline"],
        experiment=row["experiment"],
        kind=row["kind"],
        status=row["status"],
        logical_date=row["logical_date"],
        params=json.loads(row["params"]),
        metrics=json.loads(row["metrics"]),
        artifacts=json.loads(row["artifacts"]),
        message=json.loads(row["message"]) if row["message"] else None,
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        owner=row["owner"],
    )


def _step(row: Any) -> StepRecord:
    return StepRecord(
        step=row["step"],
        position=row["position"],
        status=row["status"],
        resources=json.loads(row["resources"]),
        outputs=json.loads(row["outputs"]),
        metrics=json.loads(row["metrics"]),
        artifacts=json.loads(row["artifacts"]),
        log=row["log"],
        error=row["error"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )
