"""Runs started from the HTTP API or the web UI: recorded at once, then run in a process of their own.

The request checks the parameters exactly as `kawa pipeline run -p` does and records the run as
queued, so its id is known before anything runs and the answer can link to it. A child process
(`python -m kawa.pipelines.background RUN_ID`, the config on stdin, like the scheduler's run
processes) then loads the project's code, runs the recorded run with each step where kawa.yaml's
`stores.executor` says (a process of its own, or a Ray task), and sends its status message as any
run does. The server never runs steps itself and never waits for them; a thread per child only reaps
it, and ends the record as failed (with the child's last output) if the child died without ending it.

    python -m kawa.pipelines.background RUN_ID < config.json
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kawa.pipelines.active import ORPHANED
from kawa.pipelines.run_process import output_tail, start_run_process
from kawa.pipelines.runner import record_run
from kawa.pipelines.runs import FAILED, FINISHED, SKIPPED, RunRecord, RunStore

if TYPE_CHECKING:
    from kawa.config import Config
    from kawa.pipelines.pipeline import Pipeline
    from kawa.runtime import Runtime

log = logging.getLogger(__name__)

# How much of a dead run process's output goes into the run's error.


class BackgroundRuns:
    """Starts runs in child processes and reaps them; `close` asks the ones still going to stop."""

    def __init__(self, config: Config, *, output_dir: Path | None = None) -> None:
        import msgspec

        self.config = config
        self._config_json = msgspec.json.encode(config)
        self.output_dir = output_dir or config.state_path / "run" / "background"
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(
        self,
        runtime: Runtime,
        pipeline: Pipeline,
        params: Mapping[str, Any] | None = None,
        *,
        experiment: str = "default",
        project: str | None = None,
        force: bool = False,
    ) -> RunRecord:
        """Record a manual run of `pipeline` and start it; bad parameters raise ParamError first.

        While the pipeline runs `max_active_runs` runs, RunLimitReached refuses it unless `force`.
        """
        record = record_run(
            runtime, pipeline, params, experiment=experiment, project=project, kind="manual", force=force
        )
        self._spawn(runtime, record)
        return record

    def rerun(
        self, runtime: Runtime, pipeline: Pipeline, earlier: RunRecord, *, force: bool = False
    ) -> RunRecord:
        """Start a new run of `earlier`'s pipeline with its parameters, experiment and project."""
        return self.start(
            runtime,
            pipeline,
            earlier.params,
            experiment=earlier.experiment,
            project=earlier.project,
            force=force,
        )

    def running(self) -> list[str]:
        """The ids of the runs whose process has not ended yet."""
        with self._lock:
            return [run_id for run_id, p in self._children.items() if p.poll() is None]

    def pid(self, run_id: str) -> int | None:
        """The process id of run `run_id`'s process while it runs."""
        with self._lock:
            process = self._children.get(run_id)
        return process.pid if process is not None and process.poll() is None else None

    def close(self) -> None:
        # A run still going records itself as cancelled and sends its status message, as on Ctrl-C.
        with self._lock:
            children = list(self._children.values())
        for process in children:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def _spawn(self, runtime: Runtime, record: RunRecord) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        out = self.output_dir / f"{record.run_id}.out"
        try:
            with out.open("wb") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-m", "kawa.pipelines.background", record.run_id],
                    stdin=subprocess.PIPE,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    cwd=self.config.root,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            assert process.stdin is not None
            process.stdin.write(self._config_json)
            process.stdin.close()
        except OSError as exc:
            end_unstarted(runtime, record, f"the run process could not be started: {exc}")
            raise
        with self._lock:
            self._children[record.run_id] = process
        threading.Thread(
            target=self._reap, args=(runtime, record, process, out), name=f"run-{record.run_id}", daemon=True
        ).start()

    def _reap(self, runtime: Runtime, record: RunRecord, process: subprocess.Popen[bytes], out: Path) -> None:
        code = process.wait()
        with self._lock:
            self._children.pop(record.run_id, None)
        try:
            now = RunStore(runtime.metadata).get(record.run_id)
            # Reading it may have settled it as orphaned already; the exit code and output say more.
            orphaned = now is not None and now.message is None and ORPHANED in (now.error or "")
            if now is not None and (now.status not in FINISHED or orphaned):
                end_unstarted(runtime, now, f"the run process exited with code {code}:\n{output_tail(out)}")
            elif now is not None and now.message is None:
                log.warning(
                    "run %s ended without recording its status message; it said:\n%s",
                    now.run_id,
                    output_tail(out),
                )
        finally:
            out.unlink(missing_ok=True)


def end_unstarted(runtime: Runtime, record: RunRecord, error: str, status: str = FAILED) -> RunRecord:
    """End a run that never got going (its code failed to load, its process died) and send its message."""
    from kawa.pipelines.notify import finish_message

    store = RunStore(runtime.metadata)
    store.skip_remaining(record.run_id, SKIPPED)
    store.finish(
        record.run_id, status=status, metrics=record.metrics, artifacts=record.artifacts, error=error
    )
    ended = store.get(record.run_id) or record
    message = finish_message(runtime, ended)
    store.set_message(record.run_id, message)
    ended.message = message
    return ended


def main(argv: list[str]) -> int:
    """The run process: read the config from stdin, load the project's pipeline, run the recorded run."""
    from kawa.pipelines import ParamError, PipelineDefinitionError, executor_for, find_pipeline
    from kawa.pipelines.runner import run_recorded
    from kawa.project_code import ProjectCodeError
    from kawa.runtime import Runtime

    if len(argv) != 1:
        print("usage: python -m kawa.pipelines.background RUN_ID < config.json")
        return 2
    # SIGTERM (kawa serve stopping) ends the run the way Ctrl-C does: recorded as cancelled.
    config = start_run_process()
    runtime = Runtime(config)
    try:
        record = RunStore(runtime.metadata).get(argv[0])
        if record is None:
            print(f"no run with id {argv[0]!r} to run")
            return 2
        try:
            pipeline = find_pipeline(config, record.pipeline)
            values = pipeline.resolve_params(record.params)
        except (LookupError, ParamError, PipelineDefinitionError, ProjectCodeError) as exc:
            end_unstarted(runtime, record, f"the run could not start: {exc}")
            return 0
        # Steps where kawa.yaml says (processes of their own, or Ray), as `kawa pipeline run` does.
        run_recorded(runtime, pipeline, record, values, executor=executor_for(config))
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
