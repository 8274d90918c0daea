"""The scheduler lease: one scheduler of a project schedules at a time, and says when it was last alive."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from kawa.schedule.store import ensure_project
from kawa.stores.metadata import MetadataStore
from kawa.stores.metadata.tables import scheduler_leases


class Lease:
    """Takes, renews and lets go of a project's scheduler lease."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def acquire(self, project: str, owner: str, now: datetime, ttl_s: float, dead: bool) -> str:
        """Take or renew the scheduler lease of `project`; returns its holder after the attempt.

        The lease passes to `owner` when it is free, already `owner`'s, older than `ttl_s`, or `dead`
        says the holder's process is gone (`dead` is evaluated by the caller on the current holder).
        """
        with self.metadata.begin() as conn:
            ensure_project(conn, project, now)
            row = conn.execute(select(scheduler_leases).where(scheduler_leases.c.project == project)).first()
            if row is None:
                conn.execute(
                    insert(scheduler_leases).values(
                        project=project, owner=owner, started_at=now, heartbeat_at=now
                    )
                )
                return owner
            stale = (now - row.heartbeat_at).total_seconds() > ttl_s
            if row.owner == owner or stale or dead:
                started = row.started_at if row.owner == owner else now
                conn.execute(
                    update(scheduler_leases)
                    .where(scheduler_leases.c.project == project)
                    .values(owner=owner, started_at=started, heartbeat_at=now)
                )
                return owner
            return str(row.owner)

    def holder(self, project: str) -> tuple[str, datetime] | None:
        """(holder, last heartbeat) of `project`'s scheduler lease, if any."""
        with self.metadata.connect() as conn:
            row = conn.execute(select(scheduler_leases).where(scheduler_leases.c.project == project)).first()
        return (row.owner, row.heartbeat_at) if row is not None else None

    def release(self, project: str, owner: str) -> None:
        with self.metadata.begin() as conn:
            conn.execute(
                scheduler_leases.delete().where(
                    scheduler_leases.c.project == project, scheduler_leases.c.owner == owner
                )
            )
