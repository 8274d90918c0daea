"""Writing a segment's day file: every member delivered to the export that day, replaced atomically.

The file is rebuilt from the delivery log (the members already delivered there that day plus the
run's new ones), written beside its final name and renamed over it, so a reader sees the old file or
the new one, and a rerun or a retry after a crash writes the same members once each.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from kawa.segments.destinations import Job, Report

if TYPE_CHECKING:
    from kawa.segments.destinations import Export


def write_day(export: Export, job: Job) -> Report:
    """Rewrite `job`'s day file with its new members and settle its batches in the log."""
    ids = [b.batch_id for b in job.batches]
    report = Report()
    if not ids:
        return report
    members = job.log.day_members(job.project, job.segment, job.day, export.describe(), ids)
    path = export.path(job.root, job.segment, job.day)
    tmp = path.with_name(f".{path.name}.{job.run_id}.tmp")
    error = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        table = _table(job.entity, members)
        if export.format == "csv":
            pa_csv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp)
        os.replace(tmp, path)
    except (OSError, pa.ArrowException) as exc:
        error = f"cannot write {path}: {type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # a half-written file is of no use to anyone
    for batch in job.batches:
        job.log.settle(
            job.project, batch.batch_id, run_id=job.run_id, delivered=error is None, attempts=1, error=error
        )
    sent = sum(len(b.members) for b in job.batches)
    if error is not None:
        report.failed, report.error = sent, error
    else:
        report.delivered, report.batches, report.files = sent, len(ids), [str(path)]
    return report


def _table(entity: str, members: list[tuple[str, str]]) -> pa.Table:
    """The members as a table: the entity column first, then the other columns in first-seen order."""
    rows = [{entity: member, **json.loads(attributes)} for member, attributes in members]
    columns: dict[str, None] = {entity: None}
    for row in rows:
        columns.update(dict.fromkeys(row))
    # Columns the SQL returned travel as JSON values: missing ones are null, nested ones JSON text.
    data = {
        name: [_cell(row.get(name)) for row in rows] if rows else pa.array([], pa.string())
        for name in columns
    }
    return pa.table(data)


def _cell(value: object) -> object:
    return json.dumps(value) if isinstance(value, dict | list) else value
