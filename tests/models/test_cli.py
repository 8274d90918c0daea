"""`kawa models list|show|promote` over a project's real stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from kawa.cli import app
from kawa.cli.project import init_project
from kawa.models import Bundle, Registry
from kawa.runtime import Runtime


@pytest.fixture
def project(tmp_path: Path, table: pa.Table, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path, config = init_project(tmp_path, "shop")
    monkeypatch.setenv("KAWA_CONFIG", str(path))
    runtime = Runtime(config)
    try:
        with Registry.from_runtime(runtime) as registry:
            bundle = Bundle.fit(
                table.slice(0, 1500), label="bought", estimator=LogisticRegression(max_iter=500)
            )
            metrics = bundle.evaluate(table.slice(1500))
            registry.register(
                "shop", "loyalty", bundle, metrics=metrics, run_id="r-42", training={"query": "SELECT 1"},
                description="buys within 14 days",
            )  # fmt: skip
            registry.register("shop", "loyalty", bundle, metrics=metrics)
    finally:
        runtime.close()
    yield path


def kawa(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_list_shows_models_with_versions_and_aliases(project: Path) -> None:
    assert "loyalty" in kawa("models", "list")
    kawa("models", "promote", "loyalty", "1")
    [row] = json.loads(kawa("models", "list", "--json"))
    assert row["name"] == "loyalty" and row["latest_version"] == 2 and row["versions"] == 2
    assert row["aliases"] == {"production": 1}
    assert row["description"] == "buys within 14 days"


def test_show_prints_metrics_signature_training_and_an_example(project: Path) -> None:
    out = kawa("models", "show", "loyalty", "--version", "1")
    for expected in ("loyalty version 1", "auc", "log_loss", "ece", "media", "categorical", "Twitter",
                     "SELECT 1", "r-42", "max_iter", "kawa predict loyalty --json"):  # fmt: skip
        assert expected in out, expected
    shown = json.loads(kawa("models", "show", "loyalty", "--json"))
    assert shown["version"] == 2 and shown["signature"]["output"]["positive_class"] is True
    assert shown["metrics"]["auc"] > 0.6


def test_promote_moves_the_alias_and_says_from_where(project: Path) -> None:
    assert "production -> version 1 (new alias)" in kawa("models", "promote", "loyalty", "1")
    assert "production -> version 2 (was version 1)" in kawa("models", "promote", "loyalty", "2")
    assert "staging -> version 1" in kawa("models", "promote", "loyalty", "1", "--alias", "staging")
    shown = json.loads(kawa("models", "show", "loyalty", "--version", "1", "--json"))
    assert shown["aliases"] == ["staging"]


def test_mistakes_exit_non_zero_with_the_reason(project: Path) -> None:
    result = CliRunner().invoke(app, ["models", "promote", "loyalty", "9"])
    assert result.exit_code == 1
    assert "has no version 9; it has 1, 2" in result.output
    result = CliRunner().invoke(app, ["models", "show", "churn"])
    assert (
        result.exit_code == 1 and "no model 'churn' in project 'shop'; its models: loyalty" in result.output
    )
