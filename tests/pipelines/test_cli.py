"""`kawa pipeline list|run` and `kawa runs list|show|logs` end to end, in a temporary project folder."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.conftest import kawa
from tests.pipelines.conftest import Webhook

PIPELINES = """
import logging

from kawa.pipelines import Pipeline, RunContext, step

@step
def numbers(upto: int) -> list[int]:
    print(f"counting to {upto}")
    return list(range(upto))

@step(memory="1GB")
def total(numbers: list[int], ctx: RunContext) -> int:
    ctx.log_metric("total", sum(numbers))
    ctx.outputs["model"] = {"name": "counter", "version": 2}
    return sum(numbers)

@step
def check(total: int, limit: int) -> None:
    logging.getLogger("checks").info("total is %d", total)
    if total > limit:
        raise ValueError(f"total {total} is over the limit {limit}")

daily = Pipeline("daily", steps=[check, total, numbers], params={"upto": 4, "limit": 100},
                 description="Counts, then checks")
"""


pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    kawa("init", "--project", "shop", cwd=tmp_path)
    (tmp_path / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
    return tmp_path


def _flat(text: str) -> str:
    """`text` with the line breaks rich adds at 80 columns taken out."""
    return " ".join(text.split())


def _run_id(output: str) -> str:
    found = re.search(r"run ([0-9a-f]{20}) of pipeline", output)
    assert found is not None, output
    return found.group(1)


def test_list_run_and_inspect_runs(project: Path, webhook: Webhook) -> None:
    env = {"KAWA__NOTIFY__WEBHOOK": webhook.url}
    listed = kawa("pipeline", "list", cwd=project)
    assert "daily" in listed.stdout and "numbers -> total -> check" in listed.stdout
    assert "upto=4, limit=100" in listed.stdout and "Counts, then checks" in listed.stdout

    ok = kawa("pipeline", "run", "daily", "-p", "upto=5", "--experiment", "dev", cwd=project, env=env)
    dev_run = _run_id(ok.stdout)
    for line in ("numbers: succeeded in", "total: succeeded in", "check: succeeded in"):
        assert line in ok.stdout
    assert f"run {dev_run} succeeded in" in ok.stdout

    bad = kawa("pipeline", "run", "daily", "-p", "limit=3", cwd=project, env=env, check=False)
    assert bad.returncode == 1
    failed_run = _run_id(bad.stdout)
    assert "check: failed in" in bad.stdout and f"run {failed_run} failed" in bad.stdout
    assert "Traceback (most recent call last):" in bad.stderr
    assert "ValueError: total 6 is over the limit 3" in bad.stderr

    # The status message reached the webhook for both runs.
    assert [(m["run_id"], m["status"]) for m in webhook.received] == [
        (dev_run, "succeeded"),
        (failed_run, "failed"),
    ]
    assert webhook.received[0]["model_id"] == "counter" and webhook.received[0]["version"] == 2

    dev = kawa("runs", "list", "--experiment", "dev", cwd=project).stdout
    assert dev_run in dev and failed_run not in dev and "counter v2" in dev and "1 run" in dev
    everything = kawa("runs", "list", cwd=project).stdout
    assert dev_run in everything and failed_run in everything and "2 runs" in everything
    assert everything.index(failed_run) < everything.index(dev_run)  # newest first

    shown = kawa("runs", "show", failed_run[:15], cwd=project).stdout
    assert f"run: {failed_run}" in shown and "status: failed" in shown and "experiment: default" in shown
    assert "upto = 4" in shown and "limit = 3" in shown
    assert re.search(r"check\s+│\s+failed", shown) and re.search(r"numbers\s+│\s+succeeded", shown)
    assert 'memory="1GB"' in shown and "total = 6.0" in shown
    assert "ValueError: total 6 is over the limit 3" in shown
    assert "webhook 127.0.0.1" in shown and "sent" in shown

    logs = kawa("runs", "logs", dev_run, cwd=project).stdout
    assert "counting to 5" in logs and "INFO checks: total is 10" in logs
    only = kawa("runs", "logs", dev_run, "--step", "numbers", cwd=project).stdout
    assert "counting to 5" in only and "total is" not in only


def test_mistakes_get_clear_errors_and_exit_code_1(project: Path) -> None:
    unknown = kawa(
        "pipeline", "run", "daily", "-p", "upto=5", "-p", "cutoff=2026-10-01", cwd=project, check=False
    )
    assert unknown.returncode == 1
    assert "no parameter 'cutoff'" in unknown.stderr and "upto=4, limit=100" in _flat(unknown.stderr)

    typed = kawa("pipeline", "run", "daily", "-p", "upto=many", cwd=project, check=False)
    assert typed.returncode == 1 and "'upto' takes a whole number" in _flat(typed.stderr)

    missing = kawa("pipeline", "run", "hourly", cwd=project, check=False)
    assert missing.returncode == 1 and "no pipeline named 'hourly'; pipelines: daily" in _flat(missing.stderr)

    no_run = kawa("runs", "show", "abcdef", cwd=project, check=False)
    assert no_run.returncode == 1 and "no run with id 'abcdef'" in _flat(no_run.stderr)
    assert "0 runs" in kawa("runs", "list", cwd=project).stdout  # none of the refused runs was recorded

    (project / "pipelines.py").write_text("from kawa.pipelines import step\n\ndef broken(:\n    pass\n")
    syntax = kawa("pipeline", "list", cwd=project, check=False)
    assert syntax.returncode == 1 and "pipelines.py:3: SyntaxError" in _flat(syntax.stderr)
