"""The process a `SubprocessExecutor` starts for one step: `python -m kawa.pipelines._child WORKDIR`.

It reads `WORKDIR/call.pkl`, finds the step's function again by module and name (the project's code
files are imported the way kawa imports them), loads the inputs, runs the step with a fresh RunContext,
stores the return value in the artifact store and writes `WORKDIR/result.json`. Its stdout and stderr
are the step's log file; log records of INFO and up go there too.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from kawa.pipelines._capture import LOG_FORMAT
from kawa.pipelines.process import CALL, RESULT  # not the reverse: see process.py


def main(argv: list[str]) -> int:
    work = Path(argv[1])
    call: dict[str, Any] = pickle.loads((work / CALL).read_bytes())  # written by our parent just now
    _watch_parent(int(call["parent_pid"]))
    for entry in reversed(call["sys_path"]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the metadata store's migration check
    result = _run(call)
    sys.stdout.flush()
    sys.stderr.flush()
    tmp = work / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, work / RESULT)
    return 0


def _run(call: dict[str, Any]) -> dict[str, Any]:
    import msgspec

    from kawa.config import Config
    from kawa.pipelines import handoff
    from kawa.pipelines.context import RunContext
    from kawa.runtime import Runtime

    config = msgspec.convert(call["config"], Config)
    runtime = Runtime(config)
    ctx: RunContext | None = None
    try:
        fn = _locate(call["module"], call["qualname"], config)
        payload = pickle.loads(call["payload"])
        ctx = RunContext(runtime, **payload["ctx"])
        kwargs = {
            k: handoff.load(runtime.artifacts, v) if isinstance(v, handoff.StoredValue) else v
            for k, v in payload["kwargs"].items()
        }
        if call["context_param"] is not None:
            kwargs[call["context_param"]] = ctx
        try:
            value = fn(**kwargs)
        except (Exception, SystemExit) as exc:
            return _failed(ctx, exc, skip_frames=1)
        try:
            ref = handoff.store(runtime.artifacts, handoff.output_path(ctx.run_id, ctx.step), value)
        except Exception as exc:
            message = (
                f"step {ctx.step!r} returned a {type(value).__name__} that cannot be handed to the next "
                f"step ({type(exc).__name__}: {exc}); return an Arrow table, JSON data or a picklable object"
            )
            print(message, file=sys.stderr)
            return {**_recorded(ctx), "ok": False, "error": message + "\n"}
        return {**_recorded(ctx), "ok": True, "value": ref.to_json()}
    except BaseException as exc:  # kawa could not even start the step: say why in its log
        return _failed(ctx, exc, skip_frames=0)
    finally:
        if ctx is not None:
            ctx.close()
        runtime.close()


def _failed(ctx: Any, exc: BaseException, *, skip_frames: int) -> dict[str, Any]:
    tb = exc.__traceback__
    for _ in range(skip_frames):
        tb = tb.tb_next if tb is not None else None
    error = "".join(traceback.format_exception(type(exc), exc, tb))
    sys.stderr.write(error)
    recorded = _recorded(ctx) if ctx is not None else {}
    return {**recorded, "ok": False, "error": error}


def _recorded(ctx: Any) -> dict[str, Any]:
    return {
        "outputs": ctx.outputs,
        "metrics": ctx.metrics,
        "artifact_paths": ctx.artifact_paths,
        "lineage": ctx.lineage,
    }


def _locate(module: str, qualname: str, config: Any) -> Any:
    """The function `module.qualname`, importing the project's code files first if it is one of them."""
    from kawa.pipelines.step import Step

    if module.startswith("kawa_project_") and module not in sys.modules:
        from kawa.project_code import load

        load(config)
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj.fn if isinstance(obj, Step) else obj


def _watch_parent(parent: int) -> None:
    """Stop this step (and what it started) when the process that runs the pipeline is gone."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="kawa-parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
