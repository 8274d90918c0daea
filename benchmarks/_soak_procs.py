"""What a soak watches: every process of a server's tree (RSS, open files, threads), and whether it grew.

Processes are read from /proc: the tree is rebuilt at every sample, so a part the supervisor restarted
or a pipeline run's short-lived process shows up under its own label. A `kawa.serve.worker` child is
labelled by its part (`api`, `lake`, `triggers`); the root is `supervisor`; anything else by its parent's
label and its command (`api>python -m kawa.pipelines.background`).
"""

from __future__ import annotations

import contextlib
import os
import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Proc:
    """One process at one sample."""

    pid: int
    label: str
    rss: int  # bytes
    fds: int
    threads: int
    anon: int  # bytes of RSS that are the process's own memory (heap, stacks), not mapped files


def _ppids() -> dict[int, int]:
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                found[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return found


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _label(pid: int, parent: str | None) -> str:
    argv = _argv(pid)
    if parent is None:
        return "supervisor"
    if "kawa.serve.worker" in argv and argv.index("kawa.serve.worker") + 1 < len(argv):
        return argv[argv.index("kawa.serve.worker") + 1]
    words = [os.path.basename(argv[0])] if argv else ["?"]
    if "-m" in argv and argv.index("-m") + 1 < len(argv):
        words += ["-m", argv[argv.index("-m") + 1]]
    elif "-c" in argv:  # the code itself is too long for a label; its first argument names it
        words += ["-c", *argv[argv.index("-c") + 2 : argv.index("-c") + 3]]
    elif len(argv) > 1:
        words.append(os.path.basename(argv[1]))
    return f"{parent}>{' '.join(words)}"


def _status(pid: int) -> tuple[int, int, int] | None:
    """(VmRSS in bytes, threads, RssAnon in bytes), or None once the process has gone."""
    rss = threads = anon = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return rss, threads, anon


def _fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def floor(xs: list[float], ys: list[float], buckets: int = 6) -> tuple[list[float], list[float]]:
    """The lowest y of each of `buckets` equal spans of x, at the span's middle (for a sawtooth's troughs).

    >>> floor([0, 1, 2, 3, 4, 5, 6], [5, 1, 6, 2, 7, 3, 9], buckets=3)
    ([1.0, 3.0, 5.0], [1, 2, 3])
    """
    if len(xs) < 2 * buckets:
        return xs, ys
    lo, width = xs[0], (xs[-1] - xs[0]) / buckets or 1.0
    lows: dict[int, float] = {}
    for x, y in zip(xs, ys, strict=True):
        b = min(int((x - lo) / width), buckets - 1)
        lows[b] = min(lows.get(b, y), y)
    return [lo + (b + 0.5) * width for b in sorted(lows)], [lows[b] for b in sorted(lows)]


def fd_targets(pid: int) -> list[str]:
    """What each open descriptor of `pid` points at (files, sockets, pipes), sorted; [] when it is gone."""
    out: list[str] = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for name in names:
        with contextlib.suppress(OSError):
            out.append(os.readlink(f"/proc/{pid}/fd/{name}"))
    return sorted(out)


def sample_tree(root: int) -> list[Proc]:
    """Every live process under `root` (itself included), parents before children."""
    ppids = _ppids()
    kids: dict[int, list[int]] = {}
    for pid, ppid in ppids.items():
        kids.setdefault(ppid, []).append(pid)
    out: list[Proc] = []
    seen: set[str] = set()
    queue: list[tuple[int, str | None]] = [(root, None)]
    while queue:
        pid, parent = queue.pop(0)
        label = base = _label(pid, parent)
        n = 1
        while label in seen:  # two live processes of one command: the later pid gets `#2`, `#3`...
            n += 1
            label = f"{base}#{n}"
        seen.add(label)
        status, fds = _status(pid), _fd_count(pid)
        if status is None or fds is None:
            continue
        out.append(Proc(pid, label, status[0], fds, status[1], status[2]))
        queue += [(child, label) for child in sorted(kids.get(pid, []))]
    return out


def dir_bytes(path: str) -> int:
    """Bytes of the files under `path` (0 for files that vanish while it is walked)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


@dataclass
class Series:
    """One label's samples over the run: (seconds since start, pid, rss, fds, threads, anon)."""

    label: str
    points: list[tuple[float, int, int, int, int, int]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return sorted({p[1] for p in self.points})


def collect(samples: list[tuple[float, list[Proc]]]) -> dict[str, Series]:
    """Group the samples by process label."""
    series: dict[str, Series] = {}
    for t, procs in samples:
        for p in procs:
            point = (t, p.pid, p.rss, p.fds, p.threads, p.anon)
            series.setdefault(p.label, Series(p.label)).points.append(point)
    return series


def verdict(
    series: Series,
    duration: float,
    *,
    rss_limit_mib: float,
    fd_limit: float,
) -> dict[str, Any]:
    """Start, end, max and the per-10-minute slope over the second half of the run, for RSS, fds, threads.

    Memory is judged on the anonymous part of RSS (heap, stacks): file-backed pages of mapped stores
    grow with the data and are cache, so RSS growing alone is reported (`file_pages_grew`), not failed.
    A process that lives through the whole run is judged: it grows if its second-half slope is above
    the limit AND the median of its last fifth is above the median of the second half's first fifth by
    more than one limit's worth, so a spike near the end cannot fail the run, and neither can warm-up.
    Short-lived processes (pipeline runs) are reported, not judged.
    """
    pts = series.points
    first, last = pts[0], pts[-1]
    spans = first[0] <= 0.05 * duration + 1 and last[0] >= 0.95 * duration - 1
    long_lived = spans and len(series.pids) == 1
    second = [p for p in pts if p[0] >= duration / 2] or pts[-1:]
    xs = [p[0] / 600 for p in second]
    out: dict[str, Any] = {"label": series.label, "pids": series.pids, "samples": len(pts)}
    out["long_lived"] = long_lived
    limits = {"rss_mib": rss_limit_mib, "anon_mib": rss_limit_mib, "fds": fd_limit, "threads": fd_limit}
    grew: list[str] = []
    for i, key in ((2, "rss_mib"), (5, "anon_mib"), (3, "fds"), (4, "threads")):
        scale = 2**20 if key.endswith("_mib") else 1
        values = [p[i] / scale for p in pts]
        tail = [p[i] / scale for p in second]
        judged_xs = xs
        if key.endswith("_mib"):
            # Memory is judged on its floor: the lowest sample of each sixth of the judged half. A part
            # whose memory swings on a sawtooth (the lake writer between compactions) holds what its
            # troughs hold; a leak lifts the troughs too.
            judged_xs, tail = floor(xs, tail)
        per_10min = slope(judged_xs, tail)
        out[key] = {
            "start": round(values[0], 1),
            "mid": round(tail[0], 1),
            "end": round(values[-1], 1),
            "max": round(max(values), 1),
            "slope_per_10min": round(per_10min, 2),
        }
        fifth = max(1, len(tail) // 5)
        rise = statistics.median(tail[-fifth:]) - statistics.median(tail[:fifth])
        if long_lived and per_10min > limits[key] and rise > limits[key]:
            grew.append(key)
    if "rss_mib" in grew and "anon_mib" not in grew:
        # Only mapped file pages grew (LMDB, Parquet and DuckDB files the process reads): that is the
        # page cache of a growing store, which the kernel can drop, not memory the process holds.
        grew.remove("rss_mib")
        out["file_pages_grew"] = True
    # A part of `kawa serve` (a label without `>`) seen with a second pid was restarted; a command its
    # parts start again and again (a pipeline run) shows many pids by design.
    out["restarted"] = ">" not in series.label and len(series.pids) > 1
    out["grew"] = grew
    return out
