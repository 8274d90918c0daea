"""RayExecutor: each pipeline step a Ray task, placed on the cluster by its resource hints.

How a step crosses to its worker: as with the subprocess executor, its parameters and the references
(`StoredValue`) to earlier steps' outputs are pickled, and the worker loads those outputs from the
artifact store, runs the step, stores its return value there and answers with that reference plus what
the step recorded on its context (metrics, outputs, artifacts, lineage), which is copied back into the
run's context here. Tables never travel through Ray's object store, so a worker on another machine
runs a step as long as it can import kawa and the project's code and reach the project's stores.

While the step runs its output is streamed back (a streaming generator task) into the run's live log
file, so `kawa runs logs -f` follows it wherever it runs. `cpus`, `memory` and `gpu` hints become the
task's `num_cpus`, `memory` and `num_gpus`; a step over its memory hint or its timeout is stopped
(`ray.cancel(force=True)` ends its worker process). The timeout counts from the step's start on a
worker, not from its submission: a step waits up to its timeout (at least 10 minutes) for a worker.
Each step gets a fresh worker process (`max_calls=1`), so a changed project file is seen by the next
run. Ray does not retry a step: the runner does, by the run policy, as for every executor.

`import kawa` never imports Ray; this module imports it when a step is first run.
"""

from __future__ import annotations

import codecs
import functools
import logging
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from kawa.pipelines import resources
from kawa.pipelines.executor import StepCall, StepOutcome
from kawa.pipelines.process import child_call, refused, result_outcome, step_target

# How long one wait for the step's next piece of output lasts (timeouts are checked in between).
WAIT_S = 1.0
# The shortest time a step may wait for a worker to start it before it is stopped as timed out.
START_WAIT_S = 600.0
INSTALL_HINT = "install Ray with `pip install 'kawa[ray]'`"


class RayExecutor:
    """Runs each step as a task on a Ray cluster: `address` is `auto` (RAY_ADDRESS, or the cluster
    started on this machine), a `host:port` of the cluster's head, or `ray://host:port` (Ray Client)."""

    def __init__(self, address: str = "auto") -> None:
        self.address = address

    def run_step(self, call: StepCall) -> StepOutcome:
        target = step_target(call)
        if isinstance(target, str):
            return refused(call, target)
        try:
            data = child_call(call, *target)
        except Exception as exc:
            return refused(call, f"the inputs of step {call.ctx.step!r} cannot be sent to Ray: {exc}")
        try:
            connect(self.address)
        except Exception as exc:
            return refused(call, str(exc))
        hints = {**call.step.resources, **call.resources}
        options = task_options(hints, name=f"kawa:{call.ctx.pipeline}.{call.step.name}")
        problem = _infeasible(call.step.name, options)
        if problem is not None:
            return refused(call, problem)
        return self._run(call, data, hints, options)

    def _run(
        self, call: StepCall, data: dict[str, Any], hints: dict[str, Any], options: dict[str, Any]
    ) -> StepOutcome:
        import ray

        task = _step_task().options(num_returns="streaming", max_retries=0, retry_exceptions=False, **options)
        stream = task.remote(data, call.step.name, os.getcwd(), hints)
        log = _open_log(call.log_file)
        text = _Text()
        # The timeout counts from the step's start on a worker; the wait for one (a free CPU, a new
        # worker process on a loaded machine) gets as long again, and never less than START_WAIT_S.
        deadline = None if call.timeout_s is None else time.monotonic() + max(call.timeout_s, START_WAIT_S)
        started = False
        try:
            while True:
                wait = WAIT_S if deadline is None else max(0.0, min(WAIT_S, deadline - time.monotonic()))
                ready, _ = ray.wait([stream], timeout=wait)
                if not ready:
                    if deadline is not None and time.monotonic() >= deadline:
                        ray.cancel(stream, force=True)
                        why = _timeout_message(call) if started else _unstarted_message(call, options)
                        return _stopped(call, log, text, why, timed_out=True)
                    continue
                try:
                    kind, value = ray.get(next(stream))
                except StopIteration:
                    return _died(call, log, text, "its task ended without a result")
                except ray.exceptions.RayError as exc:
                    return _died(call, log, text, _describe(exc))
                if kind == "started":
                    started = True
                    if call.timeout_s is not None:
                        deadline = time.monotonic() + call.timeout_s
                elif kind == "log":
                    text.add(value)
                    if log is not None:
                        log.write(value)
                        log.flush()
                elif kind == "stopped":
                    ray.cancel(stream, force=True)
                    return _stopped(call, log, text, str(value), timed_out=False)
                else:
                    return result_outcome(call, value, text.value())
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM of a run process): the step must not outlive its run.
            ray.cancel(stream, force=True)
            raise
        finally:
            if log is not None:
                log.close()


@functools.cache
def _step_task() -> Any:
    import ray

    from kawa.pipelines._ray_step import run_step_task

    # A fresh worker process per step: a changed project file is seen, nothing leaks between steps.
    return ray.remote(max_calls=1)(run_step_task)


