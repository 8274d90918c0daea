"""Starting claimed runs: here and now (`InlineLauncher`), or in a process of their own (`ProcessLauncher`).

Whatever starts it, a claimed run goes through `execute`: the process that runs it first takes the
claim over from the launcher (compare-and-set), so a claim that recovery gave back to the queue in
the meantime is never run twice; it then links the run to the claim and marks the claim done.
The process launcher is what `kawa serve` uses: a long run does not hold up other pipelines'
schedules, and a crash in a run never takes the scheduler down.

    python -m kawa.schedule.launch PROJECT PIPELINE LOGICAL_DATE KIND OWNER < config.json
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kawa.pipelines.run_process import output_tail, start_run_process
from kawa.schedule import _owner
from kawa.schedule.store import ScheduleStore

if TYPE_CHECKING:
    from kawa.config import Config
    from kawa.pipelines import Executor, Pipeline, RunEvent, RunRecord
    from kawa.runtime import Runtime


@dataclass(frozen=True)
class Job:
    """A claimed run to start: whose, for which logical date, of which kind, claimed by whom."""

    project: str
    pipeline: str
    logical_date: datetime
    kind: str  # scheduled | backfill
    owner: str  # the claim's owner when it was taken (the launcher)

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.project, self.pipeline, self.logical_date)


@dataclass(frozen=True)
class Ended:
    """A launched job whose process ended; `error` says how, when it did not end cleanly."""

    job: Job
    error: str | None


class Launcher(Protocol):
    """Starts claimed jobs and reports the ones whose process ended."""

    def launch(self, job: Job, pipeline: Pipeline) -> None: ...

    def reap(self) -> list[Ended]: ...

    def running(self) -> int: ...

    def close(self) -> None: ...


def execute(
    runtime: Runtime,
    pipeline: Pipeline,
    job: Job,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_event: Callable[[RunEvent], None] | None = None,
    executor: Executor | None = None,
) -> RunRecord | None:
    """Run a claimed job in this process; None if the claim was no longer the launcher's to give."""
    from kawa.pipelines import run_pipeline

    store = ScheduleStore(runtime.metadata)
    me = _owner.me()
    if me != job.owner and not store.hand_over(job.key, job.owner, me, now()):
        return None

    def linked(event: RunEvent) -> None:
        if event.kind == "run_started":
            store.link(job.key, me, event.run_id, now())
        if on_event is not None:
            on_event(event)

    record = run_pipeline(
        runtime,
        pipeline,
        None,
        project=job.project,
        kind=job.kind,
        logical_date=job.logical_date,
        on_event=linked,
        executor=executor,
    )
    store.finish(job.key, me, record.run_id, now())
    return record


class InlineLauncher:
    """Runs each job to its end inside `launch`, in this process: for tests and one-off backfills."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_event: Callable[[RunEvent], None] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.runtime = runtime
        self.now = now
        self.on_event = on_event
        self.executor = executor
        self._ended: list[Ended] = []

    def launch(self, job: Job, pipeline: Pipeline) -> None:
        try:
            execute(self.runtime, pipeline, job, now=self.now, on_event=self.on_event, executor=self.executor)
            self._ended.append(Ended(job, None))
        # Only kawa itself failing (e.g. the metadata store) raises here; a run's own errors never do.
        except Exception as exc:
            self._ended.append(Ended(job, f"the run could not be recorded: {type(exc).__name__}: {exc}"))

    def reap(self) -> list[Ended]:
        ended, self._ended = self._ended, []
        return ended

    def running(self) -> int:
        return 0

    def close(self) -> None:
        pass


class ProcessLauncher:
    """Runs each job in a child process (`python -m kawa.schedule.launch`) and reaps it when it ends."""

    def __init__(self, config: Config, *, output_dir: Path | None = None) -> None:
        import msgspec

        self.config = config
        self._config_json = msgspec.json.encode(config)
        self.output_dir = output_dir or config.state_path / "run" / "scheduler"
        self._children: dict[tuple[str, str, datetime], tuple[Job, subprocess.Popen[bytes], Path]] = {}

    def launch(self, job: Job, pipeline: Pipeline) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        out = self.output_dir / f"{job.pipeline}-{job.logical_date.strftime('%Y%m%dT%H%M%S%f')}.out"
        with out.open("wb") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kawa.schedule.launch",
                    job.project,
                    job.pipeline,
                    job.logical_date.isoformat(),
                    job.kind,
                    job.owner,
                ],
                stdin=subprocess.PIPE,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=self.config.root,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        assert process.stdin is not None
        process.stdin.write(self._config_json)
        process.stdin.close()
        self._children[job.key] = (job, process, out)

    def reap(self) -> list[Ended]:
        ended: list[Ended] = []
        for key, (job, process, out) in list(self._children.items()):
            code = process.poll()
            if code is None:
                continue
            del self._children[key]
            error = None
            if code != 0:
                error = f"the run process exited with code {code}:\n{output_tail(out)}"
            out.unlink(missing_ok=True)
            ended.append(Ended(job, error))
        return ended

    def running(self) -> int:
        return len(self._children)

    def pids(self) -> list[int]:
        return [process.pid for _, process, _ in self._children.values()]

    def close(self) -> None:
        # A run still going is asked to stop: it records itself as cancelled and sends its message.
        for _, process, _ in self._children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)


def main(argv: list[str]) -> int:
    """The run process: read the config from stdin, take the claim over, run the pipeline."""
    from kawa.pipelines import executor_for, find_pipeline
    from kawa.runtime import Runtime

    if len(argv) != 5:
        print("usage: python -m kawa.schedule.launch PROJECT PIPELINE LOGICAL_DATE KIND OWNER < config.json")
        return 2
    project, name, date, kind, owner = argv
    # SIGTERM (kawa serve stopping) ends the run the way Ctrl-C does: recorded as cancelled.
    config = start_run_process()
    runtime = Runtime(config)
    try:
        pipeline = find_pipeline(config, name)
        job = Job(project, name, datetime.fromisoformat(date), kind, owner)
        # Steps run where kawa.yaml says (processes of their own, or Ray), as `kawa pipeline run` does.
        record = execute(runtime, pipeline, job, executor=executor_for(config))
    finally:
        runtime.close()
    if record is None:
        print(f"run of {name} for {date} was taken over elsewhere; not running it here")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
