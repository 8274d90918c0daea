"""`kawa pipeline run` with its own processes and the cache, and `kawa runs logs -f`, end to end."""

from __future__ import annotations

import re
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
def numbers(upto: int) -> list[int]:
    print(f"counting to {upto}", flush=True)
    return list(range(upto))

@step
def total(numbers: list[int], gate: str) -> int:
    print("waiting for the gate", flush=True)
    while gate and not Path(gate).exists():
        time.sleep(0.05)
    print(f"total is {sum(numbers)}", flush=True)
    return sum(numbers)

daily = Pipeline("daily", steps=[numbers, total], params={"upto": 4, "gate": ""})
"""

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    kawa("init", "--project", "shop", cwd=tmp_path)
    (tmp_path / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
    return tmp_path


def _run_id(output: str) -> str:
    found = re.search(r"run ([0-9a-f]{20}) of pipeline", output)
    assert found is not None, output
    return found.group(1)


def test_unchanged_steps_are_reused_unless_no_cache(project: Path) -> None:
    first = kawa("pipeline", "run", "daily", cwd=project).stdout
    second = kawa("pipeline", "run", "daily", cwd=project).stdout
    assert "numbers: succeeded in" in second and f"(cached from run {_run_id(first)})" in second
    shown = kawa("runs", "show", _run_id(second), cwd=project).stdout
    assert f"cached from run {_run_id(first)}" in shown and "event_log: sent" in shown
    third = kawa("pipeline", "run", "daily", "--no-cache", cwd=project).stdout
    assert "cached" not in third


def test_runs_logs_follow_a_running_step(project: Path) -> None:
    gate = project / "gate"
    run = subprocess.Popen(
        [*KAWA, "pipeline", "run", "daily", "-p", f"gate={gate}"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert run.stdout is not None
        first = run.stdout.readline()
        run_id = _run_id(first)
        follower = subprocess.Popen(
            [*KAWA, "runs", "logs", run_id, "-f"], cwd=project, stdout=subprocess.PIPE, text=True
        )
        assert follower.stdout is not None
        seen = ""
        deadline = time.monotonic() + 60
        while "waiting for the gate" not in seen and time.monotonic() < deadline:
            seen += follower.stdout.readline()
        assert "counting to 4" in seen and "waiting for the gate" in seen and run.poll() is None
        gate.touch()
        rest, _ = follower.communicate(timeout=60)
        assert "total is 6" in rest and follower.returncode == 0
    finally:
        gate.touch()
        run.communicate(timeout=60)  # waits, and closes its pipe
    assert run.returncode == 0
    assert "== total (succeeded)" in kawa("runs", "logs", run_id, cwd=project).stdout
