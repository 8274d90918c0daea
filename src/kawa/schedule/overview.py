"""What the schedules look like now, for `kawa pipeline schedules`: next runs, last runs, history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from kawa.schedule.store import ACTIVE, QUEUED, REFUSED, RUNNING, Claim, ScheduleStore
from kawa.stores.metadata.tables import runs

if TYPE_CHECKING:
    from kawa.pipelines import Pipeline
    from kawa.stores.metadata import MetadataStore

NOT_DEPLOYED = "not deployed"
# Declared, not deployed yet, and its first run has passed: deploying it will be refused.
PAST_START = "not deployed: first run is past"


@dataclass(frozen=True)
class ScheduleView:
    """One pipeline's schedule as declared and as deployed, with its next and latest runs."""

    pipeline: str
    schedule: str  # described, e.g. "every 1d from 2026-01-01T02:00:00+01:00 (Europe/Berlin)"
    timezone: str
    status: str  # active | refused | removed | not deployed | not deployed: first run is past
    next_runs: list[datetime] = field(default_factory=list)
    last: Claim | None = None
    last_status: str | None = None  # the status of the last date's run
    queued: int = 0
    running: int = 0
    wait_for: list[str] = field(default_factory=list)
    max_active_runs: int = 1
    error: str | None = None


def overview(
    metadata: MetadataStore, project: str, pipelines: Mapping[str, Pipeline], now: datetime, next_n: int = 1
) -> list[ScheduleView]:
    """Every pipeline that has or had a schedule, by name."""
    store = ScheduleStore(metadata)
    states = store.schedules(project)
    out: list[ScheduleView] = []
    for name in sorted(set(states) | {n for n, p in pipelines.items() if p.schedule is not None}):
        p = pipelines.get(name)
        state = states.get(name)
        schedule = p.schedule if p is not None else None
        deployed = state is not None and schedule is not None and state.fingerprint == schedule.fingerprint()
        if schedule is None:
            status = state.status if state is not None and state.status != ACTIVE else "removed"
        else:
            status = state.status if deployed and state is not None else NOT_DEPLOYED
            if status == NOT_DEPLOYED and schedule.first_run < now:
                status = PAST_START
        upcoming: list[datetime] = []
        if schedule is not None and status in (ACTIVE, NOT_DEPLOYED):
            at = schedule.first_run
            if status == ACTIVE and state is not None and state.cursor is not None:
                at = state.cursor
            while len(upcoming) < next_n:
                upcoming.append(at)
                at = schedule.next_after(at)
        claims = store.claims(project, pipeline=name, limit=200, newest_first=True)
        last = next((c for c in claims if c.state != QUEUED), None)
        out.append(
            ScheduleView(
                pipeline=name,
                schedule=schedule.describe() if schedule is not None else str(state.spec if state else ""),
                timezone=schedule.timezone if schedule is not None else "",
                status=status,
                next_runs=upcoming,
                last=last,
                last_status=_run_status(metadata, last.run_id) if last and last.run_id else None,
                queued=sum(c.state == QUEUED for c in claims),
                running=sum(c.state == RUNNING for c in claims),
                wait_for=[w.pipeline for w in p.wait_for] if p is not None else [],
                max_active_runs=p.max_active_runs if p is not None else 1,
                error=state.error if state is not None and status == REFUSED else None,
            )
        )
    return out


def history(
    metadata: MetadataStore, project: str, pipeline: str, limit: int = 50
) -> list[tuple[Claim, str | None]]:
    """The latest claimed, skipped and backfilled dates of `pipeline`, newest first, with run statuses."""
    claims = ScheduleStore(metadata).claims(project, pipeline=pipeline, limit=limit, newest_first=True)
    return [(c, _run_status(metadata, c.run_id) if c.run_id else None) for c in claims]


def _run_status(metadata: MetadataStore, run_id: str) -> str | None:
    with metadata.connect() as conn:
        return conn.scalar(select(runs.c.status).where(runs.c.run_id == run_id))
