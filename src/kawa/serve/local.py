"""Start `kawa serve` for a project folder as a child process, for `kawa demo` and other one-shot jobs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from types import TracebackType


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalServer:
    """`kawa serve` in `folder` on a free loopback port; a context manager that stops it on exit."""

    def __init__(self, folder: Path, *, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.env.pop("KAWA_CONFIG", None)
        self.log: deque[str] = deque(maxlen=200)
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 120.0) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "kawa.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.folder,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()

        def pump(stream: object) -> None:
            try:
                for line in stream:  # type: ignore[attr-defined]
                    self.log.append(line.rstrip())
                    if "ready at" in line:
                        ready.set()
            except ValueError:
                pass

        threading.Thread(target=pump, args=(self._process.stdout,), daemon=True).start()
        while not ready.wait(0.2):
            if self._process.poll() is not None or timeout <= 0:
                self.stop()
                raise RuntimeError("kawa serve did not start:\n" + "\n".join(self.log))
            timeout -= 0.2

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def kill(self) -> None:
        """SIGKILL the supervisor and every part at once, as a crash of the whole process tree would."""
        process, self._process = self._process, None
        if process is None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.stop()
