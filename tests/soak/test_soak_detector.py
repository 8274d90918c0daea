"""The soak's leak detector on a real process tree: a child that leaks files and memory is caught,
one that holds steady is not, and the tree is read from /proc with each child under its own label."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from benchmarks._soak_procs import collect, sample_tree, slope, verdict

# A parent that starts two children: `leaky` opens a file and keeps 1 MiB more every 50 ms, `steady`
# holds the same handful of files and memory throughout.
PARENT = """
import subprocess, sys, time
LOOP = "\\nwhile True:\\n    time.sleep(0.05)"
LEAKY = "import time\\nkept = []" + LOOP + "\\n    kept.append((open('/dev/null'), b'x' * 2**20))"
STEADY = "import time\\nkept = [open('/dev/null') for _ in range(3)]" + LOOP
for name, code in (("leaky", LEAKY), ("steady", STEADY)):
    subprocess.Popen([sys.executable, "-c", code, name])
time.sleep(60)
"""


@pytest.fixture
def tree() -> Iterator[int]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        yield parent.pid
    finally:
        for pid in [p.pid for p in sample_tree(parent.pid)][1:]:
            subprocess.run(["kill", "-9", str(pid)], check=False)
        parent.kill()
        parent.wait()


def test_growing_files_and_memory_are_caught_and_steady_ones_are_not(tree: int) -> None:
    deadline = time.monotonic() + 10
    while len(sample_tree(tree)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    samples = []
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        samples.append((time.monotonic() - started, sample_tree(tree)))
        time.sleep(0.1)
    samples.append((time.monotonic() - started, sample_tree(tree)))
    duration = samples[-1][0]
    series = collect(samples)
    labels = {label.rsplit(" ", 1)[-1] if ">" in label else label: label for label in series}
    assert set(labels) == {"supervisor", "leaky", "steady"}, series.keys()

    judged = {
        name: verdict(series[label], duration, rss_limit_mib=8, fd_limit=2) for name, label in labels.items()
    }
    assert judged["leaky"]["long_lived"]
    assert {"fds", "anon_mib", "rss_mib"} <= set(judged["leaky"]["grew"])
    assert judged["leaky"]["fds"]["end"] > judged["leaky"]["fds"]["mid"] + 10
    assert judged["steady"]["grew"] == []
    assert judged["supervisor"]["grew"] == []
    assert judged["steady"]["fds"]["mid"] == judged["steady"]["fds"]["end"]


def test_slope_is_the_least_squares_fit() -> None:
    xs = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert slope(xs, [2 * x + 1 for x in xs]) == pytest.approx(2.0)
    assert slope(xs, [5.0, 5.0, 5.0, 5.0, 5.0]) == 0.0
    assert slope([1.0], [3.0]) == 0.0
