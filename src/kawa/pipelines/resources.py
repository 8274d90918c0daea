"""Resource hints of a step (cpus, memory, gpu) turned into limits on the process that runs it.

- cpus: the step's process is pinned to that many CPUs (rounded up) and the thread-pool variables of
  the usual numeric libraries (OpenMP, BLAS, numexpr, Rayon, Polars, DuckDB through kawa) say the same.
- memory: a watchdog in the parent sums the resident memory of the step's process tree and stops the
  step when it goes over the hint. Not RLIMIT_AS: allocators (DuckDB, PyTorch, jemalloc) reserve far more
  address space than they touch, and would fail under a limit sized for what they use.
- gpu: CUDA_VISIBLE_DEVICES names that many of the GPUs this process may use (none for gpu=0).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B", re.IGNORECASE)
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "POLARS_MAX_THREADS",
    "KAWA_STEP_CPUS",
)


def memory_bytes(text: str) -> int:
    """A memory hint as bytes: '512MB', '8GB', '16GiB'.

    >>> memory_bytes("2GB"), memory_bytes("1GiB"), memory_bytes("512 MB")
    (2000000000, 1073741824, 512000000)
    """
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"memory {text!r} must be a size such as '512MB', '8GB' or '16GiB'")
    number, unit, binary = found.groups()
    unit = unit.upper()
    scale = 1024 ** "KMGT".index(unit) * 1024 if binary and unit else _UNITS[unit]
    return int(float(number) * scale)


def cpu_count(hints: Mapping[str, Any]) -> int | None:
    """Whole CPUs for the `cpus` hint (rounded up, at least 1), or None without one."""
    cpus = hints.get("cpus")
    return max(1, math.ceil(float(cpus))) if cpus is not None else None


def step_env(hints: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    """The environment of a step's process: `base` plus thread counts and visible GPUs from `hints`."""
    env = dict(base)
    cpus = cpu_count(hints)
    if cpus is not None:
        for name in THREAD_VARIABLES:
            env[name] = str(cpus)
    gpu = hints.get("gpu")
    if gpu is not None:
        visible = [d for d in base.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        chosen = visible[:gpu] if visible else [str(i) for i in range(gpu)]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)
    return env


def pin(pid: int, hints: Mapping[str, Any]) -> list[int] | None:
    """Pin process `pid` to as many of this process's CPUs as its `cpus` hint asks; returns them."""
    cpus = cpu_count(hints)
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[: min(cpus, len(allowed))]
    os.sched_setaffinity(pid, chosen)
    return chosen


def tree_rss(pid: int) -> int:
    """Resident bytes of process `pid` and all its descendants (0 once it is gone); Linux /proc only."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    total = 0
    seen: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        proc = Path(f"/proc/{current}")
        try:
            total += int((proc / "statm").read_text().split()[1]) * page
            for task in (proc / "task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    return total
