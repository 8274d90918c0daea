"""Small demo shop projects for the notebook tests: kawa.yaml, the shop's events in the lake, the demo's
features.py and pipelines.py (the loyalty template), written straight to a folder without a server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from kawa.cli.project import init_project
from kawa.config import load_config
from kawa.demo import ShopConfig, generate
from kawa.demo.run import FEATURES_PY, PIPELINES_PY, PROJECT, truth_tables
from kawa.notebook import LocalProject, connect
from kawa.warehouse import Warehouse
from kawa.warehouse.load import write_table
from tests.features._events import events_table, write_events

# Big enough for the loyalty pipeline's four weekly cutoffs to hold buyers and non-buyers.
SHOP = ShopConfig(users=120, days=42, items=80, visitors=30, seed=3)
# A pipeline small enough to run over HTTP in a test: one step, one metric.
HELLO_PY = """
from kawa.pipelines import Pipeline, RunContext, step


@step
def counted(ctx: RunContext, event: str) -> int:
    n = ctx.warehouse.query(f"SELECT count(*) AS n FROM events WHERE event_name = '{event}'").column("n")[0]
    ctx.log_metric("events", n.as_py())
    return n.as_py()


hello = Pipeline("hello", steps=[counted], params={"event": "purchase"})
"""

MakeProject = Callable[[Path], Path]


@pytest.fixture(scope="session")
def shop_tables() -> dict[str, pa.Table]:
    shop = generate(SHOP)
    return {"events": events_table(shop.events), "demo_users": truth_tables(shop)["demo_users"]}


@pytest.fixture(scope="session")
def make_project(shop_tables: dict[str, pa.Table]) -> MakeProject:
    """Write a new demo shop project into a folder and return the folder."""

    def make(folder: Path) -> Path:
        init_project(folder, PROJECT)
        config = load_config(folder / "kawa.yaml")
        warehouse = Warehouse(config.state_path / "lake", PROJECT)
        write_events(warehouse, shop_tables["events"])
        write_table(warehouse, "demo_users", shop_tables["demo_users"])
        (folder / "features.py").write_text(FEATURES_PY)
        (folder / "pipelines.py").write_text(PIPELINES_PY + HELLO_PY)
        return folder

    return make


@pytest.fixture(scope="module")
def project_dir(make_project: MakeProject, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="module")
def k(project_dir: Path) -> Iterator[LocalProject]:
    with connect(project_dir) as project:
        yield project
