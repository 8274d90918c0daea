"""Paging through a project's runs, newest first, by keyset: as fast on the thousandth page as the first.

A page is asked for relative to a run id: `before` gives the runs older than it, `after` the runs
newer than it. Each page says where it stands (`position`: how many newer runs there are) and names
the cursors of its neighbours, so the API and the UI can link to the next and previous pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select

from kawa.pipelines.runs import RunRecord, _run
from kawa.stores.metadata import MetadataStore
from kawa.stores.metadata.tables import runs

# The most runs one page may hold.
MAX_PAGE = 1000


@dataclass(frozen=True)
class RunPage:
    """One page of runs, newest first; `older`/`newer` are the cursors of the pages around it (or None)."""

    runs: list[RunRecord]
    total: int  # runs that match the filters, on every page
    position: int  # how many matching runs are newer than the first on this page
    older: str | None  # pass as `before` for the next (older) page
    newer: str | None  # pass as `after` for the previous (newer) page

    @property
    def first(self) -> int:
        """The 1-based number of the first run shown (0 when the page is empty)."""
        return self.position + 1 if self.runs else 0

    @property
    def last(self) -> int:
        return self.position + len(self.runs)


def run_page(
    metadata: MetadataStore,
    project: str,
    *,
    pipeline: str | None = None,
    experiment: str | None = None,
    status: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = 25,
) -> RunPage:
    """The runs of `project` (optionally of one pipeline, experiment or status) older than `before`
    or newer than `after`, newest first; without either, the newest. LookupError for an unknown cursor.
    """
    if before is not None and after is not None:
        raise ValueError("ask for the runs before one run or after one, not both")
    limit = max(1, min(limit, MAX_PAGE))
    match = [runs.c.project == project]
    if pipeline is not None:
        match.append(runs.c.pipeline == pipeline)
    if experiment is not None:
        match.append(runs.c.experiment == experiment)
    if status is not None:
        match.append(runs.c.status == status)
    with metadata.connect() as conn:
        cursor = _cursor(conn, project, before or after)
        query = select(runs).where(*match)
        if before is not None:
            query = query.where(_older_than(cursor)).order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
        elif after is not None:
            query = query.where(_newer_than(cursor)).order_by(runs.c.created_at.asc(), runs.c.run_id.asc())
        else:
            query = query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
        rows = [_run(r) for r in conn.execute(query.limit(limit)).mappings()]
        if after is not None:
            rows.reverse()
            if len(rows) < limit:  # near the top: the newest page, full, rather than a short one
                newest = select(runs).where(*match).order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
                rows = [_run(r) for r in conn.execute(newest.limit(limit)).mappings()]
        total = conn.scalar(select(func.count()).select_from(runs).where(*match)) or 0
        position = 0
        if rows:
            top = (rows[0].created_at, rows[0].run_id)
            position = (
                conn.scalar(select(func.count()).select_from(runs).where(*match, _newer_than(top))) or 0
            )
    older = rows[-1].run_id if rows and position + len(rows) < total else None
    newer = rows[0].run_id if rows and position > 0 else None
    return RunPage(rows, int(total), int(position), older, newer)


def experiments(metadata: MetadataStore, project: str) -> list[str]:
    """The names of the experiments that `project`'s runs were recorded under, sorted."""
    query = select(runs.c.experiment).where(runs.c.project == project).distinct().order_by(runs.c.experiment)
    with metadata.connect() as conn:
        return [str(name) for name in conn.scalars(query)]


def _cursor(conn: Any, project: str, run_id: str | None) -> tuple[Any, str] | None:
    if run_id is None:
        return None
    row = conn.execute(
        select(runs.c.created_at, runs.c.run_id).where(runs.c.run_id == run_id, runs.c.project == project)
    ).first()
    if row is None:
        raise LookupError(
            f"no run {run_id!r} in project {project!r} to page from; start from the newest runs"
        )
    return (row[0], row[1])


def _older_than(cursor: tuple[Any, str] | None) -> Any:
    assert cursor is not None
    created, run_id = cursor
    return or_(runs.c.created_at < created, and_(runs.c.created_at == created, runs.c.run_id < run_id))


def _newer_than(cursor: tuple[Any, str] | None) -> Any:
    assert cursor is not None
    created, run_id = cursor
    return or_(runs.c.created_at > created, and_(runs.c.created_at == created, runs.c.run_id > run_id))
