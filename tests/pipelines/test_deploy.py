"""`kawa deploy` from a git checkout: the plan (pipelines and schedules added, changed, removed), applied."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kawa.cli import app
from kawa.config import load_config
from kawa.pipelines.deploy import current_deployment
from kawa.runtime import Runtime
from kawa.schedule.store import ScheduleStore

FIRST = """
from kawa.pipelines import Pipeline, step
from kawa.schedule.spec import Schedule

@step
def extract(limit: int) -> list[int]:
    return list(range(limit))

@step
def load(extract: list[int]) -> int:
    return sum(extract)

daily = Pipeline("daily", steps=[extract, load], params={"limit": 10},
                 schedule=Schedule(start="2099-01-01T02:00", every="1d", timezone="UTC"))
old = Pipeline("old", steps=[extract], params={"limit": 1})
"""

SECOND = """
from kawa.pipelines import Pipeline, step
from kawa.schedule.spec import Schedule

@step
def extract(limit: int) -> list[int]:
    return list(range(limit))

@step(retries=3)
def load(extract: list[int]) -> int:
    return sum(extract) * 2

@step
def report(load: int) -> None:
    print(load)

daily = Pipeline("daily", steps=[extract, load, report], params={"limit": 20},
                 schedule=Schedule(start="2099-01-01T02:00", every="1d", timezone="UTC"))
"""

PAST = """
from kawa.pipelines import Pipeline, step
from kawa.schedule.spec import Schedule

@step
def extract(limit: int) -> list[int]:
    return list(range(limit))

late = Pipeline("late", steps=[extract], params={"limit": 1},
                schedule=Schedule(start="2020-01-01T02:00", every="1d", timezone="UTC"))
"""


def _git(root: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


def _deployed(root: Path) -> dict[str, object] | None:
    runtime = Runtime(load_config(root / "kawa.yaml"))
    try:
        return current_deployment(runtime, "shop")
    finally:
        runtime.close()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_deploy_shows_the_changes_then_applies_them(tmp_path: Path) -> None:
    (tmp_path / "kawa.yaml").write_text("project: shop\n")
    (tmp_path / ".gitignore").write_text(".kawa/\n")
    (tmp_path / "pipelines.py").write_text(textwrap.dedent(FIRST))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "first")
    cli = CliRunner()
    env = {"KAWA_CONFIG": str(tmp_path / "kawa.yaml"), "COLUMNS": "200"}

    dry = cli.invoke(app, ["deploy", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "pipeline daily: added" in dry.output and "pipeline old: added" in dry.output
    assert "schedule of daily: added (every 1d from 2099-01-01T02:00" in dry.output
    assert "dry run: nothing was changed" in dry.output and _deployed(tmp_path) is None

    applied = cli.invoke(app, ["deploy"], env=env)
    assert applied.exit_code == 0, applied.output
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert f"deployed 2 pipeline(s) of project shop from commit {head[:12]}:" in applied.output
    deployed = _deployed(tmp_path)
    assert deployed is not None and deployed["source"] == {
        "root": str(tmp_path),
        "commit": head,
        "dirty": False,
    }
    runtime = Runtime(load_config(tmp_path / "kawa.yaml"))
    try:
        assert ScheduleStore(runtime.metadata).schedules("shop")["daily"].status == "active"
    finally:
        runtime.close()

    again = cli.invoke(app, ["deploy"], env=env)
    assert again.exit_code == 0 and "nothing to deploy" in again.output

    (tmp_path / "pipelines.py").write_text(textwrap.dedent(SECOND))
    changed = cli.invoke(app, ["deploy"], env=env)
    assert changed.exit_code == 0, changed.output
    assert (
        "pipeline daily: changed: step report added; step load: code changed; step load: policy changed; "
        "params limit: 10 -> 20"
    ) in changed.output
    assert "pipeline old: removed" in changed.output
    assert "(with uncommitted changes)" in changed.output
    later = _deployed(tmp_path)
    assert later is not None and sorted(later["pipelines"]) == ["daily"]  # type: ignore[call-overload]


def test_a_schedule_starting_in_the_past_is_refused_with_exit_code_1(tmp_path: Path) -> None:
    (tmp_path / "kawa.yaml").write_text("project: shop\n")
    (tmp_path / "pipelines.py").write_text(textwrap.dedent(PAST))
    result = CliRunner().invoke(
        app, ["deploy"], env={"KAWA_CONFIG": str(tmp_path / "kawa.yaml"), "COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert "schedule of late: refused" in result.output and "is in the past" in result.output
