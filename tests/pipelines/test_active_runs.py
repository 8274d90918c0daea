"""`max_active_runs` holds for manual runs: a second `kawa pipeline run` is refused while one runs,
unless forced, and a manual run killed with SIGKILL is settled as failed and no longer blocks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import KAWA, kawa

PIPELINES = """
import time
from pathlib import Path

from kawa.pipelines import Pipeline, step

@step
def hold(gate: str, started: str) -> int:
    Path(started).touch()
    while gate and not Path(gate).exists():
        time.sleep(0.05)
    return 1

daily = Pipeline("daily", steps=[hold], params={"gate": "", "started": "/dev/null"})
"""

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    kawa("init", "--project", "shop", cwd=tmp_path)
    (tmp_path / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
    return tmp_path


def _start_held(project: Path) -> tuple[subprocess.Popen[str], str]:
    """A `kawa pipeline run` whose step holds until the gate file exists; returns it once the step runs."""
    started = project / "started"
    started.unlink(missing_ok=True)
    params = ["-p", f"gate={project / 'gate'}", "-p", f"started={started}"]
    run = subprocess.Popen(
        [*KAWA, "pipeline", "run", "daily", "--in-process", *params],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.stdout is not None
    first = run.stdout.readline()
    found = re.search(r"run ([0-9a-f]{20}) of pipeline daily", first)
    assert found is not None, first + run.stdout.read()
    deadline = time.monotonic() + 60
    while not started.exists():
        assert run.poll() is None and time.monotonic() < deadline, "the held step never started"
        time.sleep(0.05)
    return run, found.group(1)


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KAWA, "pipeline", "run", "daily", "--in-process", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_manual_run_is_refused_while_one_runs_unless_forced(project: Path) -> None:
    held, run_id = _start_held(project)
    try:
        refused = _run(project)
        assert refused.returncode == 1
        said = " ".join((refused.stdout + refused.stderr).split())
        assert f"pipeline 'daily' is already running: manual run {run_id}" in said
        assert f"process {held.pid} on" in said and "max_active_runs=1" in said
        assert f"kawa runs logs {run_id} -f" in said and "kawa pipeline run daily --force" in said
        forced = _run(project, "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
    finally:
        (project / "gate").touch()
        held.communicate(timeout=60)
    assert held.returncode == 0
    listed = kawa("runs", "list", "--pipeline", "daily", cwd=project).stdout
    assert listed.count("succeeded") == 2 and "failed" not in listed
    assert _run(project).returncode == 0  # the limit is free again once the run has ended


def test_a_manual_run_killed_with_sigkill_is_settled_as_failed_and_no_longer_blocks(project: Path) -> None:
    held, run_id = _start_held(project)
    os.kill(held.pid, signal.SIGKILL)
    held.communicate(timeout=60)
    shown = kawa("runs", "show", run_id, cwd=project).stdout
    assert "failed" in shown
    assert "the process that ran it ended without recording the end" in " ".join(shown.split())
    (project / "gate").touch()
    after = _run(project)
    assert after.returncode == 0, after.stdout + after.stderr
    listed = kawa("runs", "list", "--pipeline", "daily", cwd=project).stdout
    assert listed.count("failed") == 1 and listed.count("succeeded") == 1
