"""`kawa.connect()` on a project folder: SQL to DataFrames, training sets, registering, runs and predictions,
each checked against the part it wraps (the warehouse, kawa.features, the registry, the prediction store)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

import kawa
from kawa.features import FeatureError, training_set
from kawa.features.presets import RFM
from kawa.models import BundleError, RowError
from kawa.notebook import LocalProject
from kawa.pipelines import ParamError, Pipeline, step
from kawa.templates.loyalty import BOUGHT

CUTOFFS = [datetime(2025, 9, 15, tzinfo=UTC), datetime(2025, 9, 22, tzinfo=UTC)]
ID_COLUMNS = ("user_id", "cutoff", "label")


def test_connect_finds_kawa_yaml_from_a_subfolder_or_kawa_config(
    project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project_dir / "notebooks").mkdir(exist_ok=True)
    monkeypatch.chdir(project_dir / "notebooks")
    with kawa.connect() as found:
        assert isinstance(found, LocalProject)
        assert (found.project, Path(found.config.root)) == ("shop", project_dir.resolve())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAWA_CONFIG", str(project_dir / "kawa.yaml"))
    with kawa.connect() as found:
        assert Path(found.config.root) == project_dir.resolve()
    with kawa.connect(project_dir, project="other") as other:
        assert other.project == "other"
        assert other.sql("SELECT count(*) AS n FROM events").to_pylist() == [{"n": 0}]


def test_connect_without_a_project_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAWA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no kawa.yaml in .*`kawa demo`"):
        kawa.connect()
    with pytest.raises(FileNotFoundError, match="no such folder"):
        kawa.connect(tmp_path / "missing")
    assert not (tmp_path / ".kawa").exists()  # nothing was created where there is no project
    with pytest.raises(ValueError, match="needs a key"):
        kawa.connect(url="http://127.0.0.1:1")


def test_sql_gives_arrow_pandas_and_polars(k: LocalProject) -> None:
    query = "SELECT event_name, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
    result = k.sql(query)
    truth = k.runtime.warehouse().query(query)
    assert result.arrow().equals(truth)
    assert result.shape == (truth.num_rows, 2) and len(result) > 5
    assert result.columns == ["event_name", "n"]
    frame = result.df()
    assert isinstance(frame, pd.DataFrame)
    assert frame["n"].tolist() == truth.column("n").to_pylist()
    polars = result.pl()
    assert isinstance(polars, pl.DataFrame)
    assert polars["event_name"].to_list() == truth.column("event_name").to_pylist()
    assert k.sql(query, limit=2).shape == (2, 2)
    assert "events" in k.tables() and "demo_users" in k.tables()


def test_training_set_by_name_equals_kawa_features(k: LocalProject) -> None:
    result = k.training_set("bought_14d", "rfm", cutoffs=CUTOFFS)
    warehouse = k.runtime.warehouse()
    labels = BOUGHT.rows(warehouse, CUTOFFS)
    truth = training_set(warehouse, labels, [RFM])
    assert len(result) == truth.num_rows > 100
    assert result.arrow().equals(truth)
    # The same label rows given as a pandas or a Polars frame, and the view as an object.
    from_pandas = k.training_set(labels.to_pandas(), RFM)
    assert from_pandas.arrow().select(truth.column_names).to_pylist() == truth.to_pylist()
    from_polars = k.training_set(pl.from_arrow(labels), [RFM])
    assert from_polars.to_pylist() == truth.to_pylist()


def test_training_set_errors_name_what_exists(k: LocalProject) -> None:
    with pytest.raises(LookupError, match=r"no feature view named 'nope'.*feature views there: rfm"):
        k.training_set("bought_14d", "nope", cutoffs=CUTOFFS)
    with pytest.raises(LookupError, match=r"no label named 'nope'.*labels there: bought_14d"):
        k.training_set("nope", "rfm")
    with pytest.raises(FeatureError, match="cutoffs= goes with a Label"):
        k.training_set(pa.table({"user_id": ["u"], "cutoff": CUTOFFS[:1]}), "rfm", cutoffs=CUTOFFS)
    with pytest.raises(TypeError, match="label rows must be"):
        k.training_set(42, "rfm")


def test_register_an_estimator_then_predict_rows_tables_and_one_row(k: LocalProject) -> None:
    frame = k.training_set("bought_14d", "rfm", cutoffs=CUTOFFS).df()
    features = [c for c in frame.columns if c not in ID_COLUMNS]
    train, holdout = frame[frame.cutoff == frame.cutoff.min()], frame[frame.cutoff == frame.cutoff.max()]
    model = k.register(
        "churn_nb",
        LogisticRegression(max_iter=500),
        data=train,
        label="label",
        features=features,
        holdout=holdout,
        promote="production",
    )
    assert (model.name, model.version, model.aliases) == ("churn_nb", 1, ("production",))
    bundle = k.registry.load("shop", "churn_nb", 1)
    expected = bundle.predict_table(pa.Table.from_pandas(holdout, preserve_index=False))
    assert model.metrics["rows"] == len(holdout)
    assert 0.0 <= model.metrics["auc"] <= 1.0
    assert [i["name"] for i in model.inputs] == features
    assert k.models()["churn_nb"].latest_version == 1

    as_frame = k.predict("churn_nb", holdout)
    assert (as_frame.model, as_frame.version) == ("churn_nb", 1)
    np.testing.assert_allclose(as_frame.values, expected)
    np.testing.assert_allclose(as_frame.df()["prediction"], expected)
    assert as_frame.columns[-1] == "prediction" and "user_id" in as_frame.columns
    rows = holdout[features].to_dict("records")
    np.testing.assert_allclose(k.predict("churn_nb", pl.from_pandas(holdout)).values, expected)
    np.testing.assert_allclose(k.predict("churn_nb", rows).values, expected)
    assert k.predict("churn_nb", rows[0]).value == pytest.approx(expected[0])
    with pytest.raises(RowError, match="purchases_30d"):
        k.predict("churn_nb", {c: v for c, v in rows[0].items() if c != "purchases_30d"})


def test_register_a_bundle_and_what_an_estimator_needs(k: LocalProject) -> None:
    with pytest.raises(BundleError, match=r"give the rows to fit it on and their label"):
        k.register("nothing", LogisticRegression())
    frame = k.training_set("bought_14d", "rfm", cutoffs=CUTOFFS[:1]).df()
    first = k.register("bundled", LogisticRegression(), data=frame[["purchases_30d", "label"]], label="label")
    bundle = k.registry.load("shop", "bundled", first.version)
    second = k.register("bundled", bundle, metrics={"note": "same bundle"}, description="again")
    assert second.version == first.version + 1 and second.metrics == {"note": "same bundle"}
    assert second.aliases == ()  # not promoted unless asked
    with pytest.raises(BundleError, match="already trained"):
        k.register("bundled", bundle, data=frame)


def test_run_records_steps_and_publishes_predictions(k: LocalProject, capsys: pytest.CaptureFixture) -> None:
    run = k.run("loyalty", in_process=True, weeks=3)
    assert run.succeeded, run.error
    assert run.params["weeks"] == 3 and run.record.experiment == "notebook"
    assert [(s.step, s.status) for s in run.steps] == [
        ("labelled", "succeeded"),
        ("trained", "succeeded"),
        ("registered", "succeeded"),
        ("scored", "succeeded"),
    ]
    printed = capsys.readouterr().out
    assert f"run {run.run_id} of pipeline loyalty" in printed and "  scored: succeeded in " in printed
    assert run.metrics["scored_users"] > 50

    version = run.steps[2].outputs["model"]["version"]
    top = k.sql("SELECT user_id, score FROM loyalty_predictions ORDER BY score DESC LIMIT 1").to_pylist()[0]
    stored = k.prediction("loyalty", top["user_id"])
    assert stored.score == pytest.approx(top["score"])
    assert (stored.model_version, stored.source) == (version, "batch")
    assert k.runs("loyalty")[0].run_id == run.run_id

    with pytest.raises(ParamError, match="no parameter 'week'"):
        k.run("loyalty", week=3)
    with pytest.raises(LookupError, match="no pipeline named 'nope'; pipelines: hello, loyalty"):
        k.run("nope")
    with pytest.raises(LookupError, match="no stored prediction of model 'loyalty' for 'nobody'"):
        k.prediction("loyalty", "nobody")


def test_a_pipeline_defined_in_the_notebook_runs_in_this_process(k: LocalProject) -> None:
    @step
    def buyers(ctx) -> int:  # type: ignore[no-untyped-def]
        found = ctx.warehouse.query("SELECT count(DISTINCT keys.user_id) AS n FROM events").column("n")[0]
        ctx.log_metric("users", found.as_py())
        return int(found.as_py())

    run = k.run(Pipeline("local_users", steps=[buyers]), progress=False)
    assert run.succeeded, run.error  # a step process could not import a step defined in a function
    assert (
        run.metrics["users"]
        == k.sql("SELECT count(DISTINCT keys.user_id) AS n FROM events").to_pylist()[0]["n"]
    )
