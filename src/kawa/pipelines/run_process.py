"""What the processes that run one whole pipeline run share: start-up, and the tail of their output.

Both the scheduler (`python -m kawa.schedule.launch`) and runs started through the API
(`python -m kawa.pipelines.background`) start such a process with kawa's settings on stdin.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kawa.config import Config

# How much of a run process's output goes into the run's error when it dies.
TAIL_BYTES = 4000


def start_run_process() -> Config:
    """Log to stdout, treat SIGTERM like Ctrl-C (the run ends as cancelled), read the settings from stdin."""
    import msgspec

    from kawa.config import Config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    return msgspec.json.decode(sys.stdin.buffer.read(), type=Config)


def output_tail(path: Path) -> str:
    """The end of what a run process printed, for the run's error when it died."""
    try:
        data = path.read_bytes()
    except OSError:
        return "(no output kept)"
    return data[-TAIL_BYTES:].decode("utf-8", "replace").rstrip() or "(no output)"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
