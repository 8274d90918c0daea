"""SubprocessExecutor: each step in its own Python process, with a timeout, resource limits and a live log.

How inputs and outputs cross the process boundary: the parent pickles the step's parameters and the
references (`StoredValue`) to earlier steps' outputs into `call.pkl`; the child loads those outputs
from the artifact store (Arrow IPC for tables, JSON for small values, pickle for other objects, see
`handoff`), runs the step, stores its return value the same way and answers with `result.json`: the
reference to that value plus what the step recorded on its context (metrics, outputs, artifacts,
lineage). Tables never travel through a pipe, and a later step, run or cache hit reads the same file.

A step must be defined at the top level of a module (a project code file or an importable module):
the child imports it again by module and name.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec

from kawa.pipelines import handoff, resources
from kawa.pipelines.executor import StepCall, StepOutcome

# The files a step process reads its call from and writes its result to, in its work folder. They
# live here, not in _child: the package must not import _child, which runs as `python -m` (Python
# warns when a module it runs was imported first).
CALL = "call.pkl"
RESULT = "result.json"
# How long a stopped step gets between SIGTERM and SIGKILL.
STOP_GRACE_S = 3.0


class SubprocessExecutor:
    """Runs each step in a fresh `python` process: timeouts, cpus/memory/gpu hints, output to its log.

    `memory_check_s` is how often the memory watchdog samples the step's resident memory.
    """

    def __init__(self, *, poll_s: float = 0.05, memory_check_s: float = 0.2) -> None:
        self.poll_s = poll_s
        self.memory_check_s = memory_check_s

    def run_step(self, call: StepCall) -> StepOutcome:
        target = step_target(call)
        if isinstance(target, str):
            return refused(call, target)
        ctx = call.ctx
        work = ctx.runtime.state_path / "tmp" / "steps" / f"{ctx.run_id}-{ctx.step}-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True, exist_ok=True)
        try:
            return self._run(call, work, *target)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, call: StepCall, work: Path, module: str, qualname: str) -> StepOutcome:
        try:
            call_data = child_call(call, module, qualname)
        except Exception as exc:
            return refused(call, f"the inputs of step {call.ctx.step!r} cannot be sent to its process: {exc}")
        (work / CALL).write_bytes(pickle.dumps(call_data))
        log_file = call.log_file or work / "step.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        hints = {**call.step.resources, **call.resources}
        env = resources.step_env(hints, os.environ)
        env["PYTHONUNBUFFERED"] = "1"  # the live log shows print() output as it happens
        with log_file.open("ab") as log:
            start = log.tell()
            proc = subprocess.Popen(
                [sys.executable, "-m", "kawa.pipelines._child", str(work)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: stopping it stops what it started
            )
            try:
                resources.pin(proc.pid, hints)
                stopped = self._wait(proc, call, hints)
            except BaseException:
                _stop(proc)
                raise
        text = _read_from(log_file, start)
        if stopped is not None:
            note = f"\n{stopped}\n"
            with log_file.open("a", encoding="utf-8") as log_text:
                log_text.write(note)
            return StepOutcome(error=stopped + "\n", log=text + note, timed_out=stopped.startswith("timeout"))
        return _outcome(call, work / RESULT, proc.returncode, text)

    def _wait(self, proc: subprocess.Popen[bytes], call: StepCall, hints: dict[str, Any]) -> str | None:
        """Wait for the step's process; stop it on timeout or over its memory hint and say why."""
        deadline = None if call.timeout_s is None else time.monotonic() + call.timeout_s
        limit = resources.memory_bytes(hints["memory"]) if hints.get("memory") else None
        next_check = 0.0
        while proc.poll() is None:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                _stop(proc)
                return (
                    f"timeout: step {call.step.name!r} ran for longer than its timeout of "
                    f"{call.timeout_s:g}s and was stopped; give it more with @step(timeout_s=...) or "
                    "Pipeline(..., timeout_s=...)"
                )
            if limit is not None and now >= next_check:
                next_check = now + self.memory_check_s
                used = resources.tree_rss(proc.pid)
                if used > limit:
                    _stop(proc)
                    return (
                        f"memory: step {call.step.name!r} used {used / 1e6:,.0f} MB, over its memory hint "
                        f"of {hints['memory']}, and was stopped; raise it with @step(memory=...)"
                    )
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.poll_s)
        return None


def step_target(call: StepCall) -> tuple[str, str] | str:
    """The step function's (module, qualname) for a process to import it by, or why it cannot be."""
    fn = call.step.fn
    module, qualname = getattr(fn, "__module__", "__main__"), getattr(fn, "__qualname__", "")
    if module == "__main__" or "<locals>" in qualname or not qualname:
        return (
            f"step {call.step.name!r} is defined inside a function or in __main__ ({module}.{qualname}); "
            "a step that runs in its own process must be defined at the top level of a module "
            "(run it with InProcessExecutor otherwise)"
        )
    return module, qualname


def child_call(call: StepCall, module: str, qualname: str) -> dict[str, Any]:
    """What `kawa.pipelines._child` needs to run the step elsewhere; raises if its inputs cannot pickle."""
    ctx = call.ctx
    kwargs = {k: v for k, v in call.kwargs.items() if k != call.step.context_param}
    payload = pickle.dumps(
        {
            "kwargs": kwargs,
            "ctx": {
                "run_id": ctx.run_id,
                "pipeline": ctx.pipeline,
                "experiment": ctx.experiment,
                "project": ctx.project,
                "step": ctx.step,
                "params": ctx.params,
                "logical_date": ctx.logical_date,
            },
        }
    )
    return {
        "parent_pid": os.getpid(),
        "sys_path": [p for p in sys.path if p],
        "config": msgspec.to_builtins(ctx.runtime.config),
        "module": module,
        "qualname": qualname,
        "context_param": call.step.context_param,
        "payload": payload,
    }


def _outcome(call: StepCall, result_file: Path, returncode: int, text: str) -> StepOutcome:
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError):
        how = (
            f"was killed by signal {signal.Signals(-returncode).name}"
            if returncode < 0
            else f"exited with code {returncode}"
        )
        return StepOutcome(
            error=f"the process of step {call.step.name!r} {how} before it reported a result; see its log\n",
            log=text,
        )
    return result_outcome(call, result, text)


def result_outcome(call: StepCall, result: dict[str, Any], text: str) -> StepOutcome:
    """The outcome of a step run elsewhere from its `_child` result; copies what it recorded into the ctx."""
    ctx = call.ctx
    ctx.outputs.update(result.get("outputs", {}))
    ctx.metrics.update(result.get("metrics", {}))
    for path in result.get("artifact_paths", []):
        if path not in ctx.artifact_paths:
            ctx.artifact_paths.append(path)
    for entry in result.get("lineage", []):
        ctx.record(entry)
    if not result.get("ok"):
        return StepOutcome(error=result.get("error") or "the step failed\n", log=text)
    return StepOutcome(value=handoff.StoredValue.from_json(result["value"]), log=text)


def refused(call: StepCall, message: str) -> StepOutcome:
    """A step that could not be started: `message` goes to its log and is its error."""
    if call.log_file is not None:
        call.log_file.parent.mkdir(parents=True, exist_ok=True)
        with call.log_file.open("a", encoding="utf-8") as log:
            log.write(message + "\n")
    return StepOutcome(error=message + "\n", log=message + "\n")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the step's process group, SIGKILL after a grace period; returns once it is gone."""
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", errors="replace")
