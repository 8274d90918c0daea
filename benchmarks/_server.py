"""Start and watch the processes under test: a real `kawa serve`, or the trivial sink used as a baseline."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time `pid` has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> dict[str, int]:
    """The part name (`api`, `lake`) of each `kawa.serve.worker` child of `pid`."""
    found: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if b"kawa.serve.worker" in argv:
            found[argv[argv.index(b"kawa.serve.worker") + 1].decode()] = int(entry)
    return found


@dataclass
class Kawa:
    """A `kawa serve` in its own project folder, with the keys `kawa init` made."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    write_key: str
    admin_key: str
    read_key: str = ""
    log: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.folder / ".kawa"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _kawa_command() -> list[str]:
    return [sys.executable, "-m", "kawa.cli"]


def start_kawa(
    folder: Path,
    project: str = "bench",
    timeout: float = 60.0,
    prepare: Callable[[Path], None] | None = None,
    env: dict[str, str] | None = None,
) -> Kawa:
    """`kawa init` then `kawa serve` on a free port; returns once the supervisor says ready.

    `prepare(folder)` runs between the two: to write project code or register models before serving.
    `env` adds to the environment of both (e.g. `KAWA__STORES__EVENT_LOG=redis://...`).
    """
    environ = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    out = subprocess.run(
        [*_kawa_command(), "init", "--project", project],
        cwd=folder,
        capture_output=True,
        check=True,
        env=environ,
    ).stdout.decode()
    keys = dict(re.findall(r"^(\w+_key)=(\S+)$", out, re.MULTILINE))
    if prepare is not None:
        prepare(folder)
    port = free_port()
    process = subprocess.Popen(
        [*_kawa_command(), "serve", "--port", str(port)],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=environ,
    )
    kawa = Kawa(folder, port, process, keys["write_key"], keys["admin_key"], keys["read_key"])
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            kawa.log.append(line)
            if "ready at" in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            kawa.stop()
            tail = "\n".join(kawa.log[-20:])
            raise RuntimeError(f"kawa serve did not become ready; its last lines:\n{tail}")
    kawa.pids = children(process.pid)
    return kawa


def start_sink(timeout: float = 30.0) -> tuple[subprocess.Popen[bytes], int]:
    """The baseline server: uvicorn with kawa's settings and an app that only reads the body."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._sink", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the baseline sink server did not start")


class Sampler:
    """Samples the resident memory of some processes twice a second, keeping the peak of their sum."""

    def __init__(self, pids: list[int], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.peak = 0
        self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.last = sum(rss_bytes(p) for p in self.pids)
            self.peak = max(self.peak, self.last)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def fsync_rate(folder: Path, size: int, seconds: float = 1.0) -> float:
    """Appends of `size` bytes followed by fdatasync per second: the disk's floor under durable ingest."""
    path = folder / "fsync-probe.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    data = b"x" * size
    count = 0
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            os.write(fd, data)
            os.fdatasync(fd)
            count += 1
        return count / (time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
