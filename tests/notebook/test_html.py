"""The notebook views' HTML: it holds the values, and text from data is escaped, never markup."""

from __future__ import annotations

import doctest
import importlib
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pyarrow as pa
import pytest

from kawa.models.records import ModelSummary, ModelVersion
from kawa.notebook import Model, ModelList, Predictions, Result, Run, RunList, StoredPrediction
from kawa.pipelines.runs import RunRecord, StepRecord

EVIL = "<script>alert('x')</script>"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class _Cells(HTMLParser):
    """The text of the page with its tags counted, to check that data never became a tag."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> _Cells:
    cells = _Cells()
    cells.feed(html)
    assert "script" not in cells.tags
    return cells


def test_result_shows_its_first_rows_types_and_shape() -> None:
    table = pa.table({"user_id": [f"u_{i}" for i in range(25)], "score": [i / 8 for i in range(25)]})
    html = Result(table, title="scores").__repr__(), Result(table, title="scores")._repr_html_()
    cells = parsed(html[1])
    text = " ".join(cells.text)
    assert "u_0" in text and "u_9" in text and "u_10" not in text  # the first 10 rows
    assert "0.125" in text and "1.125" in text
    assert "string" in text and "double" in text
    assert "25 rows, 2 columns; the first 10 shown" in text
    assert cells.tags.count("tr") == 1 + 1 + 10  # header, types, rows
    assert "u_9" in html[0] and "25 rows, 2 columns" in html[0]


def test_result_escapes_html_in_values_and_column_names() -> None:
    table = pa.table({EVIL: [EVIL, "a & b"], "n": [1, None]})
    html = Result(table, truncated=True)._repr_html_()
    assert EVIL not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html and "a &amp; b" in html
    text = " ".join(parsed(html).text)
    assert EVIL in text  # shown as the text it is
    assert "null" in text and "more rows matched than came back" in text


def test_predictions_add_a_column_per_prediction_or_class() -> None:
    rows = pa.table({"age": [30, 40], "prediction": ["kept", "kept"]})
    binary = Predictions("buyers", 3, rows, [0.25, 0.75])
    assert binary.columns == ["age", "prediction", "prediction_"]  # the input's column is kept
    assert binary.arrow().column("prediction_").to_pylist() == [0.25, 0.75]
    html = binary._repr_html_()
    assert "buyers v3" in html and "0.75" in html
    multi = Predictions("media", 1, pa.table({"age": [30]}), [{"tv": 0.5, "web": 0.375, EVIL: 0.125}])
    assert multi.columns == ["age", "prediction_tv", "prediction_web", f"prediction_{EVIL}"]
    assert multi.value == {"tv": 0.5, "web": 0.375, EVIL: 0.125}
    assert "0.375" in multi._repr_html_() and EVIL not in multi._repr_html_()
    with pytest.raises(ValueError, match="2 rows were predicted"):
        _ = binary.value


def _run(status: str, error: str | None) -> RunRecord:
    steps = [
        StepRecord("features", 0, "succeeded", {}, {"tables": ["f"]}, {"rows": 1200}, [], None, None,
                   T0, T0 + timedelta(seconds=2.5)),
        StepRecord("train", 1, status, {}, {}, {}, [], None, error, T0 + timedelta(seconds=3),
                   T0 + timedelta(seconds=64)),
        StepRecord("publish", 2, "skipped", {}, {}, {}, [], None, None, None, None),
    ]  # fmt: skip
    return RunRecord(
        run_id="0661aa", project="shop", pipeline="loyalty", experiment=EVIL, kind="manual", status=status,
        logical_date=T0, params={"weeks": 4, "note": EVIL}, metrics={"auc": 0.8125, "curve": [1, 2]},
        artifacts=[], message=None, error=error, created_at=T0, started_at=T0,
        finished_at=T0 + timedelta(seconds=64), steps=steps,
    )  # fmt: skip


def test_run_shows_status_steps_params_and_metrics() -> None:
    run = Run(_run("succeeded", None))
    html = run._repr_html_()
    text = " ".join(parsed(html).text)
    assert "0661aa" in text and "loyalty" in text and "succeeded in 1m 04s" in text.replace("  ", " ")
    assert "#1a7f37" in html  # succeeded in green
    assert "weeks" in text and "4" in text and EVIL in text
    assert "features" in text and "2.5s" in text and "rows=1200" in text and 'tables: ["f"]' in text
    assert "1m 01s" in text and "skipped" in text
    assert "0.8125" in text and "curve" not in text  # scalar metrics only
    assert EVIL not in html
    assert "train: succeeded in 1m 01s" in repr(run)


def test_failed_run_shows_the_error_escaped() -> None:
    error = f"Traceback (most recent call last):\n  ...\nValueError: bad <b>{EVIL}</b>"
    run = Run(_run("failed", error))
    html = run._repr_html_()
    assert "#cf222e" in html  # failed in red
    text = " ".join(parsed(html).text)
    assert f"ValueError: bad <b>{EVIL}</b>" in text and "Traceback" in text
    assert "<b>" not in html
    assert f"error: ValueError: bad <b>{EVIL}</b>" in repr(run)


def test_run_list_and_model_views() -> None:
    runs = RunList([_run("succeeded", None), _run("failed", "x")])
    text = " ".join(parsed(runs._repr_html_()).text)
    assert "2 runs" in text and "failed" in text and "auc=0.8125" in text
    assert runs[1].status == "failed" and RunList([])._repr_html_().count("no runs") == 1

    version = ModelVersion(
        project="shop", name="loyalty", version=7, flavor="lightgbm", artifact="models/shop/loyalty/7",
        run_id="0661aa", signature={"inputs": [{"name": EVIL, "type": "number"}], "example": {EVIL: 1.5}},
        metrics={"auc": 0.75, "roc": {"fpr": [0, 1]}}, params={}, training={"rows": 480},
        created_at=T0, aliases=("production",),
    )  # fmt: skip
    model = Model(version)
    html = model._repr_html_()
    text = " ".join(parsed(html).text)
    assert "loyalty" in text and "version 7" in text and "production" in text and "lightgbm" in text
    assert "0.75" in text and "roc" not in text and EVIL in text and "480" in text
    assert EVIL not in html and model.example == {EVIL: 1.5}

    summary = ModelSummary("shop", EVIL, "desc & more", T0, 7, 7, {"production": 7})
    listing = ModelList([summary])
    html = listing._repr_html_()
    assert EVIL not in html and "desc &amp; more" in html and "production → v7" in html
    with pytest.raises(KeyError, match="no model 'x'"):
        listing["x"]


def test_stored_prediction_view() -> None:
    found = StoredPrediction("loyalty", EVIL, 0.625, 3, "2026-03-01T12:00:00.000Z")
    html = found._repr_html_()
    text = " ".join(parsed(html).text)
    assert "0.625" in text and "2026-03-01T12:00:00.000Z" in text and "batch" in text and EVIL in text
    assert EVIL not in html
    assert found.to_json() == {
        "model": "loyalty", "entity": EVIL, "score": 0.625, "model_version": 3,
        "computed_at": "2026-03-01T12:00:00.000Z", "source": "batch",
    }  # fmt: skip


def test_long_values_are_cut() -> None:
    html = Result(pa.table({"t": ["x" * 1000]}))._repr_html_()
    assert re.search(r"x{199}…", html) and "x" * 201 not in html


@pytest.mark.parametrize(
    "module", ["kawa.notebook._html", "kawa.notebook._rows", "kawa.notebook.results", "kawa.notebook.remote"]
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
