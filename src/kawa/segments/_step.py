"""The one step of a segment's pipeline: compute the members, claim the new ones, deliver, record."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kawa.pipelines.step import step

if TYPE_CHECKING:
    from kawa.pipelines.context import RunContext
    from kawa.segments.store import DeliveryLog

log = logging.getLogger("kawa.segments")

# The delivery log as a warehouse table, one partition per segment and day, replaced by each run.
MIRROR_TABLE = "segment_deliveries"
_TIME = pa.timestamp("us", tz="UTC")
MIRROR_SCHEMA = pa.schema(
    [
        ("segment", pa.string()),
        ("day", pa.string()),
        ("member", pa.string()),
        ("attributes", pa.string()),
        ("destination", pa.string()),
        ("batch_id", pa.string()),
        ("status", pa.string()),
        ("attempts", pa.int64()),
        ("error", pa.string()),
        ("run_id", pa.string()),
        ("claimed_at", _TIME),
        ("delivered_at", _TIME),
    ]
)


@step(cache=False)  # it sends members out: never reuse an earlier run's result
def delivery(ctx: RunContext) -> dict[str, Any]:
    """Deliver the segment's new members for the run's day; fails if some could not be delivered."""
    from kawa.segments.destinations import Job
    from kawa.segments.members import segment_members
    from kawa.segments.spec import SegmentError, find_segment
    from kawa.segments.store import DeliveryLog

    config = ctx.runtime.config
    segment = find_segment(config, ctx.pipeline)
    day = segment.day_of(ctx.logical_date)
    found = segment_members(ctx.warehouse, segment, ctx.logical_date, day)
    destination = segment.destination
    deliveries = DeliveryLog(ctx.runtime.metadata)
    claim = deliveries.claim(
        ctx.project,
        segment.name,
        day,
        found.members,
        destination=destination.describe(),
        run_id=ctx.run_id,
        once_per=segment.once_per,
        batch_size=destination.batch_size,
    )
    job = Job(
        ctx.project,
        segment.name,
        segment.entity,
        day,
        ctx.run_id,
        Path(config.root),
        claim.batches,
        deliveries,
    )
    report = destination.deliver(job) if claim.batches else None
    summary: dict[str, Any] = {
        "segment": segment.name,
        "day": day.isoformat(),
        "destination": destination.describe(),
        "members": len(found.members),
        "new": claim.new,
        "retried": claim.retried,
        "already_claimed": claim.known,
        "delivered": report.delivered if report else 0,
        "failed": report.failed if report else 0,
        "batches": report.batches if report else 0,
        "files": report.files if report else [],
        "skipped_rows": sum(found.skipped.values()),
        "duplicate_rows": found.duplicates,
    }
    for name in ("members", "new", "retried", "delivered", "failed", "batches"):
        ctx.log_metric(name, float(summary[name]))
    print(
        f"segment {segment.name} {summary['day']}: {summary['members']} members, {claim.new} new, "
        f"{claim.retried} resent; {summary['delivered']} delivered in {summary['batches']} batch(es) "
        f"to {destination.describe()}",
        flush=True,
    )
    if claim.batches:
        _mirror(ctx, deliveries, segment.name, day)
    if report is not None and report.error is not None:
        raise SegmentError(
            f"segment {segment.name!r}: {report.failed} member(s) of {day.isoformat()} not delivered: "
            f"{report.error}; the run's retries, or the next run of that day (`kawa segments run "
            f"{segment.name} --day {day.isoformat()}`), send them again in the same batches"
        )
    return summary


def _mirror(ctx: RunContext, deliveries: DeliveryLog, segment: str, day: date) -> None:
    """Copy the segment's log of `day` to the warehouse table `segment_deliveries`, for `kawa sql`."""
    rows, _ = deliveries.entries(ctx.project, segment=segment, day=day, limit=None)
    data = [{**vars(r), "attributes": json.dumps(r.attributes)} for r in rows]
    table = pa.Table.from_pylist(data, schema=MIRROR_SCHEMA)
    try:
        ctx.write_table(MIRROR_TABLE, table, partition={"segment_day": f"{segment}@{day.isoformat()}"})
    except Exception as exc:  # the metadata store holds the log; a later delivery rewrites it
        log.warning("segment %s: could not copy the delivery log to %s: %s", segment, MIRROR_TABLE, exc)
