"""examples/notebook.ipynb runs top to bottom in a real Jupyter kernel, opened in a small demo shop project,
and what it shows agrees with what the project's stores hold afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import kawa
from kawa.notebook import _html

from .conftest import MakeProject

NOTEBOOK = Path(__file__).parents[2] / "examples" / "notebook.ipynb"

pytestmark = pytest.mark.slow


def _outputs(nb: Any, starts: str) -> tuple[str, str]:
    """(HTML, printed text) of the code cell whose source starts with `starts`."""
    [cell] = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(starts)]
    html = "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)
    printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    return html, printed


@pytest.fixture(scope="module")
def executed(make_project: MakeProject, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    folder = make_project(tmp_path_factory.mktemp("tour"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.MonkeyPatch.context() as env:
        env.delenv("KAWA_CONFIG", raising=False)  # the kernel finds kawa.yaml from its working folder
        env.setenv("JUPYTER_PLATFORM_DIRS", "1")
        client = NotebookClient(
            nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        )
        client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    return nb, folder


def test_the_tour_runs_and_shows_what_the_project_holds(executed: tuple[Any, Path]) -> None:
    nb, folder = executed
    with kawa.connect(folder) as k:
        events = k.sql("SELECT event_name, count(*) AS n FROM events GROUP BY 1").to_pylist()
        html, _ = _outputs(nb, "events = k.sql(")
        for row in events:
            assert f">{row['event_name']}<" in html and f">{row['n']}<" in html

        [run] = k.runs("loyalty")
        assert run.succeeded and run.record.experiment == "notebook"
        assert run.params["coupon_threshold"] == 0.6
        html, printed = _outputs(nb, "run = k.run(")
        assert run.run_id in html and "succeeded" in html
        assert f"run {run.run_id} of pipeline loyalty" in printed and "  scored: succeeded in " in printed

        models = k.models()
        assert set(models.names) == {"loyalty", "loyalty_notebook"}
        mine = k.model("loyalty_notebook")
        html, _ = _outputs(nb, "from sklearn.linear_model import")
        assert "loyalty_notebook" in html and _html.text(mine.metrics["auc"]) in html

        training, _ = _outputs(nb, "from datetime import timedelta")
        assert "training set: rfm" in training and "purchases_30d" in training

        first = k.sql("SELECT user_id FROM loyalty_features ORDER BY user_id LIMIT 1").to_pylist()[0][
            "user_id"
        ]
        stored = k.prediction("loyalty", first)
        html, _ = _outputs(nb, "user = rows.to_pylist()")
        assert first in html and _html.text(stored.score) in html
        scored, _ = _outputs(nb, "rows = k.sql(")
        assert f"loyalty v{stored.model_version}" in scored


def test_the_tour_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(
        not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"
    )
