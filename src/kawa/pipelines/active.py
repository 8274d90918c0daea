"""Runs in progress: who holds them, settling the ones whose process is gone, and `max_active_runs`.

Every run records its owner while it is queued or running: the process that holds it, as
`host:pid:start time` (see `kawa.schedule._owner`), so a recycled pid does not pass for it. A manual
run whose owner is gone (same host, the pid dead or reused) was killed without recording its end;
it is settled as failed when runs are counted or listed, and no longer counts. Scheduled and
backfill runs are settled by the scheduler's recovery, which also knows their claims.

A pipeline's runs in progress, of any kind, count against its `max_active_runs` (default 1): the
scheduler holds a due run while a manual one runs, and a manual start is refused while the limit
is reached, unless it is forced (`kawa pipeline run NAME --force`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Select, select, update

from kawa.pipelines.runs import FAILED, QUEUED, RUNNING, SKIPPED
from kawa.schedule import _owner
from kawa.stores.metadata.tables import run_steps, runs, scheduled_runs

if TYPE_CHECKING:
    from kawa.runtime import Runtime
    from kawa.stores.metadata import MetadataStore

# Kinds whose runs the scheduler's claims hold (and its recovery settles).
CLAIMED_KINDS = ("scheduled", "backfill")
# The error of a run settled because its process is gone.
ORPHANED = "the process that ran it ended without recording the end"


@dataclass(frozen=True)
class ActiveRun:
    """A run of a pipeline in progress (or a scheduled date taken whose run is starting)."""

    kind: str
    run_id: str | None
    logical_date: datetime | None
    since: datetime | None
    owner: str | None

    def describe(self) -> str:
        """e.g. "manual run 0193ab... (since 2026-01-01T10:00:00+00:00, process 4711 on box)"."""
        what = f"{self.kind} run {self.run_id}" if self.run_id else f"{self.kind} run"
        if self.kind in CLAIMED_KINDS and self.logical_date is not None:
            what += f" for {self.logical_date.isoformat()}"
        held = []
        if self.since is not None:
            held.append(f"since {self.since.isoformat(timespec='seconds')}")
        if self.owner and self.owner.count(":") >= 2:
            host, pid, _ = self.owner.rsplit(":", 2)
            held.append(f"process {pid} on {host}")
        return f"{what} ({', '.join(held)})" if held else what


class RunLimitReached(RuntimeError):
    """A manual run was refused: the pipeline already runs `max_active_runs` runs; says what to do."""

    def __init__(self, pipeline: str, limit: int, active: list[ActiveRun]) -> None:
        self.pipeline, self.limit, self.active = pipeline, limit, active
        going = "; ".join(a.describe() for a in active)
        follow = next((a.run_id for a in active if a.run_id), None)
        wait = f"wait for it (`kawa runs logs {follow} -f` follows it)" if follow else "wait for it"
        super().__init__(
            f"pipeline {pipeline!r} is already running: {going}; it allows {limit} run(s) at once "
            f"(max_active_runs={limit}). {wait[0].upper()}{wait[1:]} and start again, or start "
            f"another run alongside anyway with `kawa pipeline run {pipeline} --force`"
        )


def active_runs(conn: Connection, project: str, pipeline: str) -> list[ActiveRun]:
    """The runs of `pipeline` in progress: running claims, and queued or running runs of a live owner."""
    found = [
        ActiveRun(c.kind, c.run_id, c.logical_date, c.updated_at, c.owner)
        for c in conn.execute(
            select(scheduled_runs).where(
                scheduled_runs.c.project == project,
                scheduled_runs.c.pipeline == pipeline,
                scheduled_runs.c.state == RUNNING,
            )
        )
    ]
    for r in conn.execute(_unclaimed(project, pipeline)):
        if _owner.alive(r.owner):
            found.append(ActiveRun(r.kind, r.run_id, r.logical_date, r.started_at or r.created_at, r.owner))
    return found


def limit_guard(pipeline: str, limit: int) -> Callable[[Connection, str], None]:
    """A check for `RunStore.create`: raises RunLimitReached when `limit` runs of `pipeline` are going."""

    def guard(conn: Connection, project: str) -> None:
        active = active_runs(conn, project, pipeline)
        if len(active) >= limit:
            raise RunLimitReached(pipeline, limit, active)

    return guard


def orphaned(status: str, kind: str, owner: str | None) -> bool:
    """Whether a run with this status, kind and owner is one `settle_orphans` settles."""
    return (
        status in (QUEUED, RUNNING)
        and kind not in CLAIMED_KINDS
        and owner is not None
        and not _owner.alive(owner)
    )


def settle_orphans(metadata: MetadataStore, project: str, pipeline: str | None = None) -> list[str]:
    """Record unclaimed runs whose owner process is gone as failed; returns their ids."""
    with metadata.connect() as conn:
        found = conn.execute(_unclaimed(project, pipeline))
        dead = [r for r in found if orphaned(QUEUED, r.kind, r.owner)]
    settled: list[str] = []
    if not dead:
        return settled
    now = datetime.now(UTC)
    with metadata.begin() as conn:
        for r in dead:
            error = (
                f"{ORPHANED} (process {r.owner}); it was killed or crashed. Start it again with "
                f"`kawa pipeline run {r.pipeline}`"
            )
            changed = conn.execute(
                update(runs)
                .where(
                    runs.c.run_id == r.run_id,
                    runs.c.owner == r.owner,
                    runs.c.status.in_([QUEUED, RUNNING]),
                )
                .values(status=FAILED, error=error, finished_at=now)
            ).rowcount
            if not changed:
                continue  # taken over or ended meanwhile
            steps = (run_steps.c.run_id == r.run_id,)
            conn.execute(update(run_steps).where(*steps, run_steps.c.status == QUEUED).values(status=SKIPPED))
            conn.execute(
                update(run_steps)
                .where(*steps, run_steps.c.status == RUNNING)
                .values(status=FAILED, error=error, finished_at=now)
            )
            settled.append(r.run_id)
    return settled


def settle_and_notify(runtime: Runtime, project: str, pipeline: str | None = None) -> list[str]:
    """`settle_orphans`, then send each settled run's status message as any ending run does."""
    from kawa.pipelines.notify import finish_message
    from kawa.pipelines.runs import RunStore

    settled = settle_orphans(runtime.metadata, project, pipeline)
    store = RunStore(runtime.metadata)
    for run_id in settled:
        record = store.get(run_id)
        if record is not None:
            store.set_message(run_id, finish_message(runtime, record))
    return settled


def _unclaimed(project: str, pipeline: str | None) -> Select[Any]:
    query = select(
        runs.c.run_id,
        runs.c.pipeline,
        runs.c.kind,
        runs.c.owner,
        runs.c.logical_date,
        runs.c.created_at,
        runs.c.started_at,
    ).where(
        runs.c.project == project,
        runs.c.status.in_([QUEUED, RUNNING]),
        runs.c.kind.not_in(CLAIMED_KINDS),
        runs.c.owner.is_not(None),  # runs recorded before owners were: nothing to tell
    )
    return query if pipeline is None else query.where(runs.c.pipeline == pipeline)
