"""The supervisor: starts each part as a child process, prefixes its logs, restarts it if it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from kawa.config import Config
from kawa.observe.logs import as_json_line
from kawa.observe.metrics import MULTIPROC_ENV, multiprocess_dir, reset_multiprocess_dir
from kawa.observe.process import problem as observe_problem
from kawa.serve._signals import set_on_stop_signals
from kawa.serve.worker import heartbeat_path, part_alive, server_url_path

PARTS = ("api", "lake", "triggers", "bandits", "scheduler")
# Parts that say they are alive by touching a heartbeat file at least this often.
HEARTBEAT_S = 5.0


@dataclass
class Child:
    part: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Runs `kawa serve`'s parts until SIGINT/SIGTERM; one state folder, one supervisor."""

    def __init__(self, config: Config, config_file: Path | None, *, out: TextIO | None = None) -> None:
        self.config = config
        self.config_file = config_file
        self.out = out or sys.stdout
        # `api` answers /healthz for all; with --workers N, api-2..api-N share its port.
        extra_apis = [f"api-{i}" for i in range(2, config.server.workers + 1)]
        # With triggers.workers N, triggers-2..triggers-N share the trigger work (by entity key).
        extra_triggers = [f"triggers-{i}" for i in range(2, config.triggers.workers + 1)]
        parts = (*PARTS[:1], *extra_apis, *PARTS[1:3], *extra_triggers, *PARTS[3:])
        self.children = {part: Child(part) for part in parts}
        self.stopping = threading.Event()
        self.metrics_dir = multiprocess_dir(config.state_path, os.getpid())
        self._print_lock = threading.Lock()

    @property
    def url(self) -> str:
        host = self.config.server.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.config.server.port}"

    def say(self, part: str, line: str) -> None:
        # JSON logs stay one JSON object per line: the part goes in as a field instead of a prefix.
        text = as_json_line(part, line) if self.config.server.log_format == "json" else f"[{part:<8}] {line}"
        with self._print_lock:
            print(text, file=self.out, flush=True)

    def _env(self, part: str) -> dict[str, str]:
        env = dict(os.environ)
        if part == "lake":
            # pyarrow's default pool, mimalloc, kept more and more of what each flush's Parquet write
            # had freed in this long-lived process; jemalloc levels off (`make soak`, BENCHMARKS.md).
            # Only the variable reaches the pool Arrow's C++ code (the Parquet writer) allocates from.
            env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
        if self.config_file is not None:
            env["KAWA_CONFIG"] = str(self.config_file)
        env["KAWA__SERVER__HOST"] = self.config.server.host
        env["KAWA__SERVER__PORT"] = str(self.config.server.port)
        env["KAWA__SERVER__WORKERS"] = str(self.config.server.workers)
        env["KAWA__TRIGGERS__WORKERS"] = str(self.config.triggers.workers)
        env["KAWA__STATE_DIR"] = str(self.config.state_path)
        env["PYTHONUNBUFFERED"] = "1"
        env[MULTIPROC_ENV] = str(self.metrics_dir)  # one /metrics for all parts (kawa.observe.metrics)
        return env

    def _start(self, child: Child) -> None:
        # A heartbeat left by a killed predecessor would pass for this child's until it goes stale.
        heartbeat_path(self.config.state_path, child.part).unlink(missing_ok=True)
        child.process = subprocess.Popen(
            [sys.executable, "-m", "kawa.serve.worker", child.part],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._env(child.part),
            cwd=self.config.root,
        )
        child.started = time.monotonic()
        threading.Thread(target=self._pump, args=(child, child.process), daemon=True).start()

    def _pump(self, child: Child, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            self.say(child.part, raw.decode("utf-8", "replace").rstrip())

    def healthy(self) -> dict[str, bool]:
        status = {}
        try:
            status["api"] = httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            status["api"] = False
        for part in self.children:
            if part != "api":
                status[part] = part_alive(self.config.state_path, part, HEARTBEAT_S)
        return status

    def check(self) -> str | None:
        """What makes these settings impossible to serve, if anything."""
        workers = self.config.server.workers
        if workers < 1:
            return f"--workers must be at least 1 (got {workers})"
        if problem := observe_problem(self.config):
            return problem
        triggers = self.config.triggers.workers
        if triggers < 1:
            return f"--trigger-workers must be at least 1 (got {triggers})"
        if triggers > 1 and self.config.stores.event_log == "files":
            return (
                f"--trigger-workers {triggers} needs an event log that many processes can read through "
                "consumer groups; the file log has one reader. Set stores.event_log to a redis:// URL "
                "(docs/backends.md), or run one trigger worker"
            )
        if workers > 1 and self.config.stores.event_log == "files":
            return (
                f"--workers {workers} needs an event log that many processes can append to; the file "
                "log has one writer. Set stores.event_log to a redis:// URL (docs/backends.md), or "
                "serve with one worker"
            )
        return None

    def run(self) -> int:
        set_on_stop_signals(self.stopping)
        problem = self.check()
        if problem:
            self.say("kawa", problem)
            return 2
        self.say("kawa", f"state in {self.config.state_path}")
        reset_multiprocess_dir(self.metrics_dir)
        for child in self.children.values():
            self._start(child)
        ready = False
        deadline = time.monotonic() + 60
        while not self.stopping.wait(0.2):
            for child in self.children.values():
                assert child.process is not None
                code = child.process.poll()
                if code is not None:
                    child.restarts += 1
                    delay = min(2 ** min(child.restarts, 5) * 0.25, 5.0)
                    self.say(child.part, f"exited with code {code}; restarting in {delay:.1f}s")
                    if self.stopping.wait(delay):
                        break
                    self._start(child)
            if not ready:
                status = self.healthy()
                if all(status.values()):
                    ready = True
                    # The port may come from --port, not kawa.yaml: CLI commands beside us read it here.
                    server_url_path(self.config.state_path).write_text(self.url + "\n")
                    self.say("kawa", f"ready at {self.url}")
                elif time.monotonic() > deadline:
                    waiting = ", ".join(p for p, ok in status.items() if not ok)
                    self.say("kawa", f"still waiting for: {waiting}")
                    deadline = time.monotonic() + 30
        return self.stop()

    def stop(self) -> int:
        self.say("kawa", "stopping")
        server_url_path(self.config.state_path).unlink(missing_ok=True)
        for child in self.children.values():
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in self.children.values():
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.say("kawa", "stopped")
        return 0
