"""Schedule state in the metadata store: deployed schedules, and claimed and skipped runs.

Every change of a claim is a compare-and-set inside one write transaction (writers are serialised
by the metadata store), and a claim's primary key is (project, pipeline, logical date): a date is
taken once, by one scheduler or backfill, however many processes try.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from kawa.pipelines.active import ActiveRun, active_runs
from kawa.pipelines.runs import FAILED, SKIPPED, new_run_id
from kawa.stores.metadata import MetadataStore
from kawa.stores.metadata.tables import projects, runs, scheduled_runs, schedules

# Claim states.
QUEUED, RUNNING, DONE, SKIP = "queued", "running", "done", "skipped"
# Schedule statuses.
ACTIVE, REFUSED, REMOVED = "active", "refused", "removed"


@dataclass(frozen=True)
class ScheduleState:
    """A pipeline's schedule as the scheduler last saw and deployed it."""

    project: str
    pipeline: str
    spec: dict[str, Any]
    fingerprint: str
    status: str
    error: str | None
    first_run: datetime | None
    cursor: datetime | None
    deployed_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Claim:
    """One (pipeline, logical date) taken by the scheduler or a backfill, or recorded as skipped."""

    project: str
    pipeline: str
    logical_date: datetime
    kind: str
    state: str
    run_id: str | None
    owner: str | None
    reason: str | None
    claimed_at: datetime
    updated_at: datetime

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.project, self.pipeline, self.logical_date)


