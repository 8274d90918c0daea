"""`kawa pipeline backfill`, `kawa pipeline schedules` and skipped runs in `kawa runs list`, end to end."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kawa.config import load_config
from kawa.pipelines import project_pipelines
from kawa.runtime import Runtime
from kawa.schedule import ManualClock
from kawa.schedule.scheduler import Scheduler
from tests.conftest import kawa

PIPELINES = """
from kawa.pipelines import Pipeline, RunContext, step
from kawa.schedule import Schedule, WaitFor

@step(retries=0)
def stamp(ctx: RunContext) -> str:
    if ctx.logical_date.hour == 2:  # 03:00 in Berlin
        raise ValueError("no data for 03:00")
    return ctx.logical_date.isoformat()

hourly = Pipeline(
    "hourly",
    steps=[stamp],
    schedule=Schedule(start="2026-01-01T00:00", every="1h", timezone="Europe/Berlin"),
)
later = Pipeline(
    "later",
    steps=[stamp],
    schedule=Schedule(start="2099-01-01T06:00", cron="0 6 * * *", timezone="Asia/Tokyo"),
    wait_for=[WaitFor("hourly", timeout="3h")],
)
"""

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    kawa("init", "--project", "shop", cwd=tmp_path)
    (tmp_path / "pipelines.py").write_text(textwrap.dedent(PIPELINES))
    return tmp_path


def flat(text: str) -> str:
    return " ".join(text.split())


def test_backfill_runs_the_range_in_order_and_a_second_backfill_reruns_only_what_did_not_succeed(
    project: Path,
) -> None:
    done = kawa(
        "pipeline", "backfill", "hourly", "--from", "2026-01-01T01:00", "--to", "2026-01-01T04:00",
        cwd=project, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    out = flat(done.stdout)
    assert "4 run(s) queued; running them here, 1 at a time" in out
    assert "3 succeeded, 1 did not" in out
    listed = kawa("runs", "list", "--pipeline", "hourly", cwd=project).stdout
    assert listed.count("backfill") == 4
    history = flat(kawa("pipeline", "schedules", "hourly", cwd=project).stdout)
    # Newest first, in the schedule's zone with UTC beside it.
    assert history.index("2026-01-01T04:00:00+01:00") < history.index("2026-01-01T01:00:00+01:00")
    assert "4 dates" in history

    again = kawa(
        "pipeline", "backfill", "hourly", "--from", "2026-01-01T01:00", "--to", "2026-01-01T04:00",
        cwd=project, check=False,
    )  # fmt: skip
    out = flat(again.stdout)
    assert "2026-01-01T01:00:00+01:00 (00:00 UTC) succeeded" in out
    assert "2026-01-01T03:00:00+01:00 (02:00 UTC) queued" in out
    assert "1 run(s) queued" in out
    assert again.returncode == 1


def test_backfill_refuses_ranges_it_cannot_run(project: Path) -> None:
    future = kawa(
        "pipeline",
        "backfill",
        "later",
        "--from",
        "2099-01-01",
        "--to",
        "2099-01-02",
        cwd=project,
        check=False,
    )
    assert future.returncode != 0
    assert "is in the future" in flat(future.stderr)
    backwards = kawa(
        "pipeline",
        "backfill",
        "hourly",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-01",
        cwd=project,
        check=False,
    )
    assert "is before --from" in flat(backwards.stderr)


def test_schedules_show_status_next_runs_and_waits(project: Path) -> None:
    shown = flat(kawa("pipeline", "schedules", "--next", "2", cwd=project).stdout)
    assert "not deployed: first run is past" in shown  # hourly: kawa serve would refuse it
    assert "2099-01-01T06:00:00+09:00" in shown and "2099-01-02T06:00:00+09:00" in shown
    assert "hourly" in shown.split("later", 1)[1]  # later waits for hourly


def test_skipped_runs_show_in_runs_list(project: Path) -> None:
    config = load_config(project / "kawa.yaml")
    runtime = Runtime(config)
    try:
        pipelines = {"later": project_pipelines(config)["later"]}
        clock = ManualClock(datetime(2098, 12, 31, tzinfo=UTC))
        Scheduler(runtime, pipelines, clock=clock).tick()
        clock.set(datetime(2099, 1, 4, tzinfo=UTC))  # 06:00 Tokyo on the 1st to the 4th: missed
        Scheduler(runtime, pipelines, clock=clock).tick()
    finally:
        runtime.close()
    listed = flat(kawa("runs", "list", "--pipeline", "later", cwd=project).stdout)
    assert listed.count("skipped") == 4
    assert listed.count("scheduled") == 4
