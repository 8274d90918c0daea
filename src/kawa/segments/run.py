"""Running a segment now, for a day, as a manual run of its pipeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kawa.pipelines import Executor, RunEvent, RunRecord
    from kawa.runtime import Runtime
    from kawa.segments.spec import Segment


def run_segment(
    runtime: Runtime,
    segment: Segment,
    *,
    day: date | None = None,
    now: datetime | None = None,
    executor: Executor | None = None,
    on_event: Callable[[RunEvent], None] | None = None,
    force: bool = False,
) -> RunRecord:
    """Run `segment` for `day` (default today) and return the finished run record.

    Today's run has logical date now; a past day's the last second of that day, so SQL that uses
    `$logical_date` sees the day as it ended. A failed delivery makes the run fail, with the reason.
    While another run of the segment goes on, it is refused (RunLimitReached) unless `force`; a forced
    run leaves the batches the other run holds to it.
    """
    from kawa.pipelines import run_pipeline

    logical_date = segment.logical_date_for(day, now)
    return run_pipeline(
        runtime, segment, logical_date=logical_date, executor=executor, on_event=on_event, force=force
    )
