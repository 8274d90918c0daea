"""Settling a claimed run whose process is gone, so a restart neither loses a due run nor runs one twice.

- The run was recorded and has finished: the claim is marked done with it.
- The run was recorded but never finished (the process was killed mid-run): the run is recorded as
  failed with the reason, its status message is sent, and the claim is done. It is not started again
  by itself; `kawa pipeline backfill` reruns it.
- No run was recorded: after a restart (`requeue`), the claim goes back to the queue and runs; when a
  run process ended without making one (it could not even start), a failed run says why.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from kawa.pipelines.runs import FAILED, FINISHED, SKIPPED, RunStore
from kawa.schedule.store import Claim, ScheduleStore

if TYPE_CHECKING:
    from kawa.runtime import Runtime

log = logging.getLogger("kawa.schedule")


def settle(
    runtime: Runtime, store: ScheduleStore, claim: Claim, why: str, *, requeue: bool, now: datetime
) -> str:
    """Settle a running claim whose process is gone; returns what was done, in words."""
    found = store.find_run(claim)
    if found is None:
        if requeue and store.requeue(claim.key, claim.owner, now):
            return "queued again: its run had not started"
        run_id = store.close_with_run(claim, status=FAILED, error=why, now=now)
        if run_id is None:
            return "already settled elsewhere"
        notify(runtime, run_id)
        return f"failed before its run started: {why}"
    run_id, status = found
    if status not in FINISHED:
        runs = RunStore(runtime.metadata)
        record = runs.get(run_id)
        assert record is not None
        runs.skip_remaining(run_id, SKIPPED)
        runs.finish(
            run_id,
            status=FAILED,
            metrics=record.metrics,
            artifacts=record.artifacts,
            error=f"interrupted: {why}; rerun it with `kawa pipeline backfill {claim.pipeline} --from "
            f"{claim.logical_date.isoformat()} --to {claim.logical_date.isoformat()}`",
        )
        notify(runtime, run_id)
        status = FAILED
    store.finish(claim.key, claim.owner, run_id, now)
    return f"run {run_id} {status}"


def notify(runtime: Runtime, run_id: str) -> None:
    """Send the status message of a run the scheduler ended (never raises)."""
    from kawa.pipelines import deliver, status_message

    try:
        runs = RunStore(runtime.metadata)
        record = runs.get(run_id)
        if record is None:
            return
        message = status_message(record)
        notify_config = runtime.config.notify
        receipts = deliver(message, notify_config.webhook, timeout_s=notify_config.timeout_s)
        runs.set_message(run_id, {"sent": message, "delivery": receipts})
    except Exception:
        log.exception("could not send the status message of run %s", run_id)
