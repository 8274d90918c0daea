"""Loading a project's code files and finding its pipelines (and other kawa objects) by kind and name."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from kawa import project_code
from kawa.config import Config
from kawa.pipelines import Pipeline, find_pipeline
from kawa.project_code import ProjectCodeError

PIPELINES = """
from kawa.pipelines import Pipeline, step

@step
def numbers(upto: int) -> list[int]:
    return list(range(upto))

@step
def total(numbers: list[int]) -> int:
    return sum(numbers)

daily = Pipeline("daily", steps=[total, numbers], params={"upto": 3})
weekly = Pipeline("weekly", steps=[numbers], params={"upto": 7})
"""

FEATURES = """
class FeatureView:
    __kawa_kind__ = "feature_view"

    def __init__(self, name: str) -> None:
        self.name = name

rfm = FeatureView("rfm")
sessions = FeatureView("sessions")
"""


def _project(root: Path, files: dict[str, str], code: list[str] | None = None) -> Config:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    return Config(root=str(root), code=code or ["features.py", "pipelines.py"])


def test_objects_are_found_by_kind_then_name(tmp_path: Path) -> None:
    found = project_code.load(_project(tmp_path, {"pipelines.py": PIPELINES, "features.py": FEATURES}))
    assert sorted(found) == ["feature_view", "pipeline"]
    assert sorted(found["pipeline"]) == ["daily", "weekly"]
    assert sorted(found["feature_view"]) == ["rfm", "sessions"]
    daily = found["pipeline"]["daily"]
    assert isinstance(daily, Pipeline) and [s.name for s in daily.steps] == ["numbers", "total"]


def test_missing_files_are_skipped(tmp_path: Path) -> None:
    assert project_code.load(_project(tmp_path, {})) == {}
    found = project_code.load(_project(tmp_path, {"pipelines.py": PIPELINES}))
    assert list(found) == ["pipeline"]


def test_modules_get_names_unique_to_the_project(tmp_path: Path) -> None:
    one = project_code.load(_project(tmp_path / "one", {"pipelines.py": PIPELINES}))
    two = project_code.load(_project(tmp_path / "two", {"pipelines.py": PIPELINES}))
    first, second = one["pipeline"]["daily"], two["pipeline"]["daily"]
    assert first is not second
    module_one = first.steps[0].fn.__module__  # type: ignore[attr-defined]
    module_two = second.steps[0].fn.__module__  # type: ignore[attr-defined]
    assert module_one != module_two and module_one.startswith("kawa_project_")
    assert "pipelines" not in sys.modules or sys.modules["pipelines"].__file__ is None


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    broken = "from kawa.pipelines import step\n\n@step\ndef numbers(:\n    return 1\n"
    config = _project(tmp_path, {"pipelines.py": broken})
    with pytest.raises(ProjectCodeError, match=r"pipelines\.py:4: SyntaxError") as info:
        project_code.load(config)
    assert str(tmp_path) in str(info.value)


def test_an_error_while_importing_names_the_file_and_line(tmp_path: Path) -> None:
    text = "import math\n\nX = 1\nY = math.sqrt(-1)\n"
    with pytest.raises(
        ProjectCodeError, match=r"pipelines\.py:4: importing it raised ValueError: math domain"
    ):
        project_code.load(_project(tmp_path, {"pipelines.py": text}))


def test_a_broken_definition_is_reported_with_its_line(tmp_path: Path) -> None:
    text = """
    from kawa.pipelines import Pipeline, step

    @step
    def total(numbers: list[int]) -> int:
        return sum(numbers)

    broken = Pipeline("broken", steps=[total])
    """
    with pytest.raises(ProjectCodeError, match=r"pipelines\.py:8: .*'total' takes 'numbers'"):
        project_code.load(_project(tmp_path, {"pipelines.py": text}))


def test_two_objects_of_one_kind_and_name_are_refused(tmp_path: Path) -> None:
    again = PIPELINES + '\nanother = Pipeline("daily", steps=[numbers], params={"upto": 1})\n'
    with pytest.raises(ProjectCodeError, match="two pipelines are named 'daily'") as info:
        project_code.load(_project(tmp_path, {"pipelines.py": again}))
    assert "(daily)" in str(info.value) and "(another)" in str(info.value)


def test_duplicates_across_files_are_refused(tmp_path: Path) -> None:
    other = FEATURES.replace('"sessions"', '"weekly"').replace("feature_view", "pipeline")
    other = other.replace('rfm = FeatureView("rfm")', "")
    with pytest.raises(ProjectCodeError, match="two pipelines are named 'weekly'") as info:
        project_code.load(_project(tmp_path, {"pipelines.py": PIPELINES, "features.py": other}))
    assert "features.py" in str(info.value) and "pipelines.py" in str(info.value)


def test_the_same_object_imported_into_another_file_counts_once(tmp_path: Path) -> None:
    files = {
        "features.py": FEATURES,
        # A sibling file imported by its plain name gets the module kawa loaded, not a second copy.
        "pipelines.py": "from features import rfm\nimport features\nSAME = features.rfm is rfm\n" + PIPELINES,
    }
    found = project_code.load(_project(tmp_path, files, code=["pipelines.py", "features.py"]))
    assert sorted(found["feature_view"]) == ["rfm", "sessions"]
    pipelines = sys.modules[found["pipeline"]["daily"].steps[0].fn.__module__]  # type: ignore[attr-defined]
    assert pipelines.SAME is True
    assert "features" not in sys.modules  # the plain name is not left behind for other projects


def test_helper_modules_beside_the_code_can_be_imported(tmp_path: Path) -> None:
    code = "import kawa_test_helper_mod\n" + PIPELINES.replace(
        '{"upto": 7}', "{'upto': kawa_test_helper_mod.UPTO}"
    )
    files = {"kawa_test_helper_mod.py": "UPTO = 11\n", "pipelines.py": code}
    try:
        found = project_code.load(_project(tmp_path, files))
    finally:
        sys.modules.pop("kawa_test_helper_mod", None)
    assert found["pipeline"]["weekly"].params == {"upto": 11}  # type: ignore[attr-defined]
    assert str(tmp_path) not in sys.path  # the project folder is on the path only while loading


def test_find_pipeline_names_the_known_ones(tmp_path: Path) -> None:
    config = _project(tmp_path, {"pipelines.py": PIPELINES})
    assert find_pipeline(config, "weekly").name == "weekly"
    with pytest.raises(LookupError, match="no pipeline named 'monthly'; pipelines: daily, weekly"):
        find_pipeline(config, "monthly")
