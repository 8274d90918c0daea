"""`wait_for`: which run of another pipeline a run waits for, and whether it may start yet."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from kawa.schedule.store import Claim, ScheduleStore

if TYPE_CHECKING:
    from kawa.pipelines import Pipeline


def matching_date(upstream: Pipeline, logical_date: datetime) -> datetime | None:
    """The logical date of `upstream`'s run that a run for `logical_date` waits for.

    It is the latest run time of `upstream`'s schedule at or before `logical_date`: the same date for
    equal schedules; for a daily run at 00:00 waiting for an hourly pipeline, the hourly run at 00:00,
    which covers the last hour of the day before. An unscheduled pipeline is waited for at the same
    date. None when `upstream`'s schedule starts after `logical_date`.
    """
    if upstream.schedule is None:
        return logical_date
    return upstream.schedule.at_or_before(logical_date)


def unmet_wait(
    store: ScheduleStore,
    pipeline: Pipeline,
    pipelines: Mapping[str, Pipeline],
    claim: Claim,
    now: datetime,
) -> tuple[str, bool] | None:
    """None if every wait of `pipeline` is met for `claim`; else (why, whether the wait timed out)."""
    for wait in pipeline.wait_for:
        waited_s = (now - claim.claimed_at).total_seconds()
        expired = waited_s > wait.timeout_s
        upstream = pipelines.get(wait.pipeline)
        if upstream is None:
            return (
                f"{pipeline.name} waits for pipeline {wait.pipeline!r}, which the project's code does not "
                "define; fix the wait_for of the pipeline or add that pipeline",
                True,
            )
        date = matching_date(upstream, claim.logical_date)
        if date is None:
            assert upstream.schedule is not None
            return (
                f"{pipeline.name} waits for {wait.pipeline!r}, whose schedule starts at "
                f"{upstream.schedule.first_run.isoformat()}, after this run's logical date "
                f"{claim.logical_date.isoformat()}; there is no run to wait for",
                True,
            )
        status = store.run_status(claim.project, wait.pipeline, date)
        if status == "succeeded":
            continue
        if not expired:
            return (
                f"waiting for {wait.pipeline} run of {date.isoformat()} (now {status or 'not run'})",
                False,
            )
        return (
            f"waited {wait.timeout_s:g}s for a successful run of {wait.pipeline!r} for {date.isoformat()} "
            f"(the latest run time of {wait.pipeline} at or before this run's logical date "
            f"{claim.logical_date.isoformat()}); its run is {status or 'not there'}. Run it with "
            f"`kawa pipeline backfill {wait.pipeline} --from {date.isoformat()} --to {date.isoformat()}`, "
            f"then this one with `kawa pipeline backfill {pipeline.name} --from "
            f"{claim.logical_date.isoformat()} --to {claim.logical_date.isoformat()}`",
            True,
        )
    return None
