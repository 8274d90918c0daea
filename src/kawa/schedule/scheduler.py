"""The scheduler: claims each due (pipeline, logical date) once, records missed ones, starts runs in order.

One pass (`tick`) does, in order: hold the project's scheduler lease (one scheduler at a time);
recover claims whose process died; deploy schedules that are new or changed in the code; move each
schedule's cursor past its due dates, claiming those still within `grace` and recording the older
ones as skipped runs (no automatic catch-up); start queued runs oldest first, at most
`max_active_runs` of a pipeline at once, each once every `wait_for` is met; reap ended runs.
Time comes only from the `Clock`, so tests step through days without sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from kawa.pipelines.active import ActiveRun, settle_and_notify
from kawa.schedule import _owner
from kawa.schedule.clock import Clock, SystemClock
from kawa.schedule.deploy import ScheduleChange, apply
from kawa.schedule.launch import InlineLauncher, Job, Launcher
from kawa.schedule.lease import Lease
from kawa.schedule.store import ACTIVE, QUEUED, RUNNING, Claim, ScheduleStore
from kawa.schedule.waits import unmet_wait

if TYPE_CHECKING:
    from kawa.pipelines import Pipeline
    from kawa.runtime import Runtime

log = logging.getLogger("kawa.schedule")

# Missed dates recorded one by one at most; older ones are counted in the log (backfill still finds them).
MAX_SKIPPED = 1000
# How often a scheduler holding the lease looks for claims whose process died.
RECOVER_EVERY_S = 30.0


@dataclass
class TickReport:
    """What one pass did, for logs and tests."""

    holder: str
    deployed: list[ScheduleChange] = field(default_factory=list)
    claimed: list[tuple[str, datetime]] = field(default_factory=list)
    skipped: list[tuple[str, datetime]] = field(default_factory=list)
    started: list[tuple[str, datetime]] = field(default_factory=list)
    failed: list[tuple[str, datetime, str]] = field(default_factory=list)
    recovered: list[tuple[str, datetime, str]] = field(default_factory=list)

    @property
    def leader(self) -> bool:
        return self.holder == _owner.me()


class Scheduler:
    """Runs a project's schedules; `tick()` is one pass, `run(stop)` passes until `stop` is set."""

    def __init__(
        self,
        runtime: Runtime,
        pipelines: Mapping[str, Pipeline] | Callable[[], Mapping[str, Pipeline] | None],
        *,
        clock: Clock | None = None,
        launcher: Launcher | None = None,
        project: str | None = None,
        lease_ttl_s: float = 30.0,
        poll_s: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.clock = clock or SystemClock()
        self.launcher = launcher or InlineLauncher(runtime, now=self.clock.now)
        self.project = project or runtime.config.project
        self.store = ScheduleStore(runtime.metadata)
        self.lease = Lease(runtime.metadata)
        self.lease_ttl_s = lease_ttl_s
        self.poll_s = poll_s
        self._source = pipelines
        self._deployed_from: Mapping[str, Pipeline] | None = None
        self._last_recover: datetime | None = None
        self._told_holder: str | None = None

    def pipelines(self) -> Mapping[str, Pipeline] | None:
        """The project's pipelines as the scheduler sees them now; None if the code never loaded."""
        return self._source() if callable(self._source) else self._source

    # -- one pass ---------------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """One pass of the scheduler (see the module docstring)."""
        now = self.clock.now()
        report = TickReport(holder=self._hold_lease(now))
        if not report.leader:
            self.reap(report)
            return report
        if self._last_recover is None or (now - self._last_recover).total_seconds() >= RECOVER_EVERY_S:
            self.recover(report)
            self._last_recover = now
        found = self.pipelines()
        if found is None:
            # Without the code, every schedule would look removed and every queued run orphaned.
            self.reap(report)
            return report
        if found is not self._deployed_from:
            report.deployed = self.deploy(found, now)
            self._deployed_from = found
        self._advance(found, now, report)
        self.dispatch(report=report)
        self.reap(report)
        return report

    def run(self, stop: threading.Event) -> None:
        """Pass after pass until `stop` is set; then let go of the lease."""
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:
                    # A passing failure (e.g. the database busy for long) must not end scheduling.
                    log.exception("scheduler pass failed; trying again")
                if self.clock.wait(self.poll_s, stop):
                    break
        finally:
            self.launcher.close()
            try:
                self.lease.release(self.project, _owner.me())
            except Exception:
                log.exception("could not release the scheduler lease")

    def deploy(self, pipelines: Mapping[str, Pipeline], now: datetime) -> list[ScheduleChange]:
        """Deploy new and changed schedules (see `kawa.schedule.deploy`); log each change."""
        changes = apply(self.store, self.project, pipelines, now)
        for c in changes:
            if c.error:
                log.error("%s", c.error)
            elif c.action == "removed":
                log.info("schedule of %s removed", c.pipeline)
            else:
                log.info("schedule of %s %s: %s", c.pipeline, c.action, c.schedule)
        return changes

    # -- due dates --------------------------------------------------------------------------------

    def _advance(self, pipelines: Mapping[str, Pipeline], now: datetime, report: TickReport) -> None:
        for name, state in self.store.schedules(self.project).items():
            p = pipelines.get(name)
            if state.status != ACTIVE or state.cursor is None or state.cursor > now:
                continue
            if p is None or p.schedule is None or p.schedule.fingerprint() != state.fingerprint:
                continue  # code and deployment disagree until the next deploy; claim nothing meanwhile
            schedule = p.schedule
            last = schedule.at_or_before(now)
            assert last is not None  # the cursor is a run time at or before now
            grace = timedelta(seconds=schedule.grace_s)
            dates = _dates_back(schedule.at_or_before, state.cursor, last, MAX_SKIPPED + 1)
            due = [d for d in dates if now - d <= grace]
            missed = [d for d in dates if now - d > grace]
            if len(missed) > MAX_SKIPPED:
                log.warning(
                    "%s: more than %d runs missed since %s; recording the latest %d as skipped",
                    name,
                    MAX_SKIPPED,
                    state.cursor.isoformat(),
                    MAX_SKIPPED,
                )
                missed = missed[-MAX_SKIPPED:]
            reason = _missed_reason(name, schedule.grace_s, missed, now) if missed else ""
            if self.store.advance(
                self.project,
                name,
                cursor=state.cursor,
                new_cursor=schedule.next_after(last),
                due=due,
                missed=missed,
                reason=reason,
                now=now,
            ):
                report.claimed += [(name, d) for d in due]
                report.skipped += [(name, d) for d in missed]
                if missed:
                    log.warning("%s", reason)

    # -- starting runs ----------------------------------------------------------------------------

    def dispatch(self, *, only: str | None = None, report: TickReport | None = None) -> TickReport:
        """Start queued runs, oldest first per pipeline, within limits and waits (`only`: one pipeline)."""
        report = report or TickReport(holder=_owner.me())
        now = self.clock.now()
        pipelines = self.pipelines()
        if pipelines is None:
            return report
        queued: dict[str, list[Claim]] = {}
        for claim in self.store.claims(self.project, pipeline=only, states=[QUEUED]):
            queued.setdefault(claim.pipeline, []).append(claim)
        for name, claims in queued.items():
            p = pipelines.get(name)
            if p is None:
                for claim in claims:
                    self._fail(claim, f"pipeline {name!r} is no longer in the project's code", now, report)
                continue
            settle_and_notify(self.runtime, self.project, name)
            going = self.store.running(self.project, name)
            active = len(going)
            for claim in claims:
                if active >= p.max_active_runs:
                    self._hold(claim, p.max_active_runs, going, now)
                    break
                unmet = unmet_wait(self.store, p, pipelines, claim, now)
                if unmet is not None:
                    message, expired = unmet
                    if not expired:
                        break  # in order: later dates wait behind this one
                    self._fail(claim, message, now, report)
                    continue
                if not self.store.take(claim.key, _owner.me(), now):
                    continue
                job = Job(self.project, name, claim.logical_date, claim.kind, _owner.me())
                log.info("starting %s run of %s for %s", claim.kind, name, claim.logical_date.isoformat())
                report.started.append((name, claim.logical_date))
                active += 1
                self.launcher.launch(job, p)
        return report

    def _hold(self, claim: Claim, limit: int, going: list[ActiveRun], now: datetime) -> None:
        """Record why `claim` waits: its pipeline already runs `limit` runs (manual ones count too)."""
        reason = (
            f"waiting: {claim.pipeline} already runs {', '.join(a.describe() for a in going)} "
            f"(max_active_runs={limit}); it starts when one ends"
        )
        if claim.reason != reason and self.store.note(claim.key, reason, now):
            log.info("%s run of %s for %s is %s", claim.kind, claim.pipeline, claim.logical_date, reason)

    def _fail(self, claim: Claim, message: str, now: datetime, report: TickReport) -> None:
        from kawa.schedule.recovery import notify

        run_id = self.store.close_with_run(claim, status="failed", error=message, now=now, expect_owner=False)
        if run_id is not None:
            log.error(
                "%s run of %s for %s failed: %s", claim.kind, claim.pipeline, claim.logical_date, message
            )
            report.failed.append((claim.pipeline, claim.logical_date, message))
            notify(self.runtime, run_id)

    # -- ended and orphaned runs ------------------------------------------------------------------

    def reap(self, report: TickReport | None = None) -> None:
        """Settle the claims of launched runs whose process ended without finishing them."""
        from kawa.schedule.recovery import settle

        report = report or TickReport(holder=_owner.me())

        for ended in self.launcher.reap():
            claim = self.store.get(ended.job.key)
            if claim is None or claim.state != RUNNING:
                continue  # it finished its claim itself
            why = ended.error or "the run process ended without finishing its run"
            outcome = settle(self.runtime, self.store, claim, why, requeue=False, now=self.clock.now())
            report.recovered.append((claim.pipeline, claim.logical_date, outcome))

    def recover(self, report: TickReport | None = None) -> None:
        """Settle running claims whose process is gone (`kawa serve` was killed, a run process died)."""
        from kawa.schedule.recovery import settle

        for claim in self.store.claims(self.project, states=[RUNNING]):
            if _owner.alive(claim.owner):
                continue
            why = (
                f"the process running it ({claim.owner}) is gone: kawa serve or the run was killed "
                "while the run was in progress"
            )
            outcome = settle(self.runtime, self.store, claim, why, requeue=True, now=self.clock.now())
            log.warning("%s run of %s for %s: %s", claim.kind, claim.pipeline, claim.logical_date, outcome)
            if report is not None:
                report.recovered.append((claim.pipeline, claim.logical_date, outcome))

    def _hold_lease(self, now: datetime) -> str:
        me = _owner.me()
        current = self.lease.holder(self.project)
        dead = current is not None and current[0] != me and not _owner.alive(current[0])
        holder = self.lease.acquire(self.project, me, now, self.lease_ttl_s, dead)
        if holder != me and holder != self._told_holder:
            log.warning("another scheduler (%s) holds the lease of project %s; waiting", holder, self.project)
        if holder == me and self._told_holder not in (None, me):
            log.info("scheduler lease of project %s taken over", self.project)
            self._last_recover = None
        self._told_holder = holder
        return holder


def _dates_back(
    at_or_before: Callable[[datetime], datetime | None], cursor: datetime, last: datetime, limit: int
) -> list[datetime]:
    """The run times from `cursor` to `last` in order, at most the latest `limit` of them."""
    out: list[datetime] = []
    current: datetime | None = last
    while current is not None and current >= cursor and len(out) < limit:
        out.append(current)
        current = at_or_before(current - timedelta(microseconds=1))
    return out[::-1]


def _missed_reason(name: str, grace_s: float, missed: list[datetime], now: datetime) -> str:
    first, last = missed[0].isoformat(), missed[-1].isoformat()
    span = first if first == last else f"{first} to {last}"
    return (
        f"{name}: {len(missed)} run(s) due {span} missed while kawa's scheduler was not running (back at "
        f"{now.isoformat()}); runs later than the grace of {grace_s:g}s are not run automatically. Run them "
        f"with `kawa pipeline backfill {name} --from {first} --to {last}`"
    )