class ScheduleStore:
    """Reads and compare-and-set writes of schedules and claims."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    # -- schedules ----------------------------------------------------------------------------------

    def schedules(self, project: str) -> dict[str, ScheduleState]:
        """Every recorded schedule of `project` by pipeline name (removed and refused ones too)."""
        with self.metadata.connect() as conn:
            rows = conn.execute(select(schedules).where(schedules.c.project == project)).mappings()
            return {r["pipeline"]: _schedule(r) for r in rows}

    def put_schedule(
        self,
        project: str,
        pipeline: str,
        *,
        spec: dict[str, Any],
        fingerprint: str,
        status: str,
        error: str | None,
        first_run: datetime | None,
        cursor: datetime | None,
        now: datetime,
        deployed: bool,
    ) -> None:
        """Record a schedule; `deployed` marks a new deployment (new or changed run times)."""
        values: dict[str, Any] = {
            "spec": json.dumps(spec, sort_keys=True),
            "fingerprint": fingerprint,
            "status": status,
            "error": error,
            "first_run": first_run,
            "cursor": cursor,
            "updated_at": now,
        }
        if deployed:
            values["deployed_at"] = now
        with self.metadata.begin() as conn:
            ensure_project(conn, project, now)
            key = (schedules.c.project == project, schedules.c.pipeline == pipeline)
            if conn.execute(select(schedules.c.pipeline).where(*key)).first() is None:
                values.setdefault("deployed_at", now)
                conn.execute(insert(schedules).values(project=project, pipeline=pipeline, **values))
            else:
                conn.execute(update(schedules).where(*key).values(**values))

    def advance(
        self,
        project: str,
        pipeline: str,
        *,
        cursor: datetime,
        new_cursor: datetime,
        due: Sequence[datetime],
        missed: Sequence[datetime],
        reason: str,
        now: datetime,
    ) -> bool:
        """Move the cursor past due dates: claim `due`, record `missed` as skipped runs, in one go.

        False (and nothing written) if the cursor is no longer `cursor`: another scheduler moved it.
        """
        with self.metadata.begin() as conn:
            current = conn.execute(
                select(schedules.c.cursor, schedules.c.status).where(
                    schedules.c.project == project, schedules.c.pipeline == pipeline
                )
            ).first()
            if current is None or current.status != ACTIVE or current.cursor != cursor:
                return False
            taken = _taken(conn, project, pipeline, [*missed, *due])
            for date in missed:
                if date in taken:
                    continue
                run_id = _insert_run(conn, project, pipeline, "scheduled", date, SKIPPED, reason, now)
                conn.execute(
                    insert(scheduled_runs).values(
                        **_claim_values(project, pipeline, date, "scheduled", SKIP, now),
                        run_id=run_id,
                        reason=reason,
                    )
                )
            for date in due:
                if date not in taken:
                    conn.execute(
                        insert(scheduled_runs).values(
                            **_claim_values(project, pipeline, date, "scheduled", QUEUED, now)
                        )
                    )
            conn.execute(
                update(schedules)
                .where(schedules.c.project == project, schedules.c.pipeline == pipeline)
                .values(cursor=new_cursor, updated_at=now)
            )
        return True

    # -- claims -------------------------------------------------------------------------------------

    def claims(
        self,
        project: str,
        *,
        pipeline: str | None = None,
        states: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Claim]:
        """Claims of `project` in logical-date order, filtered by pipeline, states and date range."""
        query = select(scheduled_runs).where(scheduled_runs.c.project == project)
        if pipeline is not None:
            query = query.where(scheduled_runs.c.pipeline == pipeline)
        if states is not None:
            query = query.where(scheduled_runs.c.state.in_(list(states)))
        if since is not None:
            query = query.where(scheduled_runs.c.logical_date >= since)
        if until is not None:
            query = query.where(scheduled_runs.c.logical_date <= until)
        date = scheduled_runs.c.logical_date
        query = query.order_by(date.desc() if newest_first else date, scheduled_runs.c.pipeline)
        if limit is not None:
            query = query.limit(limit)
        with self.metadata.connect() as conn:
            return [_claim(r) for r in conn.execute(query).mappings()]

    def get(self, key: tuple[str, str, datetime]) -> Claim | None:
        with self.metadata.connect() as conn:
            row = conn.execute(select(scheduled_runs).where(*_key(key))).mappings().first()
        return _claim(row) if row is not None else None

    def running(self, project: str, pipeline: str) -> list[ActiveRun]:
        """The runs of `pipeline` in progress, of every kind: running claims and live manual runs."""
        with self.metadata.connect() as conn:
            return active_runs(conn, project, pipeline)

    def count_running(self, project: str, pipeline: str) -> int:
        """How many runs of `pipeline` count against its `max_active_runs` now (manual ones too)."""
        return len(self.running(project, pipeline))

    def note(self, key: tuple[str, str, datetime], reason: str, now: datetime) -> bool:
        """Record why a queued claim waits; False if it is no longer queued."""
        return self._cas(key, {"state": QUEUED}, reason=reason, updated_at=now)

    def take(self, key: tuple[str, str, datetime], owner: str, now: datetime) -> bool:
        """queued -> running, owned by `owner`; False if someone else took it first."""
        return self._cas(key, {"state": QUEUED}, state=RUNNING, owner=owner, reason=None, updated_at=now)

    def hand_over(self, key: tuple[str, str, datetime], old: str, new: str, now: datetime) -> bool:
        """Pass a running claim from `old` (the launcher) to `new` (the process that runs it)."""
        return self._cas(key, {"state": RUNNING, "owner": old}, owner=new, updated_at=now)

    def link(self, key: tuple[str, str, datetime], owner: str, run_id: str, now: datetime) -> bool:
        """Record the run a running claim started."""
        return self._cas(key, {"state": RUNNING, "owner": owner}, run_id=run_id, updated_at=now)

    def finish(self, key: tuple[str, str, datetime], owner: str | None, run_id: str, now: datetime) -> bool:
        """running -> done, with the run it made."""
        return self._cas(key, {"state": RUNNING, "owner": owner}, state=DONE, run_id=run_id, updated_at=now)

    def requeue(self, key: tuple[str, str, datetime], owner: str | None, now: datetime) -> bool:
        """running -> queued again, for a claim whose process died before it made a run."""
        return self._cas(
            key, {"state": RUNNING, "owner": owner}, state=QUEUED, owner=None, run_id=None, updated_at=now
        )

    def close_with_run(
        self, claim: Claim, *, status: str, error: str, now: datetime, expect_owner: bool = True
    ) -> str | None:
        """Record a run that ended before it started (`status`, `error`) and mark the claim done.

        Returns the new run's id, or None if the claim changed meanwhile.
        """
        where: dict[str, Any] = {"state": claim.state}
        if expect_owner:
            where["owner"] = claim.owner
        with self.metadata.begin() as conn:
            if not _matches(conn, claim.key, where):
                return None
            run_id = _insert_run(
                conn, claim.project, claim.pipeline, claim.kind, claim.logical_date, status, error, now
            )
            conn.execute(
                update(scheduled_runs)
                .where(*_key(claim.key))
                .values(state=DONE, run_id=run_id, reason=error, updated_at=now)
            )
        return run_id

    def enqueue_backfill(
        self, project: str, pipeline: str, dates: Sequence[datetime], now: datetime
    ) -> dict[datetime, str]:
        """Queue `dates` as backfill runs; returns what happened to each date.

        New and skipped dates, and dates whose run did not succeed, are queued ("queued"); a date that
        is queued, running or succeeded is left alone ("queued already", "running", "succeeded").
        """
        outcome: dict[datetime, str] = {}
        with self.metadata.begin() as conn:
            ensure_project(conn, project, now)
            for date in dates:
                row = conn.execute(select(scheduled_runs).where(*_key((project, pipeline, date)))).first()
                if row is None:
                    conn.execute(
                        insert(scheduled_runs).values(
                            **_claim_values(project, pipeline, date, "backfill", QUEUED, now)
                        )
                    )
                    outcome[date] = "queued"
                    continue
                if row.state == QUEUED:
                    outcome[date] = "queued already"
                    continue
                if row.state == RUNNING:
                    outcome[date] = "running"
                    continue
                status = None
                if row.state == DONE and row.run_id is not None:
                    status = conn.scalar(select(runs.c.status).where(runs.c.run_id == row.run_id))
                if status == "succeeded":
                    outcome[date] = "succeeded"
                    continue
                conn.execute(
                    update(scheduled_runs)
                    .where(*_key((project, pipeline, date)))
                    .values(
                        kind="backfill",
                        state=QUEUED,
                        owner=None,
                        run_id=None,
                        reason=None,
                        claimed_at=now,
                        updated_at=now,
                    )
                )
                outcome[date] = "queued"
        return outcome

    def run_status(self, project: str, pipeline: str, logical_date: datetime) -> str | None:
        """The status of the newest run of `pipeline` for `logical_date`, of any kind; None if none."""
        with self.metadata.connect() as conn:
            return conn.scalar(
                select(runs.c.status)
                .where(
                    runs.c.project == project,
                    runs.c.pipeline == pipeline,
                    runs.c.logical_date == logical_date,
                )
                .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
                .limit(1)
            )

    def find_run(self, claim: Claim) -> tuple[str, str] | None:
        """(run id, status) of the run a claim started; found by date and kind if it was not linked yet."""
        with self.metadata.connect() as conn:
            query = select(runs.c.run_id, runs.c.status)
            if claim.run_id is not None:
                query = query.where(runs.c.run_id == claim.run_id)
            else:
                query = query.where(
                    runs.c.project == claim.project,
                    runs.c.pipeline == claim.pipeline,
                    runs.c.logical_date == claim.logical_date,
                    runs.c.kind == claim.kind,
                    # Linked before it could finish, so an unlinked run of ours is still unfinished;
                    # a finished one is an earlier attempt at the same date.
                    runs.c.status.in_(["queued", "running"]),
                )
            row = conn.execute(query.order_by(runs.c.created_at.desc()).limit(1)).first()
        return (row.run_id, row.status) if row is not None else None

    def _cas(self, key: tuple[str, str, datetime], where: dict[str, Any], **values: Any) -> bool:
        with self.metadata.begin() as conn:
            if not _matches(conn, key, where):
                return False
            conn.execute(update(scheduled_runs).where(*_key(key)).values(**values))
        return True


def _key(key: tuple[str, str, datetime]) -> tuple[Any, ...]:
    project, pipeline, date = key
    return (
        scheduled_runs.c.project == project,
        scheduled_runs.c.pipeline == pipeline,
        scheduled_runs.c.logical_date == date,
    )


def _matches(conn: Connection, key: tuple[str, str, datetime], where: dict[str, Any]) -> bool:
    row = conn.execute(select(scheduled_runs).where(*_key(key))).mappings().first()
    return row is not None and all(row[k] == v for k, v in where.items())


def _taken(conn: Connection, project: str, pipeline: str, dates: Sequence[datetime]) -> set[datetime]:
    if not dates:
        return set()
    rows = conn.execute(
        select(scheduled_runs.c.logical_date).where(
            scheduled_runs.c.project == project,
            scheduled_runs.c.pipeline == pipeline,
            scheduled_runs.c.logical_date.in_(list(dates)),
        )
    )
    return {r.logical_date for r in rows}


def _claim_values(
    project: str, pipeline: str, date: datetime, kind: str, state: str, now: datetime
) -> dict[str, Any]:
    return {
        "project": project,
        "pipeline": pipeline,
        "logical_date": date,
        "kind": kind,
        "state": state,
        "claimed_at": now,
        "updated_at": now,
    }


def ensure_project(conn: Connection, project: str, now: datetime) -> None:
    if conn.execute(select(projects.c.name).where(projects.c.name == project)).first() is None:
        conn.execute(insert(projects).values(name=project, created_at=now))


def _insert_run(
    conn: Connection,
    project: str,
    pipeline: str,
    kind: str,
    logical_date: datetime,
    status: str,
    error: str,
    now: datetime,
) -> str:
    """A finished run with no steps: a skipped date, or a run that failed before it could start."""
    run_id = new_run_id()
    ensure_project(conn, project, now)
    conn.execute(
        insert(runs).values(
            run_id=run_id,
            project=project,
            pipeline=pipeline,
            experiment="default",
            kind=kind,
            status=status,
            logical_date=logical_date,
            params="{}",
            metrics="{}",
            artifacts="[]",
            error=error,
            created_at=now,
            started_at=None if status == SKIPPED else now,
            finished_at=now,
        )
    )
    return run_id


def _schedule(row: Any) -> ScheduleState:
    return ScheduleState(
        project=row["project"],
        pipeline=row["pipeline"],
        spec=json.loads(row["spec"]),
        fingerprint=row["fingerprint"],
        status=row["status"],
        error=row["error"],
        first_run=row["first_run"],
        cursor=row["cursor"],
        deployed_at=row["deployed_at"],
        updated_at=row["updated_at"],
    )


def _claim(row: Any) -> Claim:
    return Claim(
        project=row["project"],
        pipeline=row["pipeline"],
        logical_date=row["logical_date"],
        kind=row["kind"],
        state=row["state"],
        run_id=row["run_id"],
        owner=row["owner"],
        reason=row["reason"],
        claimed_at=row["claimed_at"],
        updated_at=row["updated_at"],
    )


__all__ = ["ACTIVE", "DONE", "FAILED", "QUEUED", "REFUSED", "REMOVED", "RUNNING", "SKIP", "Claim"]
