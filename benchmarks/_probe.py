"""A SQL reader in its own process, for benchmarks that poll the warehouse while they drive load.

Opening the warehouse and reading every data file's footer on each poll takes tens of milliseconds of
CPU, part of it holding the GIL: in the load generator's process that delayed its own sends, which a
paced run then counted as acknowledgement latency. Here it costs the load generator nothing, and its
CPU is the process's own.

Protocol: one JSON string (a query) per line on stdin; one JSON list (the first column) per line back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from benchmarks._server import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent


class SqlProbe:
    """`query(sql)` runs in a child process holding the project's warehouse open as a reader does."""

    def __init__(self, lake: Path, project: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._probe", str(lake), project],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self._lock = threading.Lock()

    def query(self, sql: str) -> list[str]:
        """The first column of `sql`'s rows, as strings."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(json.dumps(sql) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the SQL probe process ended (exit code {self._proc.poll()})")
        return list(json.loads(line))

    def cpu_s(self) -> float:
        """CPU seconds the probe process has used so far."""
        return cpu_seconds(self._proc.pid)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> SqlProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(lake: str, project: str) -> None:
    from kawa.warehouse import Warehouse

    # One DuckDB thread: a poll's cost stays comparable with earlier runs of the benchmarks.
    warehouse = Warehouse(Path(lake), project, threads=1)
    for line in sys.stdin:
        column = warehouse.query(json.loads(line)).column(0).to_pylist()
        sys.stdout.write(json.dumps([str(v) for v in column]) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
