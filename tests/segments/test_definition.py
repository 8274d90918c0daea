"""Declaring segments: what is refused at definition with what to write instead, discovery in the
project's code next to pipelines, days in the schedule's zone, and the docstring examples."""

from __future__ import annotations

import doctest
import importlib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from kawa.config import Config
from kawa.pipelines import project_pipelines
from kawa.project_code import ProjectCodeError
from kawa.schedule import Schedule
from kawa.segments import (
    DestinationError,
    Export,
    Segment,
    SegmentDefinitionError,
    SegmentError,
    Webhook,
    find_segment,
    project_segments,
)

OK_SQL = "SELECT user_id FROM shop_events"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC user_id FROM t", "its SQL does not parse"),
        ("SELECT 1 AS user_id; SELECT 2 AS user_id", "must be one SELECT statement (it has 2"),
        ("DELETE FROM shop_events", "must be one SELECT statement"),
        ("SELECT user_id FROM t WHERE ts < $cutoff", "uses $cutoff; the parameters a segment gets are $day"),
        ("  ", "sql must be a SELECT"),
    ],
)
def test_bad_sql_is_refused_when_the_segment_is_defined(sql: str, message: str) -> None:
    with pytest.raises(SegmentDefinitionError, match="segment 'carts'") as info:
        Segment("carts", sql, destination=Export("out"))
    assert message in str(info.value)


def test_bad_settings_are_refused_saying_what_to_write() -> None:
    with pytest.raises(SegmentDefinitionError, match=r"entity=' ' must name the column"):
        Segment("s", OK_SQL, destination=Export("out"), entity=" ")
    with pytest.raises(SegmentDefinitionError, match="must be a Webhook"):
        Segment("s", OK_SQL, destination="https://example.com")  # type: ignore[arg-type]
    with pytest.raises(SegmentDefinitionError, match="once_per='week' must be 'day'"):
        Segment("s", OK_SQL, destination=Export("out"), once_per="week")  # type: ignore[arg-type]
    with pytest.raises(SegmentDefinitionError, match="segment name 'bad name!' must start with a letter"):
        Segment("bad name!", OK_SQL, destination=Export("out"))
    with pytest.raises(DestinationError, match="http:// or https:// URL"):
        Webhook("ftp://example.com/x")
    with pytest.raises(DestinationError, match="batch_size=0 must be a whole number from 1"):
        Webhook("https://example.com/x", batch_size=0)
    with pytest.raises(DestinationError, match="format 'xlsx' must be 'csv' or 'parquet'"):
        Export("out", format="xlsx")  # type: ignore[arg-type]
    # The delivery log keeps 512 characters of a destination (PostgreSQL refuses more at run time).
    with pytest.raises(DestinationError, match=r"Webhook name makes the destination .* 600 characters"):
        Webhook("https://example.com/x", name="n" * 600)
    with pytest.raises(DestinationError, match=r"Export folder makes the destination .* 604 characters"):
        Export("f" * 600)
    with pytest.raises(DestinationError, match="name='' must be a non-empty text"):
        Webhook("https://example.com/x", name="")
    assert Webhook("https://example.com/x", name="n" * 512).describe() == "n" * 512


def test_segments_are_pipelines_found_in_the_project_code(tmp_path: Path) -> None:
    (tmp_path / "pipelines.py").write_text(
        "from kawa.schedule import Schedule\n"
        "from kawa.segments import Segment, Export\n"
        "viewed = Segment('viewed_3x', 'SELECT user_id FROM t', destination=Export('out'),\n"
        "                 schedule=Schedule(start='2030-01-01T00:00', every='1h', timezone='Asia/Tokyo'))\n"
    )
    config = Config(project="shop", root=str(tmp_path))
    segment = find_segment(config, "viewed_3x")
    assert list(project_segments(config)) == ["viewed_3x"]
    assert project_pipelines(config)["viewed_3x"] is not None  # the scheduler sees it as a pipeline
    assert segment.describe()["schedule"] == "every 1h from 2030-01-01T00:00:00+09:00 (Asia/Tokyo)"
    # Days are the schedule's: 20:00 UTC is already the next day in Tokyo.
    assert segment.day_of(datetime(2026, 11, 27, 20, tzinfo=UTC)) == date(2026, 11, 28)
    with pytest.raises(LookupError, match="no segment named 'nope'; segments: viewed_3x"):
        find_segment(config, "nope")


def test_kawa_segments_list_prints_names_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kawa.cli import app
    from kawa.cli.project import init_project

    config_path, _ = init_project(tmp_path, "shop")
    (tmp_path / "pipelines.py").write_text(
        "from kawa.segments import Segment, Webhook\n"
        "pushed = Segment('pushed', 'SELECT 1 AS user_id', "
        "destination=Webhook('https://example.com/x', name='[red]braze[/red]'))\n"
    )
    monkeypatch.setenv("KAWA_CONFIG", str(config_path))
    listed = CliRunner().invoke(app, ["segments", "list"])
    assert listed.exit_code == 0, listed.output
    assert "[red]braze[/red]" in listed.output  # text from the code, never read as markup


def test_a_segment_with_bad_sql_in_the_code_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "pipelines.py").write_text(
        "from kawa.segments import Segment, Export\n"
        "bad = Segment('bad', 'SELECT FROM WHERE', destination=Export('o'))\n"
    )
    with pytest.raises(ProjectCodeError, match=r"pipelines.py:2: .*segment 'bad': its SQL does not parse"):
        project_segments(Config(project="shop", root=str(tmp_path)))


def test_a_future_day_is_refused() -> None:
    segment = Segment("s", OK_SQL, destination=Export("out"), schedule=None)
    with pytest.raises(SegmentError, match="day 2026-11-28 is in the future"):
        segment.logical_date_for(date(2026, 11, 28), datetime(2026, 11, 27, 9, tzinfo=UTC))
    zoned = Segment(
        "z",
        OK_SQL,
        destination=Export("out"),
        schedule=Schedule(start="2030-01-01", every="1d", timezone="Asia/Tokyo"),
    )
    # 2026-11-27 15:00 UTC is already 2026-11-28 in Tokyo: that day is today there, so it runs as of now.
    now = datetime(2026, 11, 27, 15, tzinfo=UTC)
    assert zoned.logical_date_for(date(2026, 11, 28), now) == now


@pytest.mark.parametrize("module", ["kawa.segments.spec", "kawa.segments.destinations"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