def connect(address: str) -> None:
    """Connect this process to the Ray cluster at `address` unless it is connected (or is a Ray worker)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(f"stores.executor names Ray, but Ray is not installed; {INSTALL_HINT}") from None
    if ray.is_initialized():
        return
    _check_reachable(address)
    try:
        # Steps' output comes back through their own stream; Ray's copy to this process would repeat it.
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, namespace="kawa")
    except Exception as exc:
        where = (os.environ.get("RAY_ADDRESS") or "this machine") if address == "auto" else address
        raise RuntimeError(
            f"cannot connect to the Ray cluster at {where} ({type(exc).__name__}: {exc}); start one with "
            "`ray start --head`, set RAY_ADDRESS to its address, or set `stores.executor: local` in kawa.yaml"
        ) from None


def _check_reachable(address: str) -> None:
    """Fail at once when nothing listens at the cluster's address (ray.init would retry for minutes)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or address in ("", "auto", "local"):
        return  # Ray finds the cluster itself (the one started on this machine) or says why not
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise RuntimeError(
            f"cannot connect to the Ray cluster at {host}:{port} ({exc}); start one with `ray start --head`, "
            "set RAY_ADDRESS to its address, or set `stores.executor: local` in kawa.yaml"
        ) from None


def task_options(hints: dict[str, Any], *, name: str) -> dict[str, Any]:
    """Ray task options for a step's resource hints: cpus -> num_cpus, memory -> memory, gpu -> num_gpus.

    >>> task_options({"cpus": 2, "memory": "8GB", "gpu": 1}, name="kawa:p.s")
    {'name': 'kawa:p.s', 'num_cpus': 2.0, 'memory': 8000000000, 'num_gpus': 1}
    >>> task_options({}, name="kawa:p.s")
    {'name': 'kawa:p.s', 'num_cpus': 1.0}
    """
    options: dict[str, Any] = {"name": name, "num_cpus": float(hints.get("cpus") or 1)}
    if hints.get("memory"):
        options["memory"] = resources.memory_bytes(str(hints["memory"]))
    if hints.get("gpu"):
        options["num_gpus"] = hints["gpu"]
    return options


def _infeasible(step: str, options: dict[str, Any]) -> str | None:
    """Why no node of the cluster could ever run the task (Ray would leave it pending), or None."""
    import ray

    try:
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    except Exception:  # the check is a courtesy; the task still runs (or waits) without it
        return None
    wanted = {"CPU": options["num_cpus"], "memory": options.get("memory"), "GPU": options.get("num_gpus")}
    wanted = {k: v for k, v in wanted.items() if v}
    if not nodes or any(all(node.get(k, 0) >= v for k, v in wanted.items()) for node in nodes):
        return None
    largest = {k: max(node.get(k, 0) for node in nodes) for k in wanted}
    asked = ", ".join(f"{k}={v:g}" for k, v in wanted.items())
    has = ", ".join(f"{k}={v:g}" for k, v in largest.items())
    return (
        f"step {step!r} asks for {asked}, but no node of the Ray cluster has that much (the largest "
        f"have {has}); lower its @step(cpus=..., memory=..., gpu=...) hints or add a bigger node"
    )


class _Text:
    """The step's output as text, decoded piece by piece (a character may span two pieces)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []

    def add(self, data: bytes) -> None:
        self._parts.append(self._decoder.decode(data))

    def value(self) -> str:
        return "".join(self._parts) + self._decoder.decode(b"", final=True)


def _open_log(path: Path | None) -> IO[bytes] | None:
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


def _timeout_message(call: StepCall) -> str:
    return (
        f"timeout: step {call.step.name!r} ran for longer than its timeout of {call.timeout_s:g}s and "
        "was stopped; give it more with @step(timeout_s=...) or Pipeline(..., timeout_s=...)"
    )


def _unstarted_message(call: StepCall, options: dict[str, Any]) -> str:
    asked = ", ".join(f"{k}={v:g}" for k, v in options.items() if k != "name")
    waited = max(call.timeout_s or 0.0, START_WAIT_S)
    return (
        f"timeout: step {call.step.name!r} waited {waited:g}s for a Ray worker with {asked} and was not "
        "started; the cluster is busy or too small: add nodes, or lower its @step(cpus=..., memory=..., "
        "gpu=...) hints"
    )


def _stopped(call: StepCall, log: IO[bytes] | None, text: _Text, why: str, *, timed_out: bool) -> StepOutcome:
    note = f"\n{why}\n"
    if log is not None:
        log.write(note.encode())
    return StepOutcome(error=why + "\n", log=text.value() + note, timed_out=timed_out)


def _died(call: StepCall, log: IO[bytes] | None, text: _Text, why: str) -> StepOutcome:
    message = f"the Ray task of step {call.step.name!r} failed before it reported a result: {why}"
    return _stopped(call, log, text, message, timed_out=False)


def _describe(exc: Exception) -> str:
    """A Ray error in a line: which kind, and Ray's own first line about it (all of it for kawa's own)."""
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):
        return f"{exc}"  # kawa's task code itself failed in the worker: its traceback says where
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no details'}"
