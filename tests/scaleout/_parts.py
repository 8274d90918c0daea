"""`kawa serve` parts run as their own processes by scale-out tests, and a SIGKILL at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class PartProcesses:
    """Starts `python -m kawa.serve.worker <part>` in a project folder (output in `<name>.out`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, part: str, name: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        out = open(self.root / f"{name or part}.out", "wb")  # noqa: SIM115 - the child holds it
        clean = {k: v for k, v in os.environ.items() if not k.startswith("KAWA")}
        child = subprocess.Popen(
            [sys.executable, "-m", "kawa.serve.worker", part],
            cwd=self.root,
            env={**clean, **(env or {})},
            stdout=out,
            stderr=out,
        )
        out.close()
        self.started.append(child)
        return child

    def kill_all(self) -> None:
        for child in self.started:
            if child.poll() is None:
                child.kill()
                child.wait()


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.02)


def kill_holding(
    redis: Any, victim: subprocess.Popen[bytes], group: str, consumer: str
) -> list[dict[str, Any]]:
    """SIGKILL `victim` at a moment it holds records of `group` unacknowledged; returns them.

    Stops it and looks, again and again, for up to 30 s; returns [] (and leaves it running) if it never
    held any.
    """
    held: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        os.kill(victim.pid, signal.SIGSTOP)
        held = redis.xpending_range("kawa:log", group, "-", "+", 10_000, consumername=consumer)
        if held:
            victim.kill()
            victim.wait()
        else:
            os.kill(victim.pid, signal.SIGCONT)
            time.sleep(0.003)
    return held
