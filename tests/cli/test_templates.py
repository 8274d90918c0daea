"""`kawa init --template`, `kawa new pipeline --template` and `kawa templates`: a project started from the
forecasting template runs it at once on a small demo shop, and an edited parameter in its copy changes the
next run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from kawa.config import load_config
from kawa.demo import ShopConfig, generate
from kawa.demo.run import truth_tables
from kawa.runtime import Runtime
from kawa.templates.catalog import project_source, templates
from kawa.warehouse.load import write_table
from tests.conftest import kawa as kawa_cli
from tests.features._events import events_table, write_events

pytestmark = pytest.mark.slow  # each runs a pipeline on a generated shop

SHOP = ShopConfig(users=200, days=40, items=80, visitors=50, seed=3)


def kawa(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The CLI with wide lines, so messages are not wrapped where the tests look for them."""
    return kawa_cli(*args, cwd=cwd, check=check, env={"COLUMNS": "400"})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project made by `kawa init --template forecast`, its warehouse holding a small demo shop."""
    folder = tmp_path_factory.mktemp("cli") / "shop"
    made = kawa("init", "--template", "forecast", str(folder), "--project", "shop", cwd=folder.parent)
    assert f"# wrote {folder / 'forecast.py'}" in made.stdout and "kawa pipeline run forecast" in made.stdout
    runtime = Runtime(load_config(folder / "kawa.yaml"))
    try:
        shop = generate(SHOP)
        write_events(runtime.warehouse(), events_table(shop.events))
        write_table(runtime.warehouse(), "demo_items", truth_tables(shop)["demo_items"])
    finally:
        runtime.close()
    return folder


def _forecast_days(folder: Path) -> int:
    runtime = Runtime(load_config(folder / "kawa.yaml"))
    try:
        [row] = (
            runtime.warehouse()
            .query(
                "SELECT count(DISTINCT day) AS days, count(*) / count(DISTINCT item_id) AS per_item "
                "FROM demand_forecast"
            )
            .to_pylist()
        )
    finally:
        runtime.close()
    assert row["days"] == row["per_item"]
    return int(row["days"])


def test_init_writes_the_template_as_the_projects_own_code(project: Path) -> None:
    settings = yaml.safe_load((project / "kawa.yaml").read_text())
    assert settings["project"] == "shop" and "forecast.py" in settings["code"]
    assert (project / "forecast.py").read_text() == project_source("forecast")
    listed = kawa("pipeline", "list", cwd=project).stdout
    assert "forecast" in listed and "overstock_viewers" in listed


def test_the_copy_runs_and_an_edited_parameter_changes_the_next_run(project: Path) -> None:
    ran = kawa("pipeline", "run", "forecast", "--in-process", cwd=project, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert _forecast_days(project) == 14
    copy = project / "forecast.py"
    copy.write_text(copy.read_text().replace('"horizon_days": 14,', '"horizon_days": 7,', 1))
    ran = kawa("pipeline", "run", "forecast", "--in-process", cwd=project, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert _forecast_days(project) == 7

    refused = kawa("new", "pipeline", "--template", "forecast", cwd=project, check=False)
    assert refused.returncode == 1 and "exists already; pass --force" in refused.stderr
    assert '"horizon_days": 7,' in copy.read_text()
    replaced = kawa("new", "pipeline", "--template", "forecast", "--force", cwd=project)
    assert f"# replaced {copy}" in replaced.stdout
    assert copy.read_text() == project_source("forecast")


def test_new_pipeline_adds_a_template_to_the_project(project: Path) -> None:
    added = kawa("new", "pipeline", "--template", "rfm", cwd=project)
    assert "# listed rfm.py under code: in kawa.yaml" in added.stdout
    assert load_config(project / "kawa.yaml").code[-2:] == ["forecast.py", "rfm.py"]
    assert "rfm" in kawa("pipeline", "list", cwd=project).stdout


def test_templates_are_listed_and_bad_names_explained(tmp_path: Path) -> None:
    listed = kawa("templates", cwd=tmp_path).stdout
    also = kawa("new", "--list", cwd=tmp_path).stdout
    for name, (template, _) in templates().items():
        assert name in listed and template.summary in listed and name in also
    assert "kawa[torch]" in listed
    unknown = kawa("init", "--template", "nope", str(tmp_path / "p"), cwd=tmp_path, check=False)
    assert unknown.returncode == 1 and "no template named 'nope'; templates: " in unknown.stderr
    assert not (tmp_path / "p" / "kawa.yaml").exists()
    nowhere = kawa("new", "pipeline", "--template", "rfm", cwd=tmp_path, check=False)
    assert nowhere.returncode == 1 and "no kawa.yaml here or above" in nowhere.stderr
