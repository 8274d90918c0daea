"""The scheduler as a part of `kawa serve`: ticks until stopped, each run in a process of its own."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kawa.schedule._code import ProjectPipelines
from kawa.schedule.launch import ProcessLauncher
from kawa.schedule.scheduler import Scheduler

if TYPE_CHECKING:
    from kawa.config import Config

log = logging.getLogger("kawa.schedule")

POLL_S = 0.5


def run_service(config: Config, beat: Path, stop: threading.Event, *, poll_s: float = POLL_S) -> None:
    """Schedule the project's pipelines until `stop` is set; touch `beat` while alive."""
    from kawa.runtime import Runtime

    runtime = Runtime(config)
    pipelines = ProjectPipelines(config)
    scheduler = Scheduler(runtime, pipelines, launcher=ProcessLauncher(config), poll_s=poll_s)
    parent = os.getppid()
    beat.parent.mkdir(parents=True, exist_ok=True)

    def pulse() -> None:
        while not stop.wait(0.5):
            # An orphan (the supervisor was killed alone) stops, so a restarted kawa serve takes over.
            if os.getppid() != parent:
                log.warning("kawa serve's supervisor is gone; the scheduler stops")
                stop.set()
                return
            beat.write_text(f"{time.time()}\n")

    beat.write_text(f"{time.time()}\n")
    threading.Thread(target=pulse, daemon=True).start()
    found = pipelines() or {}
    scheduled = sorted(name for name, p in found.items() if p.schedule is not None)
    log.info("scheduler started: %d scheduled pipeline(s) %s", len(scheduled), ", ".join(scheduled))
    try:
        scheduler.run(stop)
    finally:
        runtime.close()
        beat.unlink(missing_ok=True)
