"""A throw-away kawa project for the ML benchmarks: `kawa init` in a temp folder, its runtime and results.

Shared by the batch-prediction, online and training-set benchmarks; the ingest benchmark has its own.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kawa.config import load_config
from kawa.runtime import Runtime

RESULTS = Path(__file__).parent / "results"
PROJECT = "bench"


@contextmanager
def project(folder: Path, name: str = PROJECT) -> Iterator[Runtime]:
    """`kawa init --project name` in `folder` (an empty folder), and the runtime over its state."""
    subprocess.run(
        [sys.executable, "-m", "kawa.cli", "init", "--project", name],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    runtime = Runtime(load_config(folder / "kawa.yaml", env={}))
    try:
        yield runtime
    finally:
        runtime.close()


def read_key(folder: Path, name: str = PROJECT) -> str:
    """The project's read key, from the kawa.yaml that `kawa init` wrote."""
    return load_config(folder / "kawa.yaml", env={}).projects[name].read_key


class Clock:
    """Wall and CPU seconds (this process, every thread) of a block: `with Clock() as c: ...; c.wall`."""

    wall = 0.0
    cpu = 0.0

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, Python and the load average when the benchmark started."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def save(name: str, report: dict[str, Any], out: Path = RESULTS) -> Path:
    """Write `report` as benchmarks/results/<name>-<time>.json and return the path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    return path


def table(rows: list[tuple[str, list[Any]]], columns: list[str]) -> str:
    """A plain text table: a label per row, then one cell per column."""
    width = max(len(label) for label, _ in rows)
    lines = [f"{'':<{width}}  " + "  ".join(f"{c:>12}" for c in columns)]
    for label, cells in rows:
        lines.append(f"{label:<{width}}  " + "  ".join(f"{_fmt(c):>12}" for c in cells))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "-"
        return (
            f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"
        )
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
